package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestRequestIDIsAnsweredLoggedAndInProblems: a client's safe X-Request-Id
// comes back in the header, in the problem body and in the access log; an
// unsafe or missing one is replaced by one the server makes.
func TestRequestIDIsAnsweredLoggedAndInProblems(t *testing.T) {
	a := newTestAPI(t)
	get := func(path, id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if id != "" {
			req.Header.Set(RequestIDHeader, id)
		}
		return a.serve(req)
	}
	problemID := func(rec *httptest.ResponseRecorder) string {
		var p struct {
			ID string `json:"http_request_id"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body %s: %v", rec.Body, err)
		}
		return p.ID
	}

	// The client's id, on a problem (401 without a token).
	rec := get("/v1/events", "client-report.42")
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/events without a token: %d", rec.Code)
	}
	if got := rec.Header().Get(RequestIDHeader); got != "client-report.42" {
		t.Fatalf("X-Request-Id %q, want the client's", got)
	}
	if got := problemID(rec); got != "client-report.42" {
		t.Fatalf("problem http_request_id %q, want the client's", got)
	}
	if !strings.Contains(a.logs.String(), "http_request_id=client-report.42") {
		t.Fatalf("the access log lacks the request id:\n%s", a.logs.String())
	}
	// The access line names its source for a handler that adds it (the
	// access log makes its record with a caller found once).
	for line := range strings.Lines(a.logs.String()) {
		if strings.Contains(line, "http_request_id=client-report.42") && !strings.Contains(line, "/api/server.go:") {
			t.Errorf("the access line names no source in api/server.go: %s", line)
		}
	}

	// An unsafe or over-long id is not taken (nor logged); a new one is made.
	for _, bad := range []string{"has space", `quote"s`, strings.Repeat("a", 65), "line\tbreak", "é"} {
		rec := get("/v1/events", bad)
		got := rec.Header().Get(RequestIDHeader)
		if _, err := uuid.Parse(got); err != nil {
			t.Errorf("client id %q: answered X-Request-Id %q, want a UUID the server made", bad, got)
		}
		if problemID(rec) != got {
			t.Errorf("client id %q: problem id %q differs from the header's %q", bad, problemID(rec), got)
		}
		if strings.Contains(a.logs.String(), bad) {
			t.Errorf("client id %q reached the log", bad)
		}
	}

	// No id: one is made, on success too, and each request has its own.
	r1, r2 := get("/healthz", ""), get("/healthz", "")
	id1, id2 := r1.Header().Get(RequestIDHeader), r2.Header().Get(RequestIDHeader)
	if r1.Code != http.StatusOK || id1 == "" || id1 == id2 {
		t.Fatalf("healthz: %d, ids %q and %q; want 200 and two distinct ids", r1.Code, id1, id2)
	}
	if !strings.Contains(a.logs.String(), "http_request_id="+id1) {
		t.Fatalf("the access log lacks the made id %s", id1)
	}
}
