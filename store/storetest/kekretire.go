package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// testKEKRetire checks KeyStore.DestroyTenantKeysBefore:
// old KEK versions are destroyed for good, never while a live stream key
// needs one, never the newest, and never another tenant's.
//
// Where the interface docs are silent, it fixes this: once versions below
// v are destroyed, CreateStreamKey refuses (ECONFLICT) a key wrapped under
// one of them and stores nothing, so that a node still caching a destroyed
// version cannot write a key nobody can unwrap; a shredded stream's key
// (there is none left) never blocks a destruction.
func testKEKRetire(t *testing.T, open opener) {
	t.Run("DestroysOlderVersions", func(t *testing.T) { testDestroyOlderVersions(t, open) })
	t.Run("RefusedWhileAStreamKeyNeedsThem", func(t *testing.T) { testDestroyRefusedWhileInUse(t, open) })
	t.Run("FencesDestroyedVersions", func(t *testing.T) { testDestroyedVersionsFenced(t, open) })
	t.Run("TenantIsolation", func(t *testing.T) { testDestroyTenantIsolation(t, open) })
	t.Run("BadInput", func(t *testing.T) { testDestroyBadInput(t, open) })
	t.Run("RaceWithCreateStreamKey", func(t *testing.T) { testDestroyRaceWithCreate(t, open) })
}

// destroy calls DestroyTenantKeysBefore and returns its results.
func (h *harness) destroy(tenant eventvault.TenantID, version uint32) (int, error) {
	h.t.Helper()
	return h.store.DestroyTenantKeysBefore(h.ctx, tenant, version)
}

// mustDestroy destroys the tenant's versions below version and checks how
// many went.
func (h *harness) mustDestroy(tenant eventvault.TenantID, version uint32, want int) {
	h.t.Helper()
	n, err := h.destroy(tenant, version)
	if err != nil {
		h.t.Fatalf("DestroyTenantKeysBefore %s %d: %v", tenant, version, err)
	}
	if n != want {
		h.t.Fatalf("DestroyTenantKeysBefore %s %d destroyed %d versions, want %d", tenant, version, n, want)
	}
}

// kekVersions stores versions 1..n of a tenant KEK and returns them,
// indexed by version (index 0 unused).
func (h *harness) kekVersions(tenant eventvault.TenantID, n uint32) []eventvault.WrappedKey {
	h.t.Helper()
	first, err := h.store.CreateTenantKey(h.ctx, tenant, newTenantKey())
	if err != nil {
		h.t.Fatalf("CreateTenantKey %s: %v", tenant, err)
	}
	out := []eventvault.WrappedKey{{}, first}
	for v := uint32(2); v <= n; v++ {
		k := kekVersion(first.ID, v)
		if err := h.store.AddTenantKey(h.ctx, tenant, k); err != nil {
			h.t.Fatalf("AddTenantKey %s %d: %v", tenant, v, err)
		}
		out = append(out, k)
	}
	return out
}

// streamKeyUnder creates the stream's key, wrapped under KEK version kek.
func (h *harness) streamKeyUnder(tenant eventvault.TenantID, stream eventvault.StreamName, kek uint32) eventvault.WrappedKey {
	h.t.Helper()
	k := newStreamKey()
	k.KEKVersion = kek
	stored, err := h.store.CreateStreamKey(h.ctx, tenant, stream, k)
	if err != nil {
		h.t.Fatalf("CreateStreamKey %s/%s under KEK version %d: %v", tenant, stream, kek, err)
	}
	return stored
}

// wantKEKVersions checks which of the versions 1..len(keks)-1 the tenant
// still has: those >= from, each as stored.
func (h *harness) wantKEKVersions(tenant eventvault.TenantID, keks []eventvault.WrappedKey, from uint32) {
	h.t.Helper()
	for v := uint32(1); v < uint32(len(keks)); v++ {
		got, err := h.store.TenantKeyVersion(h.ctx, tenant, v)
		if v < from {
			if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				h.t.Errorf("TenantKeyVersion %s %d after its destruction = %v, want ENOTFOUND", tenant, v, err)
			}
			continue
		}
		if err != nil {
			h.t.Errorf("TenantKeyVersion %s %d, which must stay: %v", tenant, v, err)
			continue
		}
		wantKey(h.t, fmt.Sprintf("TenantKeyVersion %s %d", tenant, v), got, keks[v])
	}
}

func testDestroyOlderVersions(t *testing.T, open opener) {
	h := setup(t, open)
	keks := h.kekVersions(tenantA, 3)
	key := h.streamKeyUnder(tenantA, "order-1", 3) // under the newest: blocks nothing

	h.mustDestroy(tenantA, 3, 2)
	h.wantKEKVersions(tenantA, keks, 3)
	newest, err := h.store.TenantKey(h.ctx, tenantA)
	if err != nil {
		t.Fatalf("TenantKey after the destruction: %v", err)
	}
	wantKey(t, "TenantKey after the destruction", newest, keks[3])
	got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey after the destruction: %v", err)
	}
	wantKey(t, "StreamKey after the destruction", got, key)

	// Idempotent: nothing older is left.
	for _, v := range []uint32{3, 2, 1} {
		h.mustDestroy(tenantA, v, 0)
	}
	h.wantKEKVersions(tenantA, keks, 3)

	// Rotation goes on: the next version is the newest plus one, and it
	// can retire the one before it in turn.
	next := kekVersion(keks[3].ID, 4)
	if err := h.store.AddTenantKey(h.ctx, tenantA, next); err != nil {
		t.Fatalf("AddTenantKey 4 after the destruction: %v", err)
	}
	h.rewrapUnder(tenantA, "order-1", key, 4)
	h.mustDestroy(tenantA, 4, 1)
	h.wantKEKVersions(tenantA, append(keks, next), 4)
}

// rewrapUnder re-wraps the stream's key under KEK version kek.
func (h *harness) rewrapUnder(tenant eventvault.TenantID, stream eventvault.StreamName, old eventvault.WrappedKey, kek uint32) eventvault.WrappedKey {
	h.t.Helper()
	next := rewrapped(old, kek)
	if err := h.store.RewrapStreamKey(h.ctx, tenant, stream, old, next); err != nil {
		h.t.Fatalf("RewrapStreamKey %s/%s to KEK version %d: %v", tenant, stream, kek, err)
	}
	return next
}

func testDestroyRefusedWhileInUse(t *testing.T, open opener) {
	h := setup(t, open)
	keks := h.kekVersions(tenantA, 3)
	old := h.streamKeyUnder(tenantA, "order-old", 1)
	h.streamKeyUnder(tenantA, "order-new", 3)
	// A shredded stream has no key left: it never blocks a destruction.
	h.streamKeyUnder(tenantA, "order-gone", 1)
	h.shred(tenantA, "order-gone", false, time.Now())

	for _, v := range []uint32{2, 3} {
		n, err := h.destroy(tenantA, v)
		if eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("DestroyTenantKeysBefore %d while order-old is under version 1 = %d, %v; want ECONFLICT", v, n, err)
		}
	}
	h.wantKEKVersions(tenantA, keks, 1) // nothing destroyed

	mid := h.rewrapUnder(tenantA, "order-old", old, 2)
	h.mustDestroy(tenantA, 2, 1)
	if n, err := h.destroy(tenantA, 3); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("DestroyTenantKeysBefore 3 while order-old is under version 2 = %d, %v; want ECONFLICT", n, err)
	}
	h.wantKEKVersions(tenantA, keks, 2)

	h.rewrapUnder(tenantA, "order-old", mid, 3)
	h.mustDestroy(tenantA, 3, 1)
	h.wantKEKVersions(tenantA, keks, 3)
}

func testDestroyedVersionsFenced(t *testing.T, open opener) {
	h := setup(t, open)
	h.kekVersions(tenantA, 2)
	h.kekVersions(tenantB, 2)
	h.streamKeyUnder(tenantA, "order-1", 2)
	h.mustDestroy(tenantA, 2, 1)

	late := newStreamKey()
	late.KEKVersion = 1
	if _, err := h.store.CreateStreamKey(h.ctx, tenantA, "order-late", late); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("CreateStreamKey under the destroyed KEK version 1 = %v, want ECONFLICT", err)
	}
	if _, err := h.store.StreamKey(h.ctx, tenantA, "order-late"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("StreamKey of a stream whose key was refused = %v, want ENOTFOUND (nothing stored)", err)
	}
	key := h.streamKeyUnder(tenantA, "order-late", 2)
	got, err := h.store.StreamKey(h.ctx, tenantA, "order-late")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	wantKey(t, "StreamKey of order-late under the newest version", got, key)

	// The fence is the tenant's: tenant B destroyed nothing.
	h.streamKeyUnder(tenantB, "order-late", 1)
}

func testDestroyTenantIsolation(t *testing.T, open opener) {
	h := setup(t, open)
	keksA := h.kekVersions(tenantA, 2)
	keksB := h.kekVersions(tenantB, 2)
	// Tenant B's stream is under version 1 and has the same name as one of
	// A's: neither may count for the other.
	h.streamKeyUnder(tenantB, "order-1", 1)
	h.streamKeyUnder(tenantA, "order-1", 2)

	h.mustDestroy(tenantA, 2, 1)
	h.wantKEKVersions(tenantA, keksA, 2)
	h.wantKEKVersions(tenantB, keksB, 1)

	if n, err := h.destroy(tenantB, 2); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("DestroyTenantKeysBefore of tenant B, whose order-1 is under version 1 = %d, %v; want ECONFLICT", n, err)
	}
	h.wantKEKVersions(tenantB, keksB, 1)
	if n, err := h.destroy("tenant-c", 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("DestroyTenantKeysBefore of a tenant without a key, next to A's and B's = %d, %v; want ENOTFOUND", n, err)
	}
}

func testDestroyBadInput(t *testing.T, open opener) {
	h := setup(t, open)
	if _, err := h.destroy(tenantA, 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("DestroyTenantKeysBefore of a tenant without a key = %v, want ENOTFOUND", err)
	}
	keks := h.kekVersions(tenantA, 2)
	cases := []struct {
		name    string
		tenant  eventvault.TenantID
		version uint32
		code    eventvault.Code
	}{
		{"version 0", tenantA, 0, eventvault.EINVALID},
		{"a malformed tenant", "Not A Tenant", 2, eventvault.EINVALID},
		{"a version above the newest", tenantA, 3, eventvault.ENOTFOUND},
		{"a version far above the newest", tenantA, 1 << 31, eventvault.ENOTFOUND},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.sub(t)
			if n, err := h.destroy(tc.tenant, tc.version); eventvault.ErrorCode(err) != tc.code || n != 0 {
				t.Errorf("DestroyTenantKeysBefore %q %d = %d, %v; want 0 and %s", tc.tenant, tc.version, n, err, tc.code)
			}
			h.wantKEKVersions(tenantA, keks, 1)
		})
	}

	// A shredded tenant has no key left to destroy.
	if _, err := h.store.ShredTenant(h.ctx, tenantA, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	if _, err := h.destroy(tenantA, 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("DestroyTenantKeysBefore of a shredded tenant = %v, want ENOTFOUND", err)
	}
}

// testDestroyRaceWithCreate races a destruction of version 1 with
// the creation of a stream key under version 1, as a node still caching it
// would: exactly one of them wins. Both winning would leave a stream key
// nobody can unwrap.
func testDestroyRaceWithCreate(t *testing.T, open opener) {
	h := setup(t, open)
	const rounds = 16
	for i := range rounds {
		tenant := eventvault.TenantID(fmt.Sprintf("race-%d", i))
		h.kekVersions(tenant, 2)
		h.streamKeyUnder(tenant, "order-0", 2)
		var createErr, destroyErr error
		var destroyed int
		late := newStreamKey()
		late.KEKVersion = 1
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			_, createErr = h.store.CreateStreamKey(h.ctx, tenant, "order-late", late)
		})
		wg.Go(func() {
			<-start
			destroyed, destroyErr = h.store.DestroyTenantKeysBefore(h.ctx, tenant, 2)
		})
		close(start)
		wg.Wait()
		switch {
		case createErr == nil && destroyErr == nil:
			t.Fatalf("round %d: both won: a stream key was stored under KEK version 1 and version 1 was destroyed (%d)", i, destroyed)
		case createErr == nil:
			if eventvault.ErrorCode(destroyErr) != eventvault.ECONFLICT {
				t.Fatalf("round %d: the creation won; DestroyTenantKeysBefore = %v, want ECONFLICT", i, destroyErr)
			}
			if _, err := h.store.TenantKeyVersion(h.ctx, tenant, 1); err != nil {
				t.Fatalf("round %d: the creation won, but version 1 is gone: %v", i, err)
			}
		case destroyErr == nil:
			if eventvault.ErrorCode(createErr) != eventvault.ECONFLICT || destroyed != 1 {
				t.Fatalf("round %d: the destruction won (%d); CreateStreamKey = %v, want ECONFLICT", i, destroyed, createErr)
			}
			if _, err := h.store.StreamKey(h.ctx, tenant, "order-late"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Fatalf("round %d: the destruction won, but StreamKey of the refused stream = %v, want ENOTFOUND", i, err)
			}
		default:
			t.Fatalf("round %d: neither won: CreateStreamKey = %v, DestroyTenantKeysBefore = %v", i, createErr, destroyErr)
		}
	}
}
