package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault/auth"
)

// TestTokenLifecycle lists, issues with a ttl and revokes tokens through
// the API, on both stores.
func TestTokenLifecycle(t *testing.T) {
	test := func(t *testing.T, a *testAPI) {
		var ops tokenResponse
		a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "ops",
			"rules": []map[string]any{{"capabilities": []string{"admin"}, "streams": "*"}}}, http.StatusCreated, &ops)
		if ops.ExpiresAt != nil {
			t.Fatalf("a token without ttl has expires_at %v", ops.ExpiresAt)
		}
		var app tokenResponse
		a.doJSON(http.MethodPost, "/v1/tokens", ops.Token, map[string]any{"name": "app", "ttl": "720h"}, http.StatusCreated, &app)
		if app.ExpiresAt == nil || app.ExpiresAt.Sub(app.CreatedAt) != 720*time.Hour {
			t.Fatalf("ttl 720h: created %v, expires %v", app.CreatedAt, app.ExpiresAt)
		}
		var secs tokenResponse
		a.doJSON(http.MethodPost, "/v1/tokens", ops.Token, map[string]any{"name": "secs", "ttl": 3600}, http.StatusCreated, &secs)
		if secs.ExpiresAt == nil || secs.ExpiresAt.Sub(secs.CreatedAt) != time.Hour {
			t.Fatalf("ttl 3600: created %v, expires %v", secs.CreatedAt, secs.ExpiresAt)
		}
		for _, bad := range []any{"1s", "9000h", "8785h", "-5m", "soon", "100000000h", 0, -5, 1.5, true} {
			rec := a.do(http.MethodPost, "/v1/tokens", ops.Token, []byte(`{"name":"x","ttl":`+jsonOf(t, bad)+`}`))
			wantProblem(t, rec, http.StatusBadRequest, "invalid", "ttl")
			// The problem names the bounds, never the value sent.
			var p struct{ Detail, Pointer string }
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			if s, ok := bad.(string); ok && strings.Contains(p.Detail, s) || p.Pointer != "/ttl" {
				t.Errorf("ttl %v: %s; want a problem at /ttl that does not echo the value", bad, rec.Body)
			}
		}
		// A duration past what Go's can hold says the range too.
		wantProblem(t, a.do(http.MethodPost, "/v1/tokens", ops.Token, []byte(`{"name":"x","ttl":"100000000h"}`)), http.StatusBadRequest, "invalid", "from 1m to 8784h (366 days)")
		// An explicit empty rules list grants nothing: 400, never the
		// default (append and read on every stream), which only a request
		// without rules gets.
		wantProblem(t, a.do(http.MethodPost, "/v1/tokens", ops.Token, []byte(`{"name":"none","rules":[]}`)), http.StatusBadRequest, "invalid", "rules is an empty list")
		// A name is required, as the CLI's -name is: without one (or
		// empty) the token could not be told apart in the list. It tries
		// no name, "" and null (refused for its null: TestAFieldNamingASubjectOrANameIsNeverEmpty).
		for body, says := range map[string]string{`{}`: "name is missing", `{"name":""}`: "name is missing", `{"name":null,"ttl":"720h"}`: `field "name" (at /name) is null`} {
			wantProblem(t, a.do(http.MethodPost, "/v1/tokens", ops.Token, []byte(body)), http.StatusBadRequest, "invalid", says)
		}
		a.tokenFor("other")

		var list tokenList
		a.doJSON(http.MethodGet, "/v1/tokens", ops.Token, nil, http.StatusOK, &list)
		if list.Tenant != "acme" || len(list.Tokens) != 3 || list.Tokens[0].ID != ops.ID || list.Tokens[1].ID != app.ID {
			t.Fatalf("list: %+v", list)
		}
		if l := list.Tokens[1]; l.ExpiresAt == nil || l.Expired || l.Name != "app" {
			t.Fatalf("listed app token: %+v", l)
		}
		rec := a.do(http.MethodGet, "/v1/tokens", ops.Token, nil)
		if strings.Contains(rec.Body.String(), app.Token) || strings.Contains(rec.Body.String(), "evt_") || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("the list shows a secret or may be cached: %s", rec.Body)
		}
		// The root token names the tenant; an admin cannot list another's.
		a.doJSON(http.MethodGet, "/v1/tokens?tenant=acme", a.root, nil, http.StatusOK, &list)
		if len(list.Tokens) != 3 {
			t.Fatalf("root's list of acme: %+v", list)
		}
		wantProblem(t, a.do(http.MethodGet, "/v1/tokens?tenant=other", ops.Token, nil), http.StatusForbidden, "forbidden")
		wantProblem(t, a.do(http.MethodGet, "/v1/tokens", app.Token, nil), http.StatusForbidden, "forbidden")
		wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/"+ops.ID, app.Token, nil), http.StatusForbidden, "forbidden")

		// Revoke: 204, then 401 for the token, 404 for a second revoke.
		if rec := a.do(http.MethodGet, "/v1/events", app.Token, nil); rec.Code != http.StatusOK {
			t.Fatalf("app token before revoke: %d %s", rec.Code, rec.Body)
		}
		if rec := a.do(http.MethodDelete, "/v1/tokens/"+app.ID, ops.Token, nil); rec.Code != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
		}
		wantProblem(t, a.do(http.MethodGet, "/v1/events", app.Token, nil), http.StatusUnauthorized, "unauthorized")
		wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/"+app.ID, ops.Token, nil), http.StatusNotFound, "not_found")
		wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/tok_nope", ops.Token, nil), http.StatusNotFound, "not_found")
		a.doJSON(http.MethodGet, "/v1/tokens", ops.Token, nil, http.StatusOK, &list)
		if len(list.Tokens) != 2 {
			t.Fatalf("list after revoke: %+v", list)
		}
	}
	t.Run("bolt", func(t *testing.T) { test(t, newTestAPI(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, newPostgresAPI(t)) })
}

// TestARevokeOfNothingIsNotRecorded: revoking a token id the tenant does
// not have is 404, and the audit log records no revocation (PostgreSQL
// committed "token_revoked ok" for it); a revoke that happens is
// recorded. It tries tok_0123456789abcdef, then the id of a real token,
// on both stores.
func TestARevokeOfNothingIsNotRecorded(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		var tok tokenResponse
		a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "app"}, http.StatusCreated, &tok)
		wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/tok_0123456789abcdef?tenant=acme", a.root, nil), http.StatusNotFound, "not_found", "has no token tok_0123456789abcdef")
		if rec := a.do(http.MethodDelete, "/v1/tokens/"+tok.ID+"?tenant=acme", a.root, nil); rec.Code != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
		}
		recs := a.exportAndVerify(t, "acme")
		if r, ok := findRecord(recs, "token_revoked", "token:tok_0123456789abcdef"); ok {
			t.Errorf("a revoke of nothing is recorded: %+v", r)
		}
		if _, ok := findRecord(recs, "token_revoked", "token:"+tok.ID); !ok {
			t.Errorf("the revoke is not recorded: %+v", recs)
		}
	})
}

// TestExpiredTokenIs401SayingSo moves the Tokens' clock past a token's
// expiry.
func TestExpiredTokenIs401SayingSo(t *testing.T) {
	a := newTestAPI(t)
	var tok tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "short", "ttl": "1m"}, http.StatusCreated, &tok)
	if rec := a.do(http.MethodGet, "/v1/events", tok.Token, nil); rec.Code != http.StatusOK {
		t.Fatalf("before expiry: %d %s", rec.Code, rec.Body)
	}
	a.tokens().Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	wantProblem(t, a.do(http.MethodGet, "/v1/events", tok.Token, nil), http.StatusUnauthorized, "unauthorized", "expired")
	a.tokens().Now = nil
	var list tokenList
	a.doJSON(http.MethodGet, "/v1/tokens?tenant=acme", a.root, nil, http.StatusOK, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].Expired {
		t.Fatalf("list: %+v", list)
	}
}

func (a *testAPI) tokens() *auth.Tokens { return a.srv.tokens.(*auth.Tokens) }

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
