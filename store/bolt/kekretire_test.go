package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestKEKDestructionScrubsTheFile reads the store's file as an attacker
// with a copy of it would: after DestroyTenantKeysBefore, no byte of a
// destroyed KEK version is left in it, in a live page or a free one, and
// the newest version and the stream keys are still there.
func TestKEKDestructionScrubsTheFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eventvault.db")
	db := openTemp(t, path)
	v1, v2, v3, keyCT := needle(t), needle(t), needle(t), needle(t)
	first, err := db.CreateTenantKey(ctx, "tenant-a", eventvault.WrappedKey{ID: uuid.New(), Version: 1, Ciphertext: v1})
	if err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	for i, ct := range [][]byte{v2, v3} {
		v := uint32(i + 2)
		if err := db.AddTenantKey(ctx, "tenant-a", eventvault.WrappedKey{ID: first.ID, Version: v, Ciphertext: ct}); err != nil {
			t.Fatalf("AddTenantKey %d: %v", v, err)
		}
	}
	key, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 3, Ciphertext: keyCT})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	// Every append rewrites the tenant's buckets' pages, leaving copies of
	// neighbouring data in pages bbolt has freed.
	for range 5 {
		appendSealed(t, db, "order-1", key.ID, needle(t))
	}
	for name, n := range map[string][]byte{"KEK v1": v1, "KEK v2": v2, "KEK v3": v3, "stream key": keyCT} {
		if !fileHolds(t, path, n) {
			t.Fatalf("positive control: the file does not hold the %s before the destruction", name)
		}
	}

	n, err := db.DestroyTenantKeysBefore(ctx, "tenant-a", 3)
	if err != nil || n != 2 {
		t.Fatalf("DestroyTenantKeysBefore 3: %d, %v; want 2", n, err)
	}
	for name, n := range map[string][]byte{"KEK v1": v1, "KEK v2": v2} {
		if fileHolds(t, path, n) {
			t.Errorf("the file still holds the destroyed %s", name)
		}
	}
	for name, n := range map[string][]byte{"KEK v3": v3, "stream key": keyCT} {
		if !fileHolds(t, path, n) {
			t.Errorf("the scrub took the %s, which lives", name)
		}
	}
	if _, err := os.Stat(path + ".scrub"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the scrub left %s.scrub behind (stat: %v)", path, err)
	}
	if got, err := db.TenantKey(ctx, "tenant-a"); err != nil || got.Version != 3 {
		t.Errorf("TenantKey after the scrub: version %d, %v; want 3", got.Version, err)
	}
}
