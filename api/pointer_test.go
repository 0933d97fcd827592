package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestEveryBodyFieldProblemNamesItsPointer sends, to every route that
// takes a body, a value that is wrong for each of its fields, and checks
// the 400 problem's pointer member names that field (README: "the body
// field by its JSON pointer"). Inputs tried, per field: missing, empty,
// wrong pattern or length, out of range, wrong JSON type where the
// server's own check (not the decoder's) catches it.
func TestEveryBodyFieldProblemNamesItsPointer(t *testing.T) {
	a := newTestAPI(t)
	var admin tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "all",
		"rules": []any{map[string]any{"capabilities": []string{"append", "read", "read_pii", "erase", "audit_export", "admin"}, "streams": "*"}}}, http.StatusCreated, &admin)
	id := func() string { return uuid.NewString() }
	ev := func(extra string) string {
		return `{"events":[{"id":"` + id() + `","type":"A","data":{"email":"x@example.com"}` + extra + `}]}`
	}
	long := strings.Repeat("a", 300)
	// A consumer to acknowledge for.
	a.doJSON(http.MethodPut, "/v1/subscriptions/c1", admin.Token, map[string]any{}, http.StatusCreated, nil)

	const appendPath = "/v1/streams/order-1/events"
	cases := []struct {
		name, method, path, body, pointer string
	}{
		// POST /v1/streams/{stream}/events
		{"event id not a UUID", "POST", appendPath, `{"events":[{"id":"not-a-uuid","type":"A","data":1}]}`, "/events/0/id"},
		{"event id missing", "POST", appendPath, `{"events":[{"type":"A","data":1}]}`, "/events/0/id"},
		{"event id the nil UUID", "POST", appendPath, `{"events":[{"id":"00000000-0000-0000-0000-000000000000","type":"A","data":1}]}`, "/events/0/id"},
		{"event id twice", "POST", appendPath, `{"events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"A","data":1},{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"B","data":2}]}`, "/events/1/id"},
		{"type with a bad pattern", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"bad type!","data":1}]}`, "/events/0/type"},
		{"type too long", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"` + long + `","data":1}]}`, "/events/0/type"},
		{"type empty", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"","data":1}]}`, "/events/0/type"},
		{"type reserved", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"eventvault.Tombstone","data":1}]}`, "/events/0/type"},
		{"second event's type", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"A","data":1},{"id":"` + id() + `","type":"?","data":1}]}`, "/events/1/type"},
		{"data null", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"A","data":null}]}`, "/events/0/data"},
		{"data missing", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"A"}]}`, "/events/0/data"},
		{"expected_version a word", "POST", appendPath, `{"expected_version":"sometimes","events":[{"id":"` + id() + `","type":"A","data":1}]}`, "/expected_version"},
		{"expected_version negative", "POST", appendPath, `{"expected_version":-1,"events":[{"id":"` + id() + `","type":"A","data":1}]}`, "/expected_version"},
		{"expected_version too large", "POST", appendPath, `{"expected_version":99999999999999999999,"events":[{"id":"` + id() + `","type":"A","data":1}]}`, "/expected_version"},
		{"events missing", "POST", appendPath, `{}`, "/events"},
		{"events empty", "POST", appendPath, `{"events":[]}`, "/events"},
		{"subject empty", "POST", appendPath, `{"subject":"","events":[{"id":"` + id() + `","type":"A","data":1}]}`, "/subject"},
		{"subject too long", "POST", appendPath, `{"subject":"` + long + `","events":[{"id":"` + id() + `","type":"A","data":1}]}`, "/subject"},
		{"pii class unknown", "POST", appendPath, ev(`,"pii":{"/email":{"subject":"sam","class":"ssn"}}`), "/events/0/pii/~1email/class"},
		{"pii subject empty", "POST", appendPath, ev(`,"pii":{"/email":{"subject":"","class":"email"}}`), "/events/0/pii/~1email/subject"},
		{"pii subject too long", "POST", appendPath, ev(`,"pii":{"/email":{"subject":"` + long + `"}}`), "/events/0/pii/~1email/subject"},
		{"pii pointer names nothing", "POST", appendPath, ev(`,"pii":{"/nope":{"subject":"sam"}}`), "/events/0/pii/~1nope"},
		{"pii key not a pointer", "POST", appendPath, ev(`,"pii":{"email":{"subject":"sam"}}`), "/events/0/pii/email"},
		{"pii marks nested", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":"A","data":{"c":{"email":"x"}},"pii":{"/c":{"subject":"sam"},"/c/email":{"subject":"sam"}}}]}`, ""},

		// POST /v1/tokens
		{"token tenant empty", "POST", "/v1/tokens", `{"tenant":"","name":"n"}`, "/tenant"},
		{"token tenant bad", "POST", "/v1/tokens", `{"tenant":"Not A Tenant!","name":"n"}`, "/tenant"},
		{"token name missing", "POST", "/v1/tokens", `{"tenant":"acme"}`, "/name"},
		{"token name empty", "POST", "/v1/tokens", `{"tenant":"acme","name":""}`, "/name"},
		{"token name too long", "POST", "/v1/tokens", `{"tenant":"acme","name":"` + long + `"}`, "/name"},
		{"ttl not a duration", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttl":"forever"}`, "/ttl"},
		{"ttl zero", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttl":0}`, "/ttl"},
		{"ttl negative", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttl":-5}`, "/ttl"},
		{"ttl below a minute", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttl":"10s"}`, "/ttl"},
		{"ttl above a year", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttl":"9000h"}`, "/ttl"},
		{"rules empty", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","rules":[]}`, "/rules"},
		{"rule capability unknown", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","rules":[{"capabilities":["read","fly"],"streams":"*"}]}`, "/rules/0/capabilities/1"},
		{"rule capabilities empty", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","rules":[{"capabilities":[],"streams":"*"}]}`, "/rules/0/capabilities"},
		{"rule streams empty", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","rules":[{"capabilities":["read"],"streams":""}]}`, "/rules/0/streams"},
		{"rule streams bad", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","rules":[{"capabilities":["read"],"streams":"*"},{"capabilities":["read"],"streams":"a b"}]}`, "/rules/1/streams"},
		{"policies empty", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","policies":[]}`, "/policies"},
		{"policies unknown", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","policies":["no-such-document"]}`, "/policies/0"},
		{"policies named twice", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","policies":["a","a"]}`, "/policies/1"},
		{"policies with a bad name", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","policies":["Bad Name!"]}`, "/policies/0"},

		// PUT /v1/policies/{name}
		{"policy missing", "PUT", "/v1/policies/p1", `{}`, "/policy"},
		{"policy does not parse", "PUT", "/v1/policies/p1", `{"policy":"permit ("}`, "/policy"},

		// PUT /v1/subscriptions/{name}, POST .../ack
		{"filter category bad", "PUT", "/v1/subscriptions/c2", `{"filter":{"categories":["customer","9bad"]}}`, "/filter/categories/1"},
		{"filter type bad", "PUT", "/v1/subscriptions/c2", `{"filter":{"types":["bad type!"]}}`, "/filter/types/0"},
		{"from negative", "PUT", "/v1/subscriptions/c2", `{"from":-1}`, "/from"},
		{"from a word", "PUT", "/v1/subscriptions/c2", `{"from":"start"}`, "/from"},
		{"from past the end", "PUT", "/v1/subscriptions/c2", `{"from":999999}`, "/from"},
		{"position missing", "POST", "/v1/subscriptions/c1/ack", `{}`, "/position"},
		{"position not committed", "POST", "/v1/subscriptions/c1/ack", `{"position":999999}`, "/position"},
		{"position negative", "POST", "/v1/subscriptions/c1/ack", `{"position":-1}`, "/position"},

		// Subject routes
		{"erasure subject empty", "POST", "/v1/erasure-requests", `{"subject":""}`, "/subject"},
		{"erasure subject too long", "POST", "/v1/erasure-requests", `{"subject":"` + long + `"}`, "/subject"},
		{"hold subject empty", "PUT", "/v1/holds", `{"subject":"","reason":"litigation"}`, "/subject"},
		{"hold reason empty", "PUT", "/v1/holds", `{"subject":"sam","reason":""}`, "/reason"},
		{"hold reason too long", "PUT", "/v1/holds", `{"subject":"sam","reason":"` + strings.Repeat("r", 600) + `"}`, "/reason"},
		{"hold lifted, subject empty", "DELETE", "/v1/holds", `{"subject":""}`, "/subject"},
		{"export subject empty", "POST", "/v1/subject-exports", `{"subject":""}`, "/subject"},
		{"rectify subject empty", "POST", "/v1/rectifications", `{"subject":"","token":"pii_x","value":1}`, "/subject"},
		{"rectify token missing", "POST", "/v1/rectifications", `{"subject":"sam","value":1}`, "/token"},
		{"rectify value missing", "POST", "/v1/rectifications", `{"subject":"sam","token":"pii_x"}`, "/value"},
		{"rectify value null", "POST", "/v1/rectifications", `{"subject":"sam","token":"pii_x","value":null}`, "/value"},
		{"restrict subject empty", "PUT", "/v1/restrictions", `{"subject":"","reason":"accuracy contested"}`, "/subject"},
		{"restrict reason empty", "PUT", "/v1/restrictions", `{"subject":"sam","reason":""}`, "/reason"},
		{"unrestrict subject empty", "DELETE", "/v1/restrictions", `{"subject":""}`, "/subject"},
		{"audit pseudonym subject empty", "POST", "/v1/audit/pseudonym", `{"subject":""}`, "/subject"},

		// POST /v1/admin/root/retire
		{"before_version missing", "POST", "/v1/admin/root/retire", `{}`, "/before_version"},
		{"before_version zero", "POST", "/v1/admin/root/retire", `{"before_version":0}`, "/before_version"},

		// The decoder's own checks name the field too.
		{"wrong JSON type", "POST", appendPath, `{"events":[{"id":"` + id() + `","type":5,"data":1}]}`, "/events/0/type"},
		{"unknown field", "POST", "/v1/tokens", `{"tenant":"acme","name":"n","ttll":"1h"}`, "/ttll"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := admin.Token
			if strings.HasPrefix(tc.path, "/v1/admin/") {
				token = a.root
			}
			rec := a.do(tc.method, tc.path, token, []byte(tc.body))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("%s %s %s: status %d, want 400; body %s", tc.method, tc.path, tc.body, rec.Code, rec.Body)
			}
			var p struct {
				Pointer *string `json:"pointer"`
				Detail  string  `json:"detail"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			want := tc.pointer
			if want == "" {
				want = "/events/0/pii/~1c" // the nested case: either mark's place will do
				if p.Pointer != nil && strings.HasPrefix(*p.Pointer, "/events/0/pii/~1c") {
					return
				}
			}
			if p.Pointer == nil || *p.Pointer != want {
				got := "none"
				if p.Pointer != nil {
					got = *p.Pointer
				}
				t.Fatalf("%s %s %s: pointer %s, want %s (detail %q)", tc.method, tc.path, tc.body, got, want, p.Detail)
			}
		})
	}
}

// wantPointer fails t unless rec is a problem whose pointer member is
// want.
func wantPointer(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	var p struct {
		Pointer *string `json:"pointer"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Pointer == nil || *p.Pointer != want {
		t.Errorf("problem %s: want pointer %s", rec.Body, want)
	}
}
