package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	// The server ends each feed after 300 ms, as it does after 10 minutes:
	// the consumer must reconnect with Last-Event-ID, not stop.
	var feeds, resumed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/subscribe" {
			feeds.Add(1)
			if r.Header.Get("Last-Event-ID") != "" {
				resumed.Add(1)
			}
			ctx, cancel := context.WithTimeout(r.Context(), 300*time.Millisecond)
			defer cancel()
			r = r.WithContext(ctx)
		}
		stack.Handler.ServeHTTP(w, r)
	}))
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

	state := filepath.Join(dir, "customer-emails.projection.json")
	p, err := OpenProjection(state)
	if err != nil {
		t.Fatal(err)
	}
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
	// The feeds the server ends are followed again with Last-Event-ID.
	waitFor(t, func() bool { return feeds.Load() >= 3 && resumed.Load() >= 2 })
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
	// Restarted on its saved projection, it resumes from the projection's
	// position: bob's row is still there, and carol, registered since, is
	// added.
	register("customer-3", "carol", "carol@example.com")
	restarted, err := OpenProjection(state)
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Next() != p.Next() || restarted.Len() != 1 {
		t.Fatalf("the saved projection resumes at %d with %d rows; want %d with bob's row", restarted.Next(), restarted.Len(), p.Next())
	}
	runCtx, stop = context.WithCancel(ctx)
	go func() { done <- Run(runCtx, srv.URL, token, "customer-emails", restarted) }()
	waitFor(t, func() bool { _, ok := restarted.Email("customer-3"); return ok })
	if e, ok := restarted.Email("customer-2"); !ok || e != "bob@example.com" {
		t.Fatalf("the restarted consumer lost bob's row: %q %v", e, ok)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("restarted consumer: %v", err)
	}

	// Its projection lost (no file), it rebuilds from global position 0,
	// whatever the server's checkpoint: bob and carol, and none of the
	// erased customers.
	rebuilt, err := OpenProjection(filepath.Join(dir, "lost.json"))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { done <- Run(runCtx, srv.URL, token, "customer-emails", rebuilt) }()
	waitFor(t, func() bool { _, ok := rebuilt.Email("customer-3"); return ok })
	if e, ok := rebuilt.Email("customer-2"); !ok || e != "bob@example.com" || rebuilt.Len() != 2 {
		t.Fatalf("the rebuilt projection holds %d rows, bob's %q %v; want bob's and carol's only", rebuilt.Len(), e, ok)
	}
	// The file holds no erased address.
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(saved, []byte("alice@")) || bytes.Contains(saved, []byte("dave@")) {
		t.Fatalf("the saved projection still holds an erased address: %s", saved)
	}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the saved projection's mode is %v; want 0600 (it holds e-mail addresses)", fi.Mode().Perm())
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
