package crypto_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// kekRows returns every KEK version of the tenants, by tenant and version.
func kekRows(t *testing.T, store eventvault.Store, tenants ...eventvault.TenantID) map[eventvault.TenantID]map[uint32]eventvault.WrappedKey {
	t.Helper()
	out := map[eventvault.TenantID]map[uint32]eventvault.WrappedKey{}
	for _, tenant := range tenants {
		newest, err := store.TenantKey(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		out[tenant] = map[uint32]eventvault.WrappedKey{}
		for v := uint32(1); v <= newest.Version; v++ {
			if out[tenant][v], err = store.TenantKeyVersion(t.Context(), tenant, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func wantRootVersions(t *testing.T, ring *evcrypto.Keyring, oldest, newest, keks int) {
	t.Helper()
	o, n, k, err := evcrypto.NewKeyManager(ring).RootVersions(t.Context())
	if err != nil {
		t.Fatalf("RootVersions: %v", err)
	}
	if o != oldest || n != newest || k != keks {
		t.Fatalf("KEKs under root versions %d to %d, %d of them; want %d to %d, %d", o, n, k, oldest, newest, keks)
	}
}

// TestRootRotationOverVault rotates the Vault Transit root key, re-wraps
// every KEK (with an interruption), retires the old root version, and then
// checks as an attacker with an old backup would: a KEK row from before
// the re-wrap no longer unwraps, while a cold keyring reads everything.
func TestRootRotationOverVault(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		v := vaulttest.Start(t)
		transit, err := vault.New(t.Context(), v.Config(), nil)
		if err != nil {
			t.Fatalf("vault.New: %v", err)
		}
		ring := evcrypto.NewKeyring(transit, store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		events := sealStreams(t, ring, 4)
		if _, err := ring.StreamCipher(t.Context(), "globex", "invoice-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := mgr.RotateTenantKEK(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		const keks = 3 // acme v1 and v2, globex v1
		backup := kekRows(t, store, "acme", "globex")
		wantRootVersions(t, ring, 1, 1, keks)

		rv, err := mgr.RotateRoot(t.Context())
		if err != nil || rv != 2 {
			t.Fatalf("RotateRoot = %d, %v; want 2", rv, err)
		}
		err = mgr.RetireRootVersionsBefore(t.Context(), 2)
		if eventvault.ErrorCode(err) != eventvault.ECONFLICT || eventvault.ErrorFields(err)["remaining_keks"] != keks {
			t.Fatalf("retire while every KEK is under version 1 = %v (fields %v), want ECONFLICT with %d remaining", err, eventvault.ErrorFields(err), keks)
		}
		if err := mgr.RetireRootVersionsBefore(t.Context(), 3); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("retire beyond the newest version = %v, want EINVALID", err)
		}

		// An interrupted re-wrap leaves a mix; retiring is still refused.
		ctx, cancel := context.WithCancel(t.Context())
		n, err := mgr.RewrapRootWrapped(ctx, func(done int) {
			if done == 1 {
				cancel()
			}
		})
		if err == nil || n != 1 {
			t.Fatalf("interrupted RewrapRootWrapped: %d, %v; want 1 and an error", n, err)
		}
		wantRootVersions(t, ring, 1, 2, keks)
		if err := mgr.RetireRootVersionsBefore(t.Context(), 2); eventvault.ErrorCode(err) != eventvault.ECONFLICT || eventvault.ErrorFields(err)["remaining_keks"] != keks-1 {
			t.Fatalf("retire after a partial re-wrap = %v, want ECONFLICT with %d remaining", err, keks-1)
		}
		// Running it again finishes (it re-wraps all: that is harmless).
		if n, err := mgr.RewrapRootWrapped(t.Context(), nil); err != nil || n != keks {
			t.Fatalf("RewrapRootWrapped again: %d, %v; want %d", n, err, keks)
		}
		wantRootVersions(t, ring, 2, 2, keks)
		for tenant, versions := range kekRows(t, store, "acme", "globex") {
			for ver, wk := range versions {
				old := backup[tenant][ver]
				if wk.ID != old.ID || wk.Version != old.Version || !wk.CreatedAt.Equal(old.CreatedAt) {
					t.Fatalf("%s v%d changed identity in the root re-wrap", tenant, ver)
				}
			}
		}

		// Before retirement, a row from the backup still opens.
		acme1 := backup["acme"][1]
		restore(t, store, "acme", acme1)
		checkOpens(t, transit, store, events)

		if err := mgr.RetireRootVersionsBefore(t.Context(), 2); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("retire with a restored version-1 row in the store = %v, want ECONFLICT", err)
		}
		if _, err := mgr.RewrapRootWrapped(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		if err := mgr.RetireRootVersionsBefore(t.Context(), 2); err != nil {
			t.Fatalf("RetireRootVersionsBefore(2): %v", err)
		}
		if got := v.Read("transit/keys/" + vaulttest.Key)["min_decryption_version"]; fmt.Sprint(got) != "2" {
			t.Fatalf("Vault's min_decryption_version is %v, want 2", got)
		}

		// A cold keyring reads every stream after the retirement ...
		checkOpens(t, transit, store, events)
		// ... but the backup's KEK row, wrapped under version 1, is dead.
		restore(t, store, "acme", acme1)
		wk, err := store.StreamKey(t.Context(), "acme", "order-0000")
		if err != nil {
			t.Fatal(err)
		}
		_, err = evcrypto.NewKeyring(transit, store, evcrypto.KeyringOptions{}).OpenStreamCipher(t.Context(), "acme", "order-0000", wk)
		if eventvault.ErrorCode(err) != eventvault.EKEYRETIRED {
			t.Fatalf("open a stream through a KEK row restored from before the re-wrap = %v, want EKEYRETIRED (retired root version)", err)
		}
	})
}

// restore puts a KEK row from a backup back in place of the current one.
func restore(t *testing.T, store eventvault.Store, tenant eventvault.TenantID, row eventvault.WrappedKey) {
	t.Helper()
	current, err := store.TenantKeyVersion(t.Context(), tenant, row.Version)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RewrapTenantKey(t.Context(), tenant, current, row); err != nil {
		t.Fatalf("restore %s v%d: %v", tenant, row.Version, err)
	}
}
