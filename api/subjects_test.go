package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func piiAppend(stream string, data, pii any) map[string]any {
	return map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "CustomerRegistered", "data": data, "pii": pii}}}
}

// TestPersonalDataOverHTTP appends an event marking two values of a
// subject and reads it back as JSON, NDJSON and frames: a token with
// read_pii sees the values, one with read only the tokens marked redacted,
// on every encoding. Then the subject's rights: export (with the subject
// id in the body), rectification, restriction, and erasure leaving
// {"erased": true}. Every exchange is checked against openapi.json.
func TestPersonalDataOverHTTP(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		admin := a.capToken("acme", eventvault.CapAdmin)
		reader := a.capToken("acme", eventvault.CapRead)
		data := map[string]any{"email": "jane.doe@example.com", "phone": "+44 20 7946 0958", "total": 12}
		pii := map[string]any{"/email": map[string]any{"subject": "jane", "class": "email"}, "/phone": map[string]any{"subject": "jane", "class": "phone"}}
		a.doJSON(http.MethodPost, "/v1/streams/order-7/events", admin, piiAppend("order-7", data, pii), http.StatusCreated, nil)

		for _, accept := range []string{"", NDJSONContentType, FramesContentType} {
			for _, c := range []struct {
				token string
				shown bool
			}{{admin, true}, {reader, false}} {
				rec := a.send(http.MethodGet, "/v1/streams/order-7/events", c.token, map[string]string{"Accept": accept}, nil)
				body := rec.Body.String()
				if rec.Code != http.StatusOK || strings.Contains(body, "jane.doe@example.com") != c.shown || strings.Contains(body, `"redacted":true`) == c.shown {
					t.Fatalf("read (Accept %q) by a token that may decrypt=%v: %d %s", accept, c.shown, rec.Code, body)
				}
			}
		}

		// Bad marks are 400 problems naming the pointer.
		for _, bad := range []struct {
			pii  any
			want string
		}{
			{map[string]any{"/nope": map[string]any{"subject": "jane"}}, `pii[\"/nope\"] names nothing`},
			{map[string]any{"/email": map[string]any{"subject": ""}}, "subject is empty"},
			// A mark that is not an object is told so, null included
			// (it read as a mark without a subject).
			{map[string]any{"/email": nil}, `field \"/email\" (at /events/0/pii/~1email) must be an object {\"subject\": ..., \"class\": ...}, not null`},
			{map[string]any{"/email": "c1"}, `field \"/email\" (at /events/0/pii/~1email) must be an object {\"subject\": ..., \"class\": ...}`},
			{map[string]any{"/email": []any{}}, `must be an object {\"subject\": ..., \"class\": ...}`},
			{map[string]any{"/email": map[string]any{"subject": "jane", "class": "ssn"}}, "class"},
			{map[string]any{"/email": map[string]any{"subject": "jane", "extra": 1}}, "extra"},
		} {
			b, _ := json.Marshal(piiAppend("order-8", data, bad.pii))
			rec := a.do(http.MethodPost, "/v1/streams/order-8/events", admin, b)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Body.String(), bad.want) {
				t.Errorf("append with pii %v: %d %s; want a 400 problem saying %s", bad.pii, rec.Code, rec.Body, bad.want)
			}
		}

		var x struct {
			PersonalData []struct {
				Token   string          `json:"token"`
				Pointer string          `json:"pointer"`
				Current json.RawMessage `json:"current"`
			} `json:"personal_data"`
			Restriction *struct{ Reason string } `json:"restriction"`
		}
		a.doJSON(http.MethodPost, "/v1/subject-exports", admin, map[string]any{"subject": "jane"}, http.StatusOK, &x)
		if len(x.PersonalData) != 2 {
			t.Fatalf("export: %+v", x)
		}
		a.doJSON(http.MethodPost, "/v1/subject-exports", reader, map[string]any{"subject": "jane"}, http.StatusForbidden, nil)
		var emailToken string
		for _, v := range x.PersonalData {
			if v.Pointer == "/email" {
				emailToken = v.Token
			}
		}
		a.doJSON(http.MethodPost, "/v1/rectifications", admin, map[string]any{"subject": "jane", "token": emailToken, "value": "jane@new.example"}, http.StatusOK, nil)
		a.doJSON(http.MethodPost, "/v1/rectifications", admin, map[string]any{"subject": "someone-else", "token": emailToken, "value": "x"}, http.StatusNotFound, nil)
		a.doJSON(http.MethodPost, "/v1/rectifications", admin, map[string]any{"subject": "jane", "token": emailToken}, http.StatusBadRequest, nil)
		// A value past the 64 KiB an append allows the values of one event:
		// 400 at /value, naming the limit, not the value; nothing kept.
		big := strings.Repeat("x", eventvault.MaxPIIBytesPerEvent)
		rec := a.do(http.MethodPost, "/v1/rectifications", admin, []byte(`{"subject":"jane","token":"`+emailToken+`","value":"`+big+`"}`))
		wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, "the limit is 65536 bytes (64 KiB)")
		if !strings.Contains(rec.Body.String(), `"pointer":"/value"`) || strings.Contains(rec.Body.String(), "xxxx") {
			t.Fatalf("a rectification too large: %s; want the pointer /value, not the value", rec.Body)
		}
		if rec := a.do(http.MethodGet, "/v1/streams/order-7/events", admin, nil); !strings.Contains(rec.Body.String(), "jane@new.example") {
			t.Fatalf("after rectification: %s", rec.Body)
		}

		a.doJSON(http.MethodPut, "/v1/restrictions", admin, map[string]any{"subject": "jane", "reason": "accuracy contested"}, http.StatusOK, nil)
		a.doJSON(http.MethodPut, "/v1/restrictions", admin, map[string]any{"subject": "jane", "reason": ""}, http.StatusBadRequest, nil)
		if rec := a.do(http.MethodGet, "/v1/streams/order-7/events", admin, nil); strings.Contains(rec.Body.String(), "jane@new.example") {
			t.Fatalf("a restricted subject's value is shown to a token without read_restricted_pii: %s", rec.Body)
		}
		a.doJSON(http.MethodPost, "/v1/subject-exports", admin, map[string]any{"subject": "jane"}, http.StatusOK, &x)
		if x.Restriction == nil {
			t.Fatal("the export does not show the restriction")
		}
		a.do(http.MethodDelete, "/v1/restrictions", admin, []byte(`{"subject":"jane"}`))
		if rec := a.do(http.MethodDelete, "/v1/restrictions", admin, []byte(`{"subject":"jane"}`)); rec.Code != http.StatusNotFound {
			t.Fatalf("lifting twice: %d", rec.Code)
		}

		a.doJSON(http.MethodPost, "/v1/erasure-requests", admin, map[string]any{"subject": "jane"}, http.StatusCreated, nil)
		rec = a.do(http.MethodGet, "/v1/streams/order-7/events", admin, nil)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"email":{"erased":true}`) || !strings.Contains(rec.Body.String(), `"total":12`) {
			t.Fatalf("after erasure: %d %s", rec.Code, rec.Body)
		}
		b, _ := json.Marshal(piiAppend("order-9", data, pii))
		if rec := a.do(http.MethodPost, "/v1/streams/order-9/events", admin, b); rec.Code != http.StatusConflict {
			t.Fatalf("marking a value of an erased subject: %d %s; want 409", rec.Code, rec.Body)
		}
		if strings.Contains(a.logs.String(), "jane") {
			t.Fatal("the server's log names the subject or holds a value")
		}
	})
}
