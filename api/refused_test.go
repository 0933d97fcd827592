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

// TestRefusedAppendTellsNoIDOwnerWithoutRead: to a token without read on
// the stream, every conflict of an append is the one generic answer with no
// fields, event-id conflicts included, so an id the token wrote elsewhere
// cannot serve as a probe of who owns a stream (the store checks the owner
// before the ids). A token with read is told which conflict it is; a
// replay stays a 200 for anyone.
func TestRefusedAppendTellsNoIDOwnerWithoutRead(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		reader := a.capToken("acme", eventvault.CapAppend, eventvault.CapRead)
		victimEvent := event("V", 1)
		a.doJSON(http.MethodPost, "/v1/streams/victim-1/events", reader, map[string]any{"subject": "alice", "events": []any{victimEvent}}, http.StatusCreated, nil)

		appendOnly := a.capToken("acme", eventvault.CapAppend)
		own := event("I", 1)
		ownBody := map[string]any{"subject": "mallory", "events": []any{own}}
		a.doJSON(http.MethodPost, "/v1/streams/mine-1/events", appendOnly, ownBody, http.StatusCreated, nil)
		otherContent := map[string]any{"id": own["id"], "type": "I", "data": 2}
		victimOther := map[string]any{"id": victimEvent["id"], "type": "V", "data": 2}

		rows := []struct {
			name   string
			stream string
			body   map[string]any
		}{
			{"own id, wrong subject guess, no_stream", "victim-1", map[string]any{"subject": "bob", "expected_version": "no_stream", "events": []any{own}}},
			{"own id, right subject guess, no_stream", "victim-1", map[string]any{"subject": "alice", "expected_version": "no_stream", "events": []any{own}}},
			{"own id, right subject guess, any", "victim-1", map[string]any{"subject": "alice", "events": []any{own}}},
			{"own id, right subject guess, right version", "victim-1", map[string]any{"subject": "alice", "expected_version": 0, "events": []any{own}}},
			{"own id, no subject", "victim-1", map[string]any{"events": []any{own}}},
			{"own id with other content, right subject", "victim-1", map[string]any{"subject": "alice", "events": []any{otherContent}}},
			{"the victim's id with other content, right subject", "victim-1", map[string]any{"subject": "alice", "events": []any{victimOther}}},
			{"mixed batch: own id then a new one, right subject", "victim-1", map[string]any{"subject": "alice", "events": []any{own, event("N", 1)}}},
			{"mixed batch: a new id then own, wrong subject", "victim-1", map[string]any{"subject": "bob", "events": []any{event("N", 1), own}}},
			{"own id on a stream that does not exist", "victim-404", map[string]any{"subject": "alice", "expected_version": "no_stream", "events": []any{own}}},
			{"own id with other content on its own stream", "mine-1", map[string]any{"subject": "mallory", "events": []any{otherContent}}},
			{"mixed batch on its own stream", "mine-1", map[string]any{"subject": "mallory", "events": []any{own, event("N", 1)}}},
		}
		var first string
		for _, row := range rows {
			t.Run(row.name, func(t *testing.T) {
				rec := a.do(http.MethodPost, "/v1/streams/"+row.stream+"/events", appendOnly, []byte(mustJSON(row.body)))
				p := wantProblem(t, rec, http.StatusConflict, eventvault.ECONFLICT, engine.StateConflictMessage)
				var fields map[string]any
				json.Unmarshal(rec.Body.Bytes(), &fields)
				for _, k := range []string{"type", "title", "status", "detail", "code", "http_request_id"} {
					delete(fields, k)
				}
				if len(fields) != 0 {
					t.Errorf("append-only token told fields %v; detail %q", fields, p.Detail)
				}
				body := requestIDMember.ReplaceAllString(rec.Body.String(), "")
				if first == "" {
					first = body
				} else if body != first {
					t.Errorf("body %s, want the same as the first row's %s", body, first)
				}
			})
		}

		// A replay is a replay, for an append-only token too.
		var res appendOut
		a.doJSON(http.MethodPost, "/v1/streams/mine-1/events", appendOnly, ownBody, http.StatusOK, &res)
		if !res.Replayed {
			t.Errorf("replay of the token's own batch: replayed false")
		}
		// With read, the conflict is told.
		wantProblem(t, a.do(http.MethodPost, "/v1/streams/victim-1/events", reader, []byte(mustJSON(rows[1].body))), http.StatusConflict, eventvault.ECONFLICT, "is already used by another stream")
		// Nothing was written.
		var got streamOut
		a.doJSON(http.MethodGet, "/v1/streams/victim-1/events", reader, nil, http.StatusOK, &got)
		if got.Version != 0 || len(got.Events) != 1 {
			t.Errorf("victim-1 after the refusals: version %d, %d events; want 0 and 1", got.Version, len(got.Events))
		}
	})
}

// TestErasedFenceIsToldWithoutRead: the erasure fence is its own conflict
// for any caller (it says the stream is closed, nothing of its owner), and
// the same whichever subject the append names.
func TestErasedFenceIsToldWithoutRead(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		a.doJSON(http.MethodPost, "/v1/streams/gone-1/events", tok, map[string]any{"subject": "alice", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		a.doJSON(http.MethodDelete, "/v1/streams/gone-1", tok, nil, http.StatusOK, nil)
		appendOnly := a.capToken("acme", eventvault.CapAppend)
		var bodies []string
		for _, subject := range []string{"alice", "bob", ""} {
			body := map[string]any{"events": []any{event("B", 1)}}
			if subject != "" { // "": no subject named (an empty one is 400)
				body["subject"] = subject
			}
			rec := a.do(http.MethodPost, "/v1/streams/gone-1/events", appendOnly, []byte(mustJSON(body)))
			wantProblem(t, rec, http.StatusConflict, eventvault.ECONFLICT, "was erased")
			bodies = append(bodies, requestIDMember.ReplaceAllString(rec.Body.String(), ""))
		}
		if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
			t.Errorf("the fence differs by subject: %v", bodies)
		}
	})
}
