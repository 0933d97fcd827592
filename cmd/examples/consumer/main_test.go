package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/cmd/internal/wiring"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/store/bolt"
)

// TestTheREADMEConsumerDropsErasedCustomers runs the README's consumer
// against a real server: it projects customers, drops the one whose
// erasure's tombstone it receives (a subject owning the stream, and a
// subject owning only a marked value in a stream of no subject), and the
// erasures complete naming it.
func TestTheREADMEConsumerDropsErasedCustomers(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := wiring.DeploymentKeys(ctx, root, store, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	stack := wiring.Build(wiring.Parts{Store: store, Root: root, Pseudonyms: dk.Pseudonyms, Signer: dk.Signer, TokenVerifier: dk.TokenVerifier})
	srv := httptest.NewServer(stack.Handler)
	t.Cleanup(srv.Close)
	token, err := stack.Tokens.InstallRoot(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %v %v", method, path, err, resp)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return b.String()
	}
	register := func(stream, subject, email string) {
		call(http.MethodPost, "/v1/streams/"+stream+"/events", `{"subject":"`+subject+`","events":[{"id":"`+uuid.NewString()+`","type":"CustomerRegistered","data":{"email":"`+email+`"}}]}`)
	}
	register("customer-1", "alice", "alice@example.com")
	register("customer-2", "bob", "bob@example.com")
	// dave owns no stream: only his address, marked personal.
	call(http.MethodPost, "/v1/streams/customer-4/events", `{"events":[{"id":"`+uuid.NewString()+`","type":"CustomerRegistered","data":{"email":"dave@example.com"},"pii":{"/email":{"subject":"dave","class":"email"}}}]}`)

	p := NewProjection()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, srv.URL, token, "customer-emails", p) }()
	waitFor(t, func() bool { _, ok := p.Email("customer-4"); return ok })
	if e, _ := p.Email("customer-4"); e != "dave@example.com" {
		t.Fatalf("dave's row: %q", e)
	}

	out := call(http.MethodPost, "/v1/erasure-requests", `{"subject":"alice"}`)
	var er struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(out), &er)
	// The consumer drops alice's row and acknowledges the tombstone; the
	// erasure then completes, its certificate naming the consumer.
	waitFor(t, func() bool { _, ok := p.Email("customer-1"); return !ok })
	waitFor(t, func() bool {
		return strings.Contains(call(http.MethodGet, "/v1/erasure-requests/"+er.ID, ""), `"state":"completed"`)
	})
	if got := call(http.MethodGet, "/v1/erasure-requests/"+er.ID, ""); !strings.Contains(got, `"consumer":"customer-emails"`) {
		t.Fatalf("the completed erasure does not name the consumer: %s", got)
	}
	if e, ok := p.Email("customer-2"); !ok || e != "bob@example.com" {
		t.Fatalf("bob's row: %q %v", e, ok)
	}
	// dave's erasure names no stream, only his pseudonym: the copy of his
	// address goes, found by the pseudonym the event's pii member gave.
	out = call(http.MethodPost, "/v1/erasure-requests", `{"subject":"dave"}`)
	json.Unmarshal([]byte(out), &er)
	waitFor(t, func() bool { _, ok := p.Email("customer-4"); return !ok })
	waitFor(t, func() bool {
		return strings.Contains(call(http.MethodGet, "/v1/erasure-requests/"+er.ID, ""), `"state":"completed"`)
	})
	if p.Len() != 1 {
		t.Fatalf("after both erasures the projection holds %d customers, want bob's only", p.Len())
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	// A token that may not subscribe: the consumer says why, from the
	// server's problem, rather than ending silently.
	var weak struct {
		Token string `json:"token"`
	}
	json.Unmarshal([]byte(call(http.MethodPost, "/v1/tokens", `{"tenant":"acme","name":"writer","rules":[{"capabilities":["append"],"streams":"*"}]}`)), &weak)
	weakCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := Run(weakCtx, srv.URL, weak.Token, "customer-emails", NewProjection()); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "subscribe") {
		t.Fatalf("a consumer whose token may not subscribe: %v; want the 403 and its reason", err)
	}
	// Restarted, it resumes from its checkpoint: only what came since.
	register("customer-3", "carol", "carol@example.com")
	fresh := NewProjection()
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { done <- Run(runCtx, srv.URL, token, "customer-emails", fresh) }()
	waitFor(t, func() bool { _, ok := fresh.Email("customer-3"); return ok })
	if _, ok := fresh.Email("customer-2"); ok {
		t.Fatalf("the restarted consumer projected customer-2 again: it did not resume from its checkpoint")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}
