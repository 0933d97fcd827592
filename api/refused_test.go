package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

// capToken issues a token for tenant with caps on every stream.
func (a *testAPI) capToken(tenant string, caps ...eventvault.Capability) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": tenant, "name": "caps",
		"rules": []eventvault.Rule{{Capabilities: caps, Streams: "*"}},
	}, http.StatusCreated, &out)
	return out.Token
}

// TestRefusedAppendWritesNothing: a 409 on a stream without events leaves
// no key row behind, so DELETE of that stream finds nothing to shred (404)
// and the name is not fenced: it takes its first append afterwards.
func TestRefusedAppendWritesNothing(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		// The tenant exists, with events, and an event id is taken.
		used := event("A", 1)
		a.doJSON(http.MethodPost, "/v1/streams/other-1/events", tok, map[string]any{"events": []any{used}}, http.StatusCreated, nil)
		a.doJSON(http.MethodPost, "/v1/streams/owned-1/events", tok, map[string]any{"subject": "alice", "events": []any{event("A", 1)}}, http.StatusCreated, nil)

		for i, tc := range []struct {
			name            string
			body            map[string]any
			versionConflict bool
		}{
			{"exists", map[string]any{"expected_version": "exists", "events": []any{event("B", 1)}}, true},
			{"exact 3", map[string]any{"expected_version": 3, "events": []any{event("B", 1)}}, true},
			{"exact 0", map[string]any{"expected_version": 0, "events": []any{event("B", 1)}}, true},
			{"exists, naming a subject", map[string]any{"expected_version": "exists", "subject": "bob", "events": []any{event("B", 1)}}, true},
			{"an id used in another stream", map[string]any{"expected_version": "no_stream", "events": []any{used}}, false},
			{"an id used in another stream, any", map[string]any{"events": []any{event("B", 1), used}}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stream := fmt.Sprintf("/v1/streams/fresh-%d", i)
				b, _ := json.Marshal(tc.body)
				p := wantProblem(t, a.do(http.MethodPost, stream+"/events", tok, b), http.StatusConflict, eventvault.ECONFLICT)
				if tc.versionConflict && string(p.ActualVersion) != `"no_stream"` {
					t.Errorf("conflict on a stream without events: actual_version %s, want \"no_stream\"", p.ActualVersion)
				}
				wantProblem(t, a.do(http.MethodGet, stream+"/events", tok, nil), http.StatusNotFound, eventvault.ENOTFOUND)
				wantProblem(t, a.do(http.MethodDelete, stream, tok, nil), http.StatusNotFound, eventvault.ENOTFOUND)
				// Not fenced: the name takes its first append.
				var res appendOut
				a.doJSON(http.MethodPost, stream+"/events", tok, map[string]any{"expected_version": "no_stream", "events": []any{event("C", 1)}}, http.StatusCreated, &res)
				if res.Version != 0 {
					t.Errorf("first append after the 409: version %d, want 0", res.Version)
				}
			})
		}
	})
}

// TestRefusedAppendTellsNoOwnerWithoutRead: a token that may append but
// not read gets one and the same conflict for a version conflict and an
// owner conflict, so it cannot learn who owns a stream (nor its version);
// a token with read is told which.
func TestRefusedAppendTellsNoOwnerWithoutRead(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		setup := a.capToken("acme", eventvault.CapAppend, eventvault.CapRead)
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", setup, map[string]any{"subject": "alice", "events": []any{event("A", 1), event("B", 2)}}, http.StatusCreated, nil)

		bodies := []struct {
			name string
			body map[string]any
		}{
			{"right subject, version far ahead", map[string]any{"subject": "alice", "expected_version": 1000, "events": []any{event("C", 1)}}},
			{"wrong subject, version far ahead", map[string]any{"subject": "mallory", "expected_version": 1000, "events": []any{event("C", 1)}}},
			{"wrong subject, right version", map[string]any{"subject": "mallory", "expected_version": 1, "events": []any{event("C", 1)}}},
			{"no subject, version far ahead", map[string]any{"expected_version": 1000, "events": []any{event("C", 1)}}},
			{"no_stream on an existing stream", map[string]any{"subject": "mallory", "expected_version": "no_stream", "events": []any{event("C", 1)}}},
		}
		post := func(tok, stream string, body map[string]any) string {
			t.Helper()
			b, _ := json.Marshal(body)
			rec := a.do(http.MethodPost, "/v1/streams/"+stream+"/events", tok, b)
			wantProblem(t, rec, http.StatusConflict, eventvault.ECONFLICT)
			// Bodies differ only by their request's id.
			return requestIDMember.ReplaceAllString(rec.Body.String(), "")
		}

		appendOnly := a.capToken("acme", eventvault.CapAppend)
		var first string
		for _, bd := range bodies {
			got := post(appendOnly, "order-1", bd.body)
			if first == "" {
				first = got
				p := wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", appendOnly, []byte(mustJSON(bd.body))), http.StatusConflict, eventvault.ECONFLICT, engine.StateConflictMessage)
				if p.ActualVersion != nil {
					t.Errorf("append-only token told the actual version: %s", p.ActualVersion)
				}
				continue
			}
			if got != first {
				t.Errorf("append-only token, %s:\n%s\nwant the same body as %s:\n%s", bd.name, got, bodies[0].name, first)
			}
		}
		// A stream that does not exist answers alike.
		if got := post(appendOnly, "order-404", map[string]any{"subject": "mallory", "expected_version": 7, "events": []any{event("C", 1)}}); got != first {
			t.Errorf("append-only token, a stream that does not exist:\n%s\nwant\n%s", got, first)
		}

		reader := a.capToken("acme", eventvault.CapAppend, eventvault.CapRead)
		version := post(reader, "order-1", bodies[0].body)
		owner := post(reader, "order-1", bodies[1].body)
		owner2 := post(reader, "order-1", bodies[2].body)
		if version == owner || owner != owner2 {
			t.Errorf("read+append token: version conflict %s, owner conflicts %s and %s; want the version conflict apart", version, owner, owner2)
		}
		var p problem
		json.Unmarshal([]byte(version), &p)
		if string(p.ActualVersion) != "1" {
			t.Errorf("read+append token: actual_version %s, want 1", p.ActualVersion)
		}
		json.Unmarshal([]byte(owner), &p)
		if p.Detail == engine.StateConflictMessage {
			t.Errorf("read+append token told the vague conflict for an owner conflict: %s", owner)
		}
		// The stream is unchanged: nothing was written either way.
		var got streamOut
		a.doJSON(http.MethodGet, "/v1/streams/order-1/events", setup, nil, http.StatusOK, &got)
		if got.Version != 1 || len(got.Events) != 2 {
			t.Errorf("the stream after the refusals: version %d, %d events; want 1 and 2", got.Version, len(got.Events))
		}
	})
}

// requestIDMember matches a problem body's http_request_id member.
var requestIDMember = regexp.MustCompile(`"http_request_id":"[^"]*",?`)
