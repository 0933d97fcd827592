package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func testShredTenant(t *testing.T, open opener) {
	h := setup(t, open)
	alice := pseudonym("alice")
	kek, err := h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey())
	if err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	if err := h.store.AddTenantKey(h.ctx, tenantA, kekVersion(kek.ID, 2)); err != nil {
		t.Fatalf("AddTenantKey 2: %v", err)
	}
	other := kekVersion(uuid.New(), 3) // a version under another id
	if err := h.store.AddTenantKey(h.ctx, tenantA, other); err != nil {
		t.Fatalf("AddTenantKey 3: %v", err)
	}
	key1 := h.streamKey(tenantA, "order-1")
	key2 := h.streamKey(tenantA, "order-2")
	key3 := h.streamKey(tenantA, "order-3") // a key, no events
	h.mustAppendOwned(tenantA, "order-1", key1.ID, alice, newEvents(2))
	h.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectNoStream, newEvents(1))
	earlier := stamp()
	h.shred(tenantA, "order-2", false, earlier)

	kekB, err := h.store.CreateTenantKey(h.ctx, tenantB, newTenantKey())
	if err != nil {
		t.Fatalf("CreateTenantKey B: %v", err)
	}
	keyB := h.streamKey(tenantB, "order-1")
	h.mustAppend(tenantB, "order-1", keyB.ID, eventvault.ExpectNoStream, newEvents(1))

	at := stamp().Add(time.Second)
	s, err := h.store.ShredTenant(h.ctx, tenantA, at)
	if err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	want := eventvault.TenantShred{Tenant: tenantA, KeyIDs: []uuid.UUID{kek.ID, other.ID}, ShreddedAt: at}
	wantTenantShred(t, "ShredTenant", s, want)

	t.Run("every KEK version is gone and none comes back", func(t *testing.T) {
		h := h.sub(t)
		if _, err := h.store.TenantKey(h.ctx, tenantA); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("TenantKey of a shredded tenant = %v, want ENOTFOUND", err)
		}
		for v := uint32(1); v <= 3; v++ {
			if _, err := h.store.TenantKeyVersion(h.ctx, tenantA, v); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Errorf("TenantKeyVersion %d of a shredded tenant = %v, want ENOTFOUND", v, err)
			}
		}
		if k, err := h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey()); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("CreateTenantKey of a shredded tenant = key %s, %v; want EERASED", k.ID, err)
		}
		for _, v := range []uint32{1, 4} {
			err := h.store.AddTenantKey(h.ctx, tenantA, kekVersion(kek.ID, v))
			if code := eventvault.ErrorCode(err); code != eventvault.EERASED {
				t.Errorf("AddTenantKey %d to a shredded tenant = %v, want EERASED", v, err)
			}
		}
		if _, err := h.store.TenantKey(h.ctx, tenantA); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("TenantKey after attempts to add one = %v, want ENOTFOUND", err)
		}
	})
	t.Run("every stream key is gone and none comes back", func(t *testing.T) {
		h := h.sub(t)
		h.wantErased(tenantA, "order-1", key1)
		h.wantErased(tenantA, "order-2", key2)
		h.wantErased(tenantA, "order-3", key3)
		if k, err := h.store.CreateStreamKey(h.ctx, tenantA, "order-new", newStreamKey()); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("CreateStreamKey of a new stream of a shredded tenant = key %s, %v; want EERASED", k.ID, err)
		}
		if _, err := h.store.StreamKey(h.ctx, tenantA, "order-new"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("StreamKey of a stream refused a key = %v, want ENOTFOUND", err)
		}
	})
	t.Run("the tenant takes no token or policy, and every refusal names the tenant", func(t *testing.T) {
		h := h.sub(t)
		tenantShredded := func(what string, err error) {
			t.Helper()
			if eventvault.ErrorCode(err) != eventvault.EERASED || !errors.Is(err, eventvault.ErrTenantShredded) {
				t.Errorf("%s of a shredded tenant = %v; want EERASED wrapping ErrTenantShredded", what, err)
			}
		}
		tenantShredded("CreateToken", h.store.CreateToken(h.ctx, newToken(tenantA, "late", false, nil)))
		tenantShredded("AddPolicyVersion", h.store.AddPolicyVersion(h.ctx, policyVersion(tenantA, "late", 1, "permit (principal, action, resource);")))
		_, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
		tenantShredded("StreamKey of a stream", err)
		_, err = h.store.CreateStreamKey(h.ctx, tenantA, "order-newer", newStreamKey())
		tenantShredded("CreateStreamKey of a new stream", err)
		_, err = h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey())
		tenantShredded("CreateTenantKey", err)
		// Another tenant takes them; a stream shredded alone is not its
		// tenant's shred.
		if err := h.store.CreateToken(h.ctx, newToken(tenantB, "b", false, nil)); err != nil {
			t.Errorf("CreateToken of another tenant: %v", err)
		}
		if err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantB, "b", 1, "permit (principal, action, resource);")); err != nil {
			t.Errorf("AddPolicyVersion of another tenant: %v", err)
		}
		kb := h.streamKey(tenantB, "order-alone")
		h.mustAppend(tenantB, "order-alone", kb.ID, eventvault.ExpectNoStream, newEvents(1))
		h.shred(tenantB, "order-alone", false, stamp())
		if _, err := h.store.StreamKey(h.ctx, tenantB, "order-alone"); eventvault.ErrorCode(err) != eventvault.EERASED || errors.Is(err, eventvault.ErrTenantShredded) {
			t.Errorf("StreamKey of a stream shredded alone = %v; want EERASED, not its tenant's", err)
		}
	})
	t.Run("reads show envelopes with the time of each shred", func(t *testing.T) {
		h := h.sub(t)
		for stream, when := range map[eventvault.StreamName]time.Time{"order-1": at, "order-2": earlier, "order-3": at} {
			page := h.readStream(tenantA, stream, eventvault.ReadOptions{From: 0, Limit: 10})
			if !page.ShreddedAt.Equal(when) {
				t.Errorf("%s ShreddedAt = %v, want %v", stream, page.ShreddedAt, when)
			}
			wantKey(t, "key of "+string(stream), page.Key, eventvault.WrappedKey{})
			h.checkEvents(tenantA, page.Events)
		}
		page := h.readAll(tenantA, 0, 10)
		if len(page.Events) != 3 {
			t.Errorf("ReadAll returned %d events, want 3", len(page.Events))
		}
		wantPageKeys(t, page, map[eventvault.StreamName]eventvault.WrappedKey{"order-1": {}, "order-2": {}})
		wantShred(t, "ShredStream of a stream the tenant shred destroyed", h.shred(tenantA, "order-1", false, stamp()),
			eventvault.Shred{Stream: "order-1", KeyID: key1.ID, ShreddedAt: at, Subject: alice})
	})
	t.Run("idempotent", func(t *testing.T) {
		h := h.sub(t)
		again, err := h.store.ShredTenant(h.ctx, tenantA, at.Add(time.Hour))
		if err != nil {
			t.Fatalf("ShredTenant again: %v", err)
		}
		wantTenantShred(t, "ShredTenant again", again, want)
	})
	t.Run("another tenant is untouched", func(t *testing.T) {
		h := h.sub(t)
		k, err := h.store.TenantKey(h.ctx, tenantB)
		if err != nil {
			t.Fatalf("TenantKey B: %v", err)
		}
		wantKey(t, "TenantKey B", k, kekB)
		page := h.readStream(tenantB, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
		wantKey(t, "key of B/order-1", page.Key, keyB)
		h.mustAppend(tenantB, "order-1", keyB.ID, eventvault.ExpectPosition(0), newEvents(1))
		h.streamKey(tenantB, "order-2")
	})
	t.Run("errors", func(t *testing.T) {
		h := h.sub(t)
		if _, err := h.store.ShredTenant(h.ctx, "tenant-c", stamp()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("ShredTenant of a tenant never seen = %v, want ENOTFOUND", err)
		}
		if _, err := h.store.CreateTenantKey(h.ctx, "tenant-c", newTenantKey()); err != nil {
			t.Errorf("CreateTenantKey after a failed tenant shred: %v (the failed shred must fence nothing)", err)
		}
		if _, err := h.store.ShredTenant(h.ctx, "Tenant C", stamp()); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("ShredTenant of a malformed tenant = %v, want EINVALID", err)
		}
	})
}

func wantTenantShred(t *testing.T, what string, got, want eventvault.TenantShred) {
	t.Helper()
	if got.Tenant != want.Tenant || !slices.Equal(got.KeyIDs, want.KeyIDs) || !got.ShreddedAt.Equal(want.ShreddedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// testShredTenantRace creates stream keys from several goroutines while
// the tenant is shredded: every key stored before the shred must be
// shredded by it, and none stored after.
func testShredTenantRace(t *testing.T, open opener) {
	h := setup(t, open)
	if _, err := h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey()); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	const workers, maxPerWorker = 8, 2000
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []eventvault.StreamName
		errs    []error
		count   atomic.Int64
		enough  = make(chan struct{})
		once    sync.Once
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxPerWorker {
				name := eventvault.StreamName(fmt.Sprintf("race-%d.%d", w, i))
				_, err := h.store.CreateStreamKey(h.ctx, tenantA, name, newStreamKey())
				mu.Lock()
				switch eventvault.ErrorCode(err) {
				case "":
					created = append(created, name)
				case eventvault.EERASED:
				default:
					errs = append(errs, fmt.Errorf("CreateStreamKey %s: %w", name, err))
				}
				mu.Unlock()
				if err != nil {
					return
				}
				if count.Add(1) >= 4*workers {
					once.Do(func() { close(enough) })
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-h.ctx.Done():
	}
	if _, err := h.store.ShredTenant(h.ctx, tenantA, stamp()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(created) >= workers*maxPerWorker {
		t.Fatal("no CreateStreamKey was refused after the tenant shred")
	}
	for _, name := range created {
		if k, err := h.store.StreamKey(h.ctx, tenantA, name); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("stream %s created during the tenant shred: StreamKey = key %s, %v; want EERASED", name, k.ID, err)
		}
	}
}
