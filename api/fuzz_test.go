package api

import (
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzAppendBody sends arbitrary bodies to the append endpoint: whatever a
// client sends, the answer is never a 5xx, and every error is a problem body.
func FuzzAppendBody(f *testing.F) {
	seeds := []string{
		`{"events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"A","data":{}}]}`,
		`{"expected_version":3,"events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"A","data":[1,2],"metadata":{"a":null}}]}`,
		`{"expected_version":"exists","events":[]}`,
		`{"events":[{"id":"","type":"","data":null}]}`,
		`{"events":null}`, `[]`, `"x"`, `{`, ``, `{"events":[{}]}`, "\x00\xff",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	a := newTestAPI(&testing.T{})
	f.Fuzz(func(t *testing.T, body []byte) {
		a.t = t
		tok := a.root
		rec := a.do(http.MethodPost, "/v1/streams/fuzz-1/events", tok, body)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code >= 400 {
			if ct := rec.Header().Get("Content-Type"); ct != ProblemContentType {
				t.Fatalf("status %d with Content-Type %q", rec.Code, ct)
			}
			var p problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Detail == "" {
				t.Fatalf("status %d with body %q", rec.Code, rec.Body)
			}
		}
	})
}
