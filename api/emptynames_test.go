package api

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestAFieldNamingASubjectOrANameIsNeverEmpty sends "" in every request
// field that names a data subject, a tenant or a name: the append's
// subject (which once made an unowned stream) and a pii mark's, the
// subject of an erasure request, a hold, a subject export, a
// rectification, a restriction and a pseudonym lookup, a token's tenant,
// name and policy names, a subscription's categories and types, and the
// tenant query parameter; and null in the append's subject, a pii mark's,
// an erasure request's, a hold's and the token's tenant, name and TTL,
// which encoding/json would read as left out; and subjects an append
// assigns, and token names, that are white space, have white space around
// them or hold a control character. Each is 400 problem+json;
// the append writes
// nothing, so the stream a later append names an owner for is still new.
func TestAFieldNamingASubjectOrANameIsNeverEmpty(t *testing.T) {
	onBothStores(t, testAFieldNamingASubjectOrANameIsNeverEmpty)
}

func testAFieldNamingASubjectOrANameIsNeverEmpty(t *testing.T, a *testAPI) {
	admin := a.admin("acme")
	ev := func() string { return `{"id":"` + uuid.NewString() + `","type":"A","data":{"e":"x"}}` }
	for _, c := range []struct {
		name, method, path, body, detail string
	}{
		{"append subject", "POST", "/v1/streams/order-99/events", `{"subject":"","events":[` + ev() + `]}`, "subject is empty"},
		{"pii mark subject", "POST", "/v1/streams/order-98/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"e":"x"},"pii":{"/e":{"subject":""}}}]}`, "subject is empty"},
		{"erasure subject", "POST", "/v1/erasure-requests", `{"subject":""}`, "subject is empty"},
		{"hold subject", "PUT", "/v1/holds", `{"subject":"","reason":"litigation"}`, "subject is empty"},
		{"hold lift subject", "DELETE", "/v1/holds", `{"subject":""}`, "subject is empty"},
		{"export subject", "POST", "/v1/subject-exports", `{"subject":""}`, "subject is empty"},
		{"rectification subject", "POST", "/v1/rectifications", `{"subject":"","token":"evpii_x","value":"y"}`, "subject is empty"},
		{"rectification value null", "POST", "/v1/rectifications", `{"subject":"sam","token":"evpii_x","value":null}`, "value is null: send the corrected value"},
		{"restriction subject", "PUT", "/v1/restrictions", `{"subject":"","reason":"contested"}`, "subject is empty"},
		{"restriction lift subject", "DELETE", "/v1/restrictions", `{"subject":""}`, "subject is empty"},
		{"pseudonym subject", "POST", "/v1/audit/pseudonym", `{"subject":""}`, "subject is empty"},
		{"token tenant", "POST", "/v1/tokens", `{"tenant":"","name":"n"}`, "tenant is empty"},
		{"token name", "POST", "/v1/tokens", `{"name":""}`, "name is missing"},
		{"token policy name", "POST", "/v1/tokens", `{"name":"n","policies":[""]}`, ""},
		{"subscription category", "PUT", "/v1/subscriptions/s1", `{"filter":{"categories":[""]}}`, ""},
		{"subscription type", "PUT", "/v1/subscriptions/s1", `{"filter":{"types":[""]}}`, ""},
		// null in the same fields: refused too, never read as left out.
		{"append subject null", "POST", "/v1/streams/order-99/events", `{"subject":null,"events":[` + ev() + `]}`, `field "subject" (at /subject) is null`},
		{"pii mark subject null", "POST", "/v1/streams/order-98/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"e":"x"},"pii":{"/e":{"subject":null}}}]}`, "subject"},
		{"erasure subject null", "POST", "/v1/erasure-requests", `{"subject":null}`, "subject"},
		{"hold subject null", "PUT", "/v1/holds", `{"subject":null,"reason":"litigation"}`, "subject"},
		{"token tenant null", "POST", "/v1/tokens", `{"tenant":null,"name":"n"}`, `field "tenant" (at /tenant) is null`},
		{"token name null", "POST", "/v1/tokens", `{"name":null}`, `field "name" (at /name) is null`},
		{"token ttl null", "POST", "/v1/tokens", `{"name":"n","ttl":null}`, `field "ttl" (at /ttl) is null`},
		// An id an append assigns is given exactly: no white space around
		// it, nothing but white space, or control characters, which would
		// make one subject two pseudonyms that erasure requests miss.
		{"append subject of white space", "POST", "/v1/streams/order-99/events", `{"subject":"   ","events":[` + ev() + `]}`, "white space around it"},
		{"append subject with a trailing space", "POST", "/v1/streams/order-99/events", `{"subject":"sam ","events":[` + ev() + `]}`, "white space around it"},
		{"append subject with a line break", "POST", "/v1/streams/order-99/events", `{"subject":"a\nb","events":[` + ev() + `]}`, "control character"},
		{"append subject with NUL", "POST", "/v1/streams/order-99/events", `{"subject":"a\u0000b","events":[` + ev() + `]}`, ""},
		{"pii mark subject of white space", "POST", "/v1/streams/order-98/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"e":"x"},"pii":{"/e":{"subject":" \t"}}}]}`, "white space around it"},
		{"token name of white space", "POST", "/v1/tokens", `{"name":"   "}`, "name is missing"},
		{"token name with a line break", "POST", "/v1/tokens", `{"name":"a\nb"}`, "control characters"},
		{"tenant query of tokens", "GET", "/v1/tokens?tenant=", "", ""},
		{"tenant query of policies", "PUT", "/v1/policies/p1?tenant=", `{"policy":"permit (principal, action, resource);"}`, ""},
		{"tenant query of the export", "GET", "/v1/audit/export?tenant=", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			var details []string
			if c.detail != "" {
				details = append(details, c.detail)
			}
			wantProblem(t, a.do(c.method, c.path, admin, body), http.StatusBadRequest, eventvault.EINVALID, details...)
		})
	}
	// Nothing was written: order-99 is still new, and the first append
	// that names a subject makes it the owner.
	a.doJSON(http.MethodPost, "/v1/streams/order-99/events", admin, map[string]any{"expected_version": "no_stream", "subject": "someone", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-99/events", admin, []byte(`{"subject":"someone-else","events":[`+ev()+`]}`)), http.StatusConflict, eventvault.ECONFLICT)
	// Left out, the subject and the token's tenant are optional; its name
	// is required (TestTokenLifecycle).
	a.doJSON(http.MethodPost, "/v1/streams/order-97/events", admin, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/tokens", admin, map[string]any{"name": "n"}, http.StatusCreated, nil)
}
