package wiring

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// watchedRoot passes calls to a real root key provider and records how
// many were in flight at once, and how many were made.
type watchedRoot struct {
	inner             evcrypto.RootKeyProvider
	inFlight, maxSeen atomic.Int64
	wraps, unwraps    atomic.Int64
	// hold, when set, holds every call until it is closed.
	hold chan struct{}
}

func (w *watchedRoot) enter() func() {
	n := w.inFlight.Add(1)
	if w.hold != nil {
		defer func() { <-w.hold }()
	}
	for {
		m := w.maxSeen.Load()
		if n <= m || w.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { w.inFlight.Add(-1) }
}

func (w *watchedRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	defer w.enter()()
	w.wraps.Add(1)
	return w.inner.WrapKey(ctx, key, aad)
}

func (w *watchedRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	defer w.enter()()
	w.unwraps.Add(1)
	return w.inner.UnwrapKey(ctx, wrapped, aad)
}

// TestNewTenantStormIsBoundedAtVault: 30 new tenants, each asked for by 4
// requests at once, against a real Vault behind the server's wiring with
// RootConcurrency 3: Vault never sees more than 3 calls at once, and sees
// one wrap per tenant (the requests for one tenant share its load), none
// more. Then a storm whose requests end while most wait for their turn:
// those send nothing to Vault.
func TestNewTenantStormIsBoundedAtVault(t *testing.T) {
	v := vaulttest.Start(t)
	transit, err := vault.New(t.Context(), v.Config(), nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	root := &watchedRoot{inner: transit}
	stack := Build(Parts{Store: store, Root: root, RootConcurrency: 3})

	const tenants, perTenant = 30, 4
	var wg sync.WaitGroup
	errs := make(chan error, tenants*perTenant)
	for i := range tenants {
		tenant := eventvault.TenantID(fmt.Sprintf("storm-%d", i))
		for j := range perTenant {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := stack.Keys.StreamCipher(t.Context(), tenant, eventvault.StreamName(fmt.Sprintf("order-%d", j)))
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a stream key in the storm: %v", err)
		}
	}
	if m := root.maxSeen.Load(); m > 3 || m < 1 {
		t.Fatalf("Vault saw %d calls at once, want at most 3", m)
	}
	if w, u := root.wraps.Load(), root.unwraps.Load(); w != tenants || u != 0 {
		t.Fatalf("Vault saw %d wraps and %d unwraps for %d new tenants, want one wrap each", w, u, tenants)
	}

	// A second storm, with Vault's answers held: 3 calls are in flight
	// and the rest wait for their turn when the requests' context ends.
	// The waiting ones send nothing to Vault.
	root.hold = make(chan struct{})
	before := root.wraps.Load()
	ctx, cancel := context.WithCancel(t.Context())
	var ok atomic.Int64
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := stack.Keys.StreamCipher(ctx, eventvault.TenantID(fmt.Sprintf("late-%d", i)), "order-1"); err == nil {
				ok.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for root.inFlight.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the second storm never reached Vault")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(root.hold)
	wg.Wait()
	if sent := root.wraps.Load() - before; sent != 3 || ok.Load() != 0 {
		t.Fatalf("second storm: %d wraps sent to Vault, want the 3 in flight when the requests ended; %d tenants got a key, want 0", sent, ok.Load())
	}
	if m := root.maxSeen.Load(); m > 3 {
		t.Fatalf("Vault saw %d calls at once, want at most 3", m)
	}
}
