package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestAcceptIsNegotiated: every route answers in what Accept prefers,
// weights (q) and wildcards followed (RFC 9110, section 12.5.1), and one
// that names nothing the route answers in is 406 problem+json listing
// what it does, before anything is done. Inputs tried: no Accept, */*,
// application/*, each encoding alone, two with weights either way, equal
// weights (the first listed wins), q=0, a charset parameter, two Accept
// headers, a header that does not parse (disregarded), text/html and
// application/xml on reads, frames on a JSON-only route, JSON on the feed,
// text/html on an append (nothing written) and on a path no route has
// (404, not 406).
func TestAcceptIsNegotiated(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	body := `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"n":1}}]}`
	if rec := a.do(http.MethodPost, "/v1/streams/order-1/events", tok, []byte(body)); rec.Code != http.StatusCreated {
		t.Fatalf("append: %d %s", rec.Code, rec.Body)
	}
	admin := a.admin("acme")
	send := func(method, path string, accept []string, body string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		bearer := tok
		if strings.HasPrefix(path, "/v1/tokens") {
			bearer = admin
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		for _, v := range accept {
			req.Header.Add("Accept", v)
		}
		return a.serve(req)
	}
	const jsonType = "application/json; charset=utf-8"
	for _, path := range []string{"/v1/streams/order-1/events", "/v1/events"} {
		for _, c := range []struct {
			accept []string
			want   string
		}{
			{nil, jsonType},
			{[]string{"*/*"}, jsonType},
			{[]string{"application/*"}, jsonType},
			{[]string{NDJSONContentType}, NDJSONContentType},
			{[]string{FramesContentType}, FramesContentType},
			{[]string{"application/json, application/x-ndjson;q=0.1"}, jsonType},
			{[]string{"application/json;q=1, " + FramesContentType + ";q=0.01"}, jsonType},
			{[]string{"application/x-ndjson, application/json;q=0.5"}, NDJSONContentType},
			{[]string{"application/*;q=0.5, " + FramesContentType}, FramesContentType},
			{[]string{"application/x-ndjson, " + FramesContentType}, NDJSONContentType},
			{[]string{FramesContentType + ";q=0, */*;q=0.1"}, jsonType},
			{[]string{"application/json; charset=utf-8"}, jsonType},
			{[]string{"text/html;q=0.9", FramesContentType + ";q=0.5"}, FramesContentType},
			{[]string{"application/json;;;q=x"}, jsonType},
		} {
			rec := send(http.MethodGet, path, c.accept, "")
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != c.want {
				t.Errorf("GET %s, Accept %q: %d %q, want 200 %q", path, c.accept, rec.Code, rec.Header().Get("Content-Type"), c.want)
			}
		}
		for _, accept := range []string{"text/html", "application/xml", FramesContentType + ";q=0"} {
			wantProblem(t, send(http.MethodGet, path, []string{accept}, ""), http.StatusNotAcceptable, eventvault.EINVALID,
				"it answers in application/json, "+FramesContentType+", "+NDJSONContentType)
		}
	}
	wantProblem(t, send(http.MethodGet, "/v1/tokens", []string{FramesContentType}, ""), http.StatusNotAcceptable, eventvault.EINVALID, "it answers in application/json;")
	if rec := send(http.MethodGet, "/v1/tokens", []string{"*/*"}, ""); rec.Code != http.StatusOK {
		t.Errorf("GET /v1/tokens, Accept */*: %d %s", rec.Code, rec.Body)
	}
	wantProblem(t, send(http.MethodGet, "/v1/subscribe", []string{"application/json"}, ""), http.StatusNotAcceptable, eventvault.EINVALID,
		"it answers in text/event-stream", "GET /v1/events?from=N&wait=30")
	// The feed opens for text/event-stream (cut short by the context).
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/subscribe", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", EventStreamContentType)
	if rec := a.serve(req); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), EventStreamContentType) {
		t.Errorf("GET /v1/subscribe, Accept text/event-stream: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	// An append refused for its Accept writes nothing.
	other := `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"n":2}}]}`
	wantProblem(t, send(http.MethodPost, "/v1/streams/order-2/events", []string{"text/html"}, other), http.StatusNotAcceptable, eventvault.EINVALID)
	wantProblem(t, send(http.MethodGet, "/v1/streams/order-2/events", nil, ""), http.StatusNotFound, eventvault.ENOTFOUND)
	// A path no route has is 404, whatever Accept says.
	wantProblem(t, send(http.MethodGet, "/v1/nowhere", []string{"text/html"}, ""), http.StatusNotFound, eventvault.ENOTFOUND)
}
