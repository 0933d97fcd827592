package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
)

// TestAShreddedTenantTakesNothingNew shreds tenant acme, then tries what
// once still worked or misled: issuing a token for acme and writing and
// deleting one of its policies as the root (each is 410 "tenant acme was
// shredded", where the token was 201 and the policy 201); appending,
// with a JWT of acme that still authenticates, to its old stream, to a new
// one and with a marked personal value (each is 409 saying the tenant was
// shredded, never "append to a new one"); and a token the shred revoked,
// whose 401 names a shred among the causes and is word for word the 401 of
// a token never issued. Another tenant still takes tokens. Both stores.
func TestAShreddedTenantTakesNothingNew(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testAShreddedTenantTakesNothingNew(t, newJWTAPI(t, nil)) })
	t.Run("postgres", func(t *testing.T) { testAShreddedTenantTakesNothingNew(t, newJWTAPIOver(t, newPostgresStore(t), nil)) })
}

func testAShreddedTenantTakesNothingNew(t *testing.T, a *jwtAPI) {
	jwtToken := a.idp.Sign(t, jwttest.KidRSA, validClaims())
	admin := a.admin("acme")
	if rec := a.appendOne("order-1", jwtToken); rec.Code != http.StatusCreated {
		t.Fatalf("append before the shred: %d %s", rec.Code, rec.Body)
	}
	a.doJSON(http.MethodPost, "/v1/admin/tenants/acme/shred", a.root, nil, http.StatusOK, nil)

	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"tenant":"acme","name":"g2"}`)), http.StatusGone, eventvault.EERASED, "tenant acme was shredded")
	wantProblem(t, a.do(http.MethodPut, "/v1/policies/x?tenant=acme", a.root, []byte(`{"policy":"permit (principal, action, resource);"}`)), http.StatusGone, eventvault.EERASED, "tenant acme was shredded")
	wantProblem(t, a.do(http.MethodDelete, "/v1/policies/app?tenant=acme", a.root, nil), http.StatusGone, eventvault.EERASED, "tenant acme was shredded")

	marked := `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"e":"x"},"pii":{"/e":{"subject":"cust-1"}}}]}`
	for _, c := range []struct{ name, stream, body string }{
		{"its old stream", "order-1", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`},
		{"a new stream", "order-2", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`},
		{"a marked value", "order-3", marked},
	} {
		p := wantProblem(t, a.do(http.MethodPost, "/v1/streams/"+c.stream+"/events", jwtToken, []byte(c.body)), http.StatusConflict, eventvault.ECONFLICT, "tenant acme was shredded")
		if strings.Contains(p.Detail, "new one") || strings.Contains(p.Detail, "another stream") {
			t.Errorf("append to %s: the conflict advises another stream: %s", c.name, p.Detail)
		}
	}

	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", jwtToken, nil), http.StatusGone, eventvault.EERASED)

	revoked := wantProblem(t, a.do(http.MethodGet, "/v1/events", admin, nil), http.StatusUnauthorized, eventvault.EUNAUTHORIZED, "tenant was shredded")
	never := wantProblem(t, a.do(http.MethodGet, "/v1/events", "evt_"+strings.Repeat("x", 43), nil), http.StatusUnauthorized, eventvault.EUNAUTHORIZED)
	if revoked.Detail != never.Detail {
		t.Errorf("a revoked token's 401 differs from a never-issued one's, which tells an unauthenticated caller:\n%s\n%s", revoked.Detail, never.Detail)
	}
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "globex", "name": "g"}, http.StatusCreated, nil)
}
