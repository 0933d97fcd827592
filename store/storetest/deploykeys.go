package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// testDeploymentKeys: deployment keys are written once per name and read
// back as written; a second create, or a race of creates, leaves the first
// one stored and returns it to every caller.
func testDeploymentKeys(t *testing.T, open opener) {
	h := setup(t, open)
	ctx := h.ctx
	s := h.store

	_, err := s.DeploymentKey(ctx, "pseudonym")
	wantCode(t, err, eventvault.ENOTFOUND)
	_, err = s.DeploymentKey(ctx, "")
	wantCode(t, err, eventvault.EINVALID)
	for _, bad := range []eventvault.DeploymentKey{
		{Version: 1, Wrapped: []byte("w")},
		{Name: "x", Wrapped: []byte("w")},
		{Name: "x", Version: 1},
	} {
		_, err := s.CreateDeploymentKey(ctx, bad)
		wantCode(t, err, eventvault.EINVALID)
	}

	first := eventvault.DeploymentKey{Name: "pseudonym", Version: 1, Wrapped: []byte("wrapped-1"), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	got, err := s.CreateDeploymentKey(ctx, first)
	if err != nil {
		t.Fatalf("CreateDeploymentKey: %v", err)
	}
	wantDeploymentKey(t, "created", got, first)
	got, err = s.DeploymentKey(ctx, "pseudonym")
	if err != nil {
		t.Fatalf("DeploymentKey: %v", err)
	}
	wantDeploymentKey(t, "read back", got, first)

	// A second create under the same name changes nothing.
	got, err = s.CreateDeploymentKey(ctx, eventvault.DeploymentKey{Name: "pseudonym", Version: 1, Wrapped: []byte("wrapped-2")})
	if err != nil {
		t.Fatalf("second CreateDeploymentKey: %v", err)
	}
	wantDeploymentKey(t, "second create", got, first)
	got, err = s.DeploymentKey(ctx, "pseudonym")
	if err != nil {
		t.Fatalf("DeploymentKey after a second create: %v", err)
	}
	wantDeploymentKey(t, "after a second create", got, first)

	// Names are independent.
	_, err = s.DeploymentKey(ctx, "signing")
	wantCode(t, err, eventvault.ENOTFOUND)

	// A race: every creator gets the one key stored.
	const n = 8
	var wg sync.WaitGroup
	results := make([]eventvault.DeploymentKey, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.CreateDeploymentKey(ctx, eventvault.DeploymentKey{Name: "signing", Version: 1, Wrapped: fmt.Appendf(nil, "racer-%d", i)})
		}()
	}
	wg.Wait()
	stored, err := s.DeploymentKey(ctx, "signing")
	if err != nil {
		t.Fatalf("DeploymentKey after the race: %v", err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i].Wrapped, stored.Wrapped) {
			t.Fatalf("racer %d got %q; the store holds %q", i, results[i].Wrapped, stored.Wrapped)
		}
	}
}

func wantDeploymentKey(t *testing.T, what string, got, want eventvault.DeploymentKey) {
	t.Helper()
	if got.Name != want.Name || got.Version != want.Version || !bytes.Equal(got.Wrapped, want.Wrapped) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s: got %s v%d %q at %s; want %s v%d %q at %s", what,
			got.Name, got.Version, got.Wrapped, got.CreatedAt, want.Name, want.Version, want.Wrapped, want.CreatedAt)
	}
}

// testDeploymentKeyRewrap: the root's rotation lists every deployment key
// and swaps its wrapped bytes, compare-and-swap; nothing else changes.
func testDeploymentKeyRewrap(t *testing.T, open opener) {
	h := setup(t, open)
	ctx, s := h.ctx, h.store
	if keys, err := s.DeploymentKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("DeploymentKeys of a fresh store: %v, %v", keys, err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	for _, name := range []string{"signing", "pseudonym"} {
		if _, err := s.CreateDeploymentKey(ctx, eventvault.DeploymentKey{Name: name, Version: 1, Wrapped: []byte("w-" + name), CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.DeploymentKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("DeploymentKeys: %v, %v; want 2", keys, err)
	}
	old, err := s.DeploymentKey(ctx, "pseudonym")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RewrapDeploymentKey(ctx, old, nil); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Fatalf("re-wrap to nothing: %v; want EINVALID", err)
	}
	if err := s.RewrapDeploymentKey(ctx, eventvault.DeploymentKey{Name: "token-verifier", Version: 1, Wrapped: []byte("x")}, []byte("y")); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("re-wrap of a missing key: %v; want ENOTFOUND", err)
	}
	if err := s.RewrapDeploymentKey(ctx, old, []byte("w-pseudonym-2")); err != nil {
		t.Fatalf("RewrapDeploymentKey: %v", err)
	}
	// The swap lost by a second writer that read before it.
	if err := s.RewrapDeploymentKey(ctx, old, []byte("w-pseudonym-3")); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("re-wrap from stale bytes: %v; want ECONFLICT", err)
	}
	want := old
	want.Wrapped = []byte("w-pseudonym-2")
	got, err := s.DeploymentKey(ctx, "pseudonym")
	if err != nil {
		t.Fatal(err)
	}
	wantDeploymentKey(t, "after the re-wrap", got, want)
	got, err = s.DeploymentKey(ctx, "signing")
	if err != nil {
		t.Fatal(err)
	}
	wantDeploymentKey(t, "the other key", got, eventvault.DeploymentKey{Name: "signing", Version: 1, Wrapped: []byte("w-signing"), CreatedAt: at})
}
