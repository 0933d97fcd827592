package api

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestVersionConflictSpeaksTheAPI: a conflict on a stream without events
// says no_stream, never -1, and the expected_version it advises is one the
// API takes and that then succeeds.
func TestVersionConflictSpeaksTheAPI(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.tokenFor("acme")
		advice := regexp.MustCompile(`retry with expected_version ("no_stream"|\d+)`)
		for _, r := range []struct {
			name     string
			stream   string
			events   int // appended before
			expected any
			actual   string
		}{
			{"exists on a new stream", "order-1", 0, "exists", `"no_stream"`},
			{"position 0 on a new stream", "order-2", 0, 0, `"no_stream"`},
			{"position 7 on a new stream", "order-3", 0, 7, `"no_stream"`},
			{"no_stream on a stream with events", "order-4", 1, "no_stream", `0`},
			{"a position behind", "order-5", 3, 1, `2`},
			{"a position ahead", "order-6", 1, 5, `0`},
		} {
			t.Run(r.name, func(t *testing.T) {
				for range r.events {
					a.doJSON("POST", "/v1/streams/"+r.stream+"/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
				}
				b, _ := json.Marshal(map[string]any{"expected_version": r.expected, "events": []any{event("B", 2)}})
				rec := a.do("POST", "/v1/streams/"+r.stream+"/events", tok, b)
				p := wantProblem(t, rec, http.StatusConflict, eventvault.ECONFLICT)
				if string(p.ActualVersion) != r.actual || strings.Contains(rec.Body.String(), ":-1") || strings.Contains(p.Detail, " -1") {
					t.Fatalf("actual_version %s, want %s; body %s", p.ActualVersion, r.actual, rec.Body)
				}
				m := advice.FindStringSubmatch(strings.ToLower(p.Detail))
				if m == nil {
					t.Fatalf("no advice in %q", p.Detail)
				}
				// The advice, followed, is taken.
				retry := []byte(`{"expected_version":` + m[1] + `,"events":[` + mustJSON(event("B", 2)) + `]}`)
				if rec := a.do("POST", "/v1/streams/"+r.stream+"/events", tok, retry); rec.Code != http.StatusCreated {
					t.Fatalf("retry as advised (%s): %d %s", m[1], rec.Code, rec.Body)
				}
			})
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestErasureRequestStatusSaysWhatHappened: 201 with Location for a new
// request completed inline, 200 for the existing one, 409 (a problem naming
// the kept request) when rejected under a hold.
func TestErasureRequestStatusSaysWhatHappened(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		a.doJSON("POST", "/v1/streams/order-1/events", tok, map[string]any{"subject": "customer-1", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		ask := func(subject string) *httpResult {
			rec := a.do("POST", "/v1/erasure-requests", tok, []byte(`{"subject":"`+subject+`"}`))
			return &httpResult{rec.Code, rec.Header(), rec.Body.Bytes()}
		}
		// New, completed inline: 201 and Location, which GET serves.
		created := ask("customer-1")
		var er erasureResponse
		json.Unmarshal(created.body, &er)
		if created.status != http.StatusCreated || er.State != "completed" || created.header.Get("Location") != "/v1/erasure-requests/"+er.ID {
			t.Fatalf("new request: %d %v %s", created.status, created.header, created.body)
		}
		var got erasureResponse
		a.doJSON("GET", created.header.Get("Location"), tok, nil, http.StatusOK, &got)
		// Asked again: the existing request, 200.
		again := ask("customer-1")
		var er2 erasureResponse
		json.Unmarshal(again.body, &er2)
		if again.status != http.StatusOK || er2.ID != er.ID || again.header.Get("Content-Location") != "/v1/erasure-requests/"+er.ID {
			t.Fatalf("repeat: %d %v %s", again.status, again.header, again.body)
		}
		// A subject with nothing held: a new, completed request too.
		if r := ask("nobody-known"); r.status != http.StatusCreated {
			t.Fatalf("subject without data: %d %s", r.status, r.body)
		}
		// Under a hold: 409, each time, with the rejected request kept.
		a.doJSON("PUT", "/v1/holds", tok, map[string]any{"subject": "customer-2", "reason": "case 12"}, http.StatusOK, nil)
		for range 2 {
			r := ask("customer-2")
			var p struct {
				Code, State, RequestID, Request string
			}
			json.Unmarshal(r.body, &p)
			var pp map[string]any
			json.Unmarshal(r.body, &pp)
			if r.status != http.StatusConflict || r.header.Get("Content-Type") != ProblemContentType || pp["state"] != "rejected" || pp["request_id"] == nil {
				t.Fatalf("under hold: %d %s", r.status, r.body)
			}
			var rejected erasureResponse
			a.doJSON("GET", pp["request"].(string), tok, nil, http.StatusOK, &rejected)
			if rejected.State != "rejected" {
				t.Fatalf("kept request %+v", rejected)
			}
		}
		rec := a.do("DELETE", "/v1/holds", tok, []byte(`{"subject":"customer-2"}`))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("lift: %d", rec.Code)
		}
		if r := ask("customer-2"); r.status != http.StatusCreated {
			t.Fatalf("after the hold: %d %s", r.status, r.body)
		}
	})
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// TestEverySubjectIDWorksOnEverySubjectEndpoint: any subject id an append
// takes (a '/', an encoded '/', '?', '#', '..', spaces, non-ASCII, 200
// bytes) can be put on hold, blocks erasure, is lifted and erased.
func TestEverySubjectIDWorksOnEverySubjectEndpoint(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		for i, subject := range []string{
			"cust/alice", "cust%2Falice", "a/../b", "who?x=1", "frag#1", "with space", "..", "/", "Ünïcödé 名前", `quote"back\slash`,
			strings.Repeat("s/", 100),
		} {
			t.Run(subject, func(t *testing.T) {
				stream := "order-" + string(rune('a'+i))
				a.doJSON("POST", "/v1/streams/"+stream+"/events", tok, map[string]any{"subject": subject, "events": []any{event("A", 1)}}, http.StatusCreated, nil)
				sb := mustJSON(subject)
				a.doJSON("PUT", "/v1/holds", tok, json.RawMessage(`{"subject":`+sb+`,"reason":"litigation"}`), http.StatusOK, nil)
				wantProblem(t, a.do("POST", "/v1/erasure-requests", tok, []byte(`{"subject":`+sb+`}`)), http.StatusConflict, eventvault.ECONFLICT, "legal hold")
				wantProblem(t, a.do("DELETE", "/v1/streams/"+stream, tok, nil), http.StatusConflict, eventvault.ECONFLICT, "legal hold")
				a.doJSON("GET", "/v1/streams/"+stream+"/events", tok, nil, http.StatusOK, nil)
				if rec := a.do("DELETE", "/v1/holds", tok, []byte(`{"subject":`+sb+`}`)); rec.Code != http.StatusNoContent {
					t.Fatalf("lift: %d %s", rec.Code, rec.Body)
				}
				a.doJSON("POST", "/v1/erasure-requests", tok, json.RawMessage(`{"subject":`+sb+`}`), http.StatusCreated, nil)
				wantProblem(t, a.do("GET", "/v1/streams/"+stream+"/events", tok, nil), http.StatusGone, eventvault.EERASED)
			})
		}
		// The old path routes are gone, and say where to go.
		wantProblem(t, a.do("PUT", "/v1/subjects/customer-1/hold", tok, []byte(`{"reason":"x"}`)), http.StatusNotFound, eventvault.ENOTFOUND, "/v1/holds")
	})
}
