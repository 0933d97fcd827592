package crypto_test

import (
	"bytes"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// The KEK retirement tests run the keyring on the real stores, as the
// rotation tests do: bbolt and PostgreSQL.

// TestDestroyOldKEKsMakesKeyRowsFromBeforeTheRewrapUndecryptable plays a
// backup taken before a crypto-period: it holds every stream key row as it
// was under KEK version 1. After the rotation, the re-wrap and the
// destruction of version 1, every stream still reads through the live rows,
// and no backed-up row opens: not through a cold keyring, and not through
// the warm one that had opened those very rows.
func TestDestroyOldKEKsMakesKeyRowsFromBeforeTheRewrapUndecryptable(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		ctx := t.Context()
		root := localRoot(t)
		warm := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		warmMgr := evcrypto.NewKeyManager(warm)
		events := sealStreams(t, warm, 5)
		backup := streamRows(t, store, events)
		for stream, wk := range backup {
			if _, err := warm.OpenStreamCipher(ctx, "acme", stream, wk); err != nil {
				t.Fatalf("positive control: OpenStreamCipher %s through the row a backup holds: %v", stream, err)
			}
		}

		if _, err := warmMgr.RotateTenantKEK(ctx, "acme"); err != nil {
			t.Fatalf("RotateTenantKEK: %v", err)
		}
		if n, err := warmMgr.RewrapStreamKeys(ctx, "acme", nil); err != nil || n != len(events) {
			t.Fatalf("RewrapStreamKeys: %d, %v; want %d", n, err, len(events))
		}
		n, err := warmMgr.DestroyOldKEKs(ctx, "acme")
		if err != nil || n != 1 {
			t.Fatalf("DestroyOldKEKs: %d, %v; want 1", n, err)
		}
		if _, err := store.TenantKeyVersion(ctx, "acme", 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("TenantKeyVersion 1 after DestroyOldKEKs = %v, want ENOTFOUND", err)
		}
		if newest, err := store.TenantKey(ctx, "acme"); err != nil || newest.Version != 2 {
			t.Fatalf("TenantKey after DestroyOldKEKs: version %d, %v; want 2", newest.Version, err)
		}

		// The warm keyring first: its cache was filled from the backed-up rows.
		cold := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		for _, ring := range []struct {
			name string
			ring *evcrypto.Keyring
		}{{"warm", warm}, {"cold", cold}} {
			for stream, wk := range backup {
				c, err := ring.ring.OpenStreamCipher(ctx, "acme", stream, wk)
				if err == nil {
					if data, _, err := c.OpenEvent(events[stream].ref, events[stream].payload); err == nil {
						t.Fatalf("the %s keyring opened %s through a row from before the re-wrap and read %d bytes of its event", ring.name, stream, len(data))
					}
					t.Fatalf("the %s keyring unwrapped the key of %s from a row from before the re-wrap", ring.name, stream)
				}
				if eventvault.ErrorCode(err) != eventvault.EERASED {
					t.Errorf("the %s keyring on %s's row from before the re-wrap: %v, want EERASED", ring.name, stream, err)
				}
			}
		}

		checkOpens(t, root, store, events)
		for stream, ev := range events {
			wk, err := store.StreamKey(ctx, "acme", stream)
			if err != nil {
				t.Fatalf("StreamKey %s: %v", stream, err)
			}
			c, err := warm.OpenStreamCipher(ctx, "acme", stream, wk)
			if err != nil {
				t.Fatalf("the warm keyring on the live row of %s: %v", stream, err)
			}
			if data, _, err := c.OpenEvent(ev.ref, ev.payload); err != nil || !bytes.Equal(data, ev.data) {
				t.Fatalf("the warm keyring reads %s: %v", stream, err)
			}
		}

		if n, err := warmMgr.DestroyOldKEKs(ctx, "acme"); err != nil || n != 0 {
			t.Fatalf("a second DestroyOldKEKs: %d, %v; want 0 and no error", n, err)
		}
		if _, err := warmMgr.DestroyOldKEKs(ctx, "globex"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("DestroyOldKEKs of a tenant without a key = %v, want ENOTFOUND", err)
		}
		if _, err := warmMgr.DestroyOldKEKs(ctx, "Not A Tenant"); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("DestroyOldKEKs of a malformed tenant = %v, want EINVALID", err)
		}
	})
}

// TestDestroyOldKEKsBeforeTheRewrapIsRefused: while stream keys are still
// under the old version, nothing is destroyed and everything still reads.
func TestDestroyOldKEKsBeforeTheRewrapIsRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		ctx := t.Context()
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		events := sealStreams(t, ring, 3)
		first, err := store.TenantKey(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mgr.RotateTenantKEK(ctx, "acme"); err != nil {
			t.Fatalf("RotateTenantKEK: %v", err)
		}
		n, err := mgr.DestroyOldKEKs(ctx, "acme")
		if eventvault.ErrorCode(err) != eventvault.ECONFLICT || n != 0 {
			t.Fatalf("DestroyOldKEKs before the re-wrap: %d, %v; want 0 and ECONFLICT", n, err)
		}
		still, err := store.TenantKeyVersion(ctx, "acme", 1)
		if err != nil || !eventvault.SameKeyRow(still, first) {
			t.Fatalf("KEK version 1 after a refused DestroyOldKEKs: %v; want it unchanged", err)
		}
		checkOpens(t, root, store, events)

		// A tenant whose only version is the newest has nothing to destroy.
		if _, err := ring.StreamCipher(ctx, "globex", "order-1"); err != nil {
			t.Fatal(err)
		}
		if n, err := mgr.DestroyOldKEKs(ctx, "globex"); err != nil || n != 0 {
			t.Fatalf("DestroyOldKEKs of a tenant with one version: %d, %v; want 0", n, err)
		}
	})
}

// TestStaleKeyringCannotWrapUnderADestroyedKEK plays a node whose cache
// still holds KEK version 1 when another node has rotated, re-wrapped and
// destroyed it: it never stores a key under version 1, which nobody could
// unwrap; the store's refusal makes it reload the KEK and carry on.
func TestStaleKeyringCannotWrapUnderADestroyedKEK(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		ctx := t.Context()
		root := localRoot(t)
		admin := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		adminMgr := evcrypto.NewKeyManager(admin)
		stale := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		events := sealStreams(t, admin, 2)
		// The stale node creates a stream: it caches KEK version 1.
		if _, err := stale.StreamCipher(ctx, "acme", "order-stale-1"); err != nil {
			t.Fatalf("StreamCipher on the stale node: %v", err)
		}
		if _, err := adminMgr.RotateTenantKEK(ctx, "acme"); err != nil {
			t.Fatalf("RotateTenantKEK: %v", err)
		}
		if _, err := adminMgr.RewrapStreamKeys(ctx, "acme", nil); err != nil {
			t.Fatalf("RewrapStreamKeys: %v", err)
		}
		if n, err := adminMgr.DestroyOldKEKs(ctx, "acme"); err != nil || n != 1 {
			t.Fatalf("DestroyOldKEKs: %d, %v; want 1", n, err)
		}

		// The store refuses its key under version 1; the stale node then
		// reloads the tenant's KEK and wraps under version 2.
		if _, err := stale.StreamCipher(ctx, "acme", "order-stale-2"); err != nil {
			t.Fatalf("StreamCipher on the stale node after a crypto-period: %v", err)
		}
		wk, err := store.StreamKey(ctx, "acme", "order-stale-2")
		if err != nil || wk.KEKVersion != 2 {
			t.Fatalf("the stale node's stream key: KEK version %d, %v; want 2", wk.KEKVersion, err)
		}
		checkOpens(t, root, store, events)
	})
}
