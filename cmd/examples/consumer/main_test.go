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
// erasure's tombstone it receives, and the erasure completes naming it.
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

	p := &Projection{emails: map[string]string{}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, srv.URL, token, "customer-emails", p) }()
	waitFor(t, func() bool { _, ok := p.Email("customer-2"); return ok })

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
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consumer: %v", err)
	}
	// Restarted, it resumes from its checkpoint: only what came since.
	register("customer-3", "carol", "carol@example.com")
	fresh := &Projection{emails: map[string]string{}}
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
