package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
)

// ackBetween is the server's Erasure, through which a consumer
// acknowledges the tombstone of a new propagating request the moment it
// is recorded, before the handler reads it again: what a consumer running
// beside the vault does (the trial's example consumer did).
type ackBetween struct {
	Erasure
	ack func()
}

func (e ackBetween) RequestErasure(ctx context.Context, p eventvault.Principal, subject string) (eventvault.ErasureRequest, bool, error) {
	r, created, err := e.Erasure.RequestErasure(ctx, p, subject)
	if err == nil && created && r.State == eventvault.ErasurePropagating && e.ack != nil {
		e.ack()
	}
	return r, created, err
}

// TestAnErasureAnswerIsOneReading tries the answers of POST
// /v1/erasure-requests: a new request whose consumer acknowledges while it
// is answered (once 202 "propagating" with nothing pending: now 201
// completed, the acknowledgement shown), a new request a consumer holds
// (202 propagating, each pending consumer named under "consumer"), a
// repeat of either (200 with Content-Location, never 202 with Location),
// and the certificate's words and lists: "1 stream, 1 key destroyed",
// "acknowledged by 1 registered consumer; 0 were removed", and the
// consumer lists as [] rather than absent. Both stores.
func TestAnErasureAnswerIsOneReading(t *testing.T) {
	onBothStores(t, testAnErasureAnswerIsOneReading)
}

func testAnErasureAnswerIsOneReading(t *testing.T, a *testAPI) {
	tok := a.admin("acme")
	a.doJSON(http.MethodPost, "/v1/streams/user-1/events", tok, map[string]any{"subject": "alice@example.com", "events": []any{event("Registered", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPut, "/v1/subscriptions/users-view", tok, map[string]any{"filter": map[string]any{"categories": []string{"user"}}}, http.StatusCreated, nil)
	a.srv.erasure = ackBetween{Erasure: a.srv.erasure, ack: func() {
		var page struct {
			Events []feedEvent `json:"events"`
		}
		a.doJSON(http.MethodGet, "/v1/events?from=0&limit=100", tok, nil, http.StatusOK, &page)
		last := page.Events[len(page.Events)-1].GlobalPosition
		a.doJSON(http.MethodPost, "/v1/subscriptions/users-view/ack", tok, map[string]any{"position": last}, http.StatusOK, nil)
	}}

	rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"alice@example.com"}`))
	var er erasureResponse
	json.Unmarshal(rec.Body.Bytes(), &er)
	if rec.Code != http.StatusCreated || rec.Header().Get("Location") != "/v1/erasure-requests/"+er.ID || er.State != "completed" ||
		er.Propagation == nil || len(er.Propagation.Pending) != 0 || len(er.Propagation.Acknowledged) != 1 || er.Propagation.Acknowledged[0].Consumer != "users-view" {
		t.Fatalf("a request acknowledged while answered: %d %v %s; want 201 completed, its acknowledgement shown", rec.Code, rec.Header(), rec.Body)
	}
	env, err := dsse.Parse(er.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 stream, 1 key destroyed", "acknowledged by 1 registered consumer; 0 were removed", `"consumers_removed":[]`, `"consumers_acknowledged":[{`} {
		if !strings.Contains(string(env.Payload), want) {
			t.Errorf("the certificate does not say %s: %s", want, env.Payload)
		}
	}
	rec = a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"alice@example.com"}`))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Location") != "/v1/erasure-requests/"+er.ID || rec.Header().Get("Location") != "" {
		t.Fatalf("asking again for a completed request: %d %v", rec.Code, rec.Header())
	}

	// A consumer that does not acknowledge holds the next one.
	a.srv.erasure = a.srv.erasure.(ackBetween).Erasure
	a.doJSON(http.MethodPost, "/v1/streams/user-2/events", tok, map[string]any{"subject": "bob@example.com", "events": []any{event("Registered", 2)}}, http.StatusCreated, nil)
	rec = a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"bob@example.com"}`))
	var held erasureResponse
	json.Unmarshal(rec.Body.Bytes(), &held)
	if rec.Code != http.StatusAccepted || rec.Header().Get("Location") != "/v1/erasure-requests/"+held.ID || held.State != "propagating" ||
		held.Propagation == nil || len(held.Propagation.Pending) != 1 || held.Propagation.Pending[0].Consumer != "users-view" || !strings.Contains(rec.Body.String(), `"pending":[{"consumer":"users-view"`) {
		t.Fatalf("a request a consumer holds: %d %v %s; want 202 propagating, users-view pending", rec.Code, rec.Header(), rec.Body)
	}
	rec = a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"bob@example.com"}`))
	var again erasureResponse
	json.Unmarshal(rec.Body.Bytes(), &again)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Location") != "/v1/erasure-requests/"+held.ID || rec.Header().Get("Location") != "" ||
		again.ID != held.ID || again.State != "propagating" || again.Propagation == nil || len(again.Propagation.Pending) != 1 {
		t.Fatalf("asking again while it propagates: %d %v %s; want 200 with Content-Location, the same request", rec.Code, rec.Header(), rec.Body)
	}
}
