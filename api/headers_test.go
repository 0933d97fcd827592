package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestRepeatedSingletonHeadersAreRefused: a request that gives a header
// the server reads as one value twice is 400 naming the header, on every
// kind of endpoint, and nothing happens (the first value does not win).
func TestRepeatedSingletonHeadersAreRefused(t *testing.T) {
	a := newTestAPI(t)
	tok, other := a.eraser("acme"), a.eraser("globex")
	body := func() []byte {
		return []byte(`{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`)
	}
	for _, r := range []struct {
		name   string
		method string
		path   string
		header string
		values []string
	}{
		{"two Authorization, different tokens", "GET", "/v1/events", "Authorization", []string{"Bearer " + tok, "Bearer " + other}},
		{"two Authorization, the same token", "GET", "/v1/events", "Authorization", []string{"Bearer " + tok, "Bearer " + tok}},
		{"two Authorization on an append", "POST", "/v1/streams/order-1/events", "Authorization", []string{"Bearer " + tok, "Bearer " + other}},
		{"two Content-Type", "POST", "/v1/streams/order-1/events", "Content-Type", []string{"application/json", "text/plain"}},
		{"two Content-Type, the same", "POST", "/v1/streams/order-1/events", "Content-Type", []string{"application/json", "application/json"}},
		{"two Content-Encoding", "POST", "/v1/streams/order-1/events", "Content-Encoding", []string{"identity", "identity"}},
		{"two Content-Length", "POST", "/v1/streams/order-1/events", "Content-Length", []string{"1", "2"}},
		{"two X-Request-Id", "GET", "/healthz", "X-Request-Id", []string{"a", "b"}},
		{"two Authorization before the router", "GET", "/v1/nowhere", "Authorization", []string{"Bearer " + tok, "Bearer " + other}},
	} {
		t.Run(r.name, func(t *testing.T) {
			var b []byte
			if r.method == "POST" {
				b = body()
			}
			req := httptest.NewRequest(r.method, r.path, bytes.NewReader(b))
			if r.header != "Authorization" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			for _, v := range r.values {
				req.Header.Add(r.header, v)
			}
			rec := a.serve(req)
			p := wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, "header "+r.header+" is given 2 times")
			if strings.Contains(p.Detail, tok) || strings.Contains(p.Detail, "Bearer") {
				t.Fatalf("the problem echoes a value: %s", p.Detail)
			}
		})
	}
	// Nothing was appended.
	wantProblem(t, a.do("GET", "/v1/streams/order-1/events", tok, nil), http.StatusNotFound, eventvault.ENOTFOUND)
}

// TestEndpointsWithoutABodyRefuseOne: every GET, HEAD and DELETE endpoint
// but DELETE /v1/holds answers a non-empty body, with a length or chunked,
// 400, and does nothing; an empty body is fine.
func TestEndpointsWithoutABodyRefuseOne(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON("POST", "/v1/streams/ct-1/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	var er erasureResponse
	a.doJSON("POST", "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusCreated, &er)
	routes := []struct{ method, path, detail string }{
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/v1/openapi.json", ""},
		{"GET", "/v1/keys/signing", ""},
		{"GET", "/v1/streams/ct-1/events", ""},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/erasure-requests/" + er.ID, ""},
		{"DELETE", "/v1/streams/ct-1", "purge is a query parameter"},
	}
	for _, r := range routes {
		methods := []string{r.method}
		if r.method == "GET" {
			methods = append(methods, "HEAD")
		}
		for _, m := range methods {
			for _, chunked := range []bool{false, true} {
				name := m + " " + r.path
				if chunked {
					name += " chunked"
				}
				t.Run(name, func(t *testing.T) {
					req := httptest.NewRequest(m, r.path, strings.NewReader(`{"purge":true}`))
					if chunked {
						req.ContentLength = -1
						req.Body = io.NopCloser(strings.NewReader(`{"purge":true}`))
					}
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Content-Type", "application/json")
					rec := a.serve(req)
					if m == "HEAD" {
						if rec.Code != http.StatusBadRequest || rec.Body.Len() != 0 {
							t.Fatalf("HEAD with a body: %d, %d bytes", rec.Code, rec.Body.Len())
						}
						return
					}
					wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, "this endpoint takes no body", r.detail)
				})
			}
			if r.method == "DELETE" {
				// An empty body is taken, so a DELETE would shred the
				// stream the rows above need; the GET routes show the rule.
				continue
			}
			t.Run(m+" "+r.path+" empty chunked body", func(t *testing.T) {
				req := httptest.NewRequest(m, r.path, nil)
				req.ContentLength = -1
				req.Body = io.NopCloser(strings.NewReader(""))
				req.Header.Set("Authorization", "Bearer "+tok)
				if rec := a.serve(req); rec.Code != http.StatusOK {
					t.Fatalf("empty chunked body: %d %s", rec.Code, rec.Body)
				}
			})
		}
	}
	// The stream was not shredded; DELETE /v1/holds still takes its body.
	a.doJSON("GET", "/v1/streams/ct-1/events", tok, nil, http.StatusOK, nil)
	a.doJSON("PUT", "/v1/holds", tok, map[string]any{"subject": "customer-2", "reason": "r"}, http.StatusOK, nil)
	rec := a.do("DELETE", "/v1/holds", tok, []byte(`{"subject":"customer-2"}`))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/holds with its body: %d %s", rec.Code, rec.Body)
	}
}

// TestEncodedSlashInANameIsAnInvalidName: %2F in a stream or tenant name
// is a character of the name, refused as invalid like %3F, not a path no
// endpoint has; other escapes in a name are unescaped as before.
func TestEncodedSlashInANameIsAnInvalidName(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	for _, r := range []struct{ method, path, detail string }{
		{"GET", "/v1/streams/order%2F42-1/events", "invalid stream name"},
		{"GET", "/v1/streams/order%2f42-1/events", "invalid stream name"},
		{"GET", "/v1/streams/order%3F42-1/events", "invalid stream name"},
		{"POST", "/v1/streams/order%2F42-1/events", "invalid stream name"},
		{"DELETE", "/v1/streams/order%2F42-1", "invalid stream name"},
		{"POST", "/v1/admin/tenants/a%2Fb/kek/rotate", "tenant"},
		{"POST", "/v1/admin/tenants/a%2Fb/shred", "tenant"},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			var body []byte
			if r.method == "POST" && strings.Contains(r.path, "streams") {
				body = []byte(`{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`)
			}
			wantProblem(t, a.do(r.method, r.path, a.root, body), http.StatusBadRequest, eventvault.EINVALID, r.detail)
		})
	}
	// An escaped character that is allowed in a name is that character
	// (served directly: the contract checker matches the raw path).
	req := httptest.NewRequest("POST", "/v1/streams/order%2D7/events", strings.NewReader(`{"events":[{"id":"`+uuid.NewString()+`","type":"A","data":1}]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	a.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("order%%2D7: %d %s", rec.Code, rec.Body)
	}
	a.doJSON("GET", "/v1/streams/order-7/events", tok, nil, http.StatusOK, nil)
}

// TestTenantWideActionsSayStreamsStar: a token with erase on some streams
// only is told that a tenant-wide action needs the capability on "*".
func TestTenantWideActionsSayStreamsStar(t *testing.T) {
	a := newTestAPI(t)
	var narrow tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": "acme", "name": "order-eraser", "rules": []any{map[string]any{"capabilities": []string{"erase", "read"}, "streams": "order-*"}},
	}, http.StatusCreated, &narrow)
	for _, r := range []struct{ method, path, body, capability string }{
		{"POST", "/v1/erasure-requests", `{"subject":"x"}`, `"erase"`},
		{"PUT", "/v1/holds", `{"subject":"x","reason":"r"}`, `"erase"`},
		{"DELETE", "/v1/holds", `{"subject":"x"}`, `"erase"`},
		{"GET", "/v1/events", "", `"read"`},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			var body []byte
			if r.body != "" {
				body = []byte(r.body)
			}
			wantProblem(t, a.do(r.method, r.path, narrow.Token, body), http.StatusForbidden, eventvault.EFORBIDDEN, r.capability, `"streams": "*"`)
		})
	}
}
