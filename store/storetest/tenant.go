package storetest

import (
	"slices"
	"testing"

	"github.com/eventvault/eventvault"
)

// testTenantIsolation checks that nothing crosses tenants: tenant B sees
// none of A's keys, streams, events or log, and a stream name or event id
// used in both tenants names two independent things.
func testTenantIsolation(t *testing.T, open opener) {
	h := setup(t, open)
	ctx := h.ctx

	kekA, err := h.store.CreateTenantKey(ctx, tenantA, newTenantKey())
	if err != nil {
		t.Fatalf("CreateTenantKey A: %v", err)
	}
	keyA := h.streamKey(tenantA, "order-1")
	userKeyA := h.streamKey(tenantA, "user-7")
	evsA := newEvents(3)
	h.mustAppend(tenantA, "order-1", keyA.ID, eventvault.ExpectNoStream, evsA)
	h.mustAppend(tenantA, "user-7", userKeyA.ID, eventvault.ExpectNoStream, newEvents(2))
	logA := h.allEvents(tenantA, 100)

	t.Run("B sees nothing of A", func(t *testing.T) {
		h := h.sub(t)
		if _, err := h.store.TenantKey(h.ctx, tenantB); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("TenantKey of B = %v, want ENOTFOUND", err)
		}
		for _, s := range []eventvault.StreamName{"order-1", "user-7"} {
			if _, err := h.store.StreamKey(h.ctx, tenantB, s); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Errorf("StreamKey B/%s = %v, want ENOTFOUND", s, err)
			}
			if _, err := h.store.ReadStream(h.ctx, tenantB, s, eventvault.ReadOptions{From: 0, Limit: 10}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
				t.Errorf("ReadStream B/%s = %v, want ENOTFOUND", s, err)
			}
		}
		if got := h.allEvents(tenantB, 10); len(got) != 0 {
			t.Errorf("ReadAll of B returned %d events of A", len(got))
		}
	})

	t.Run("B cannot append under A's key", func(t *testing.T) {
		h := h.sub(t)
		_, calls, err := h.tryAppend(tenantB, "order-1", keyA.ID, eventvault.ExpectAny, newEvents(1))
		wantCode(t, err, eventvault.ENOTFOUND)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
	})

	// B's order-1 is a stream of its own: its own key, positions from 0,
	// global positions from 0, and A's event ids are new ids in B.
	keyB := newStreamKey()
	t.Run("same stream name in B", func(t *testing.T) {
		h := h.sub(t)
		stored, err := h.store.CreateStreamKey(h.ctx, tenantB, "order-1", keyB)
		if err != nil {
			t.Fatalf("CreateStreamKey B/order-1: %v", err)
		}
		wantKey(t, "CreateStreamKey B/order-1", stored, keyB)

		evsB := slices.Clone(evsA[:2])
		res := h.mustAppend(tenantB, "order-1", keyB.ID, eventvault.ExpectNoStream, evsB)
		if want := []eventvault.Positions{at(0, 0), at(1, 1)}; !slices.Equal(res.Events, want) {
			t.Errorf("B's first append landed at %+v, want %+v", res.Events, want)
		}

		page := h.readStream(tenantB, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
		wantKey(t, "StreamPage.Key of B/order-1", page.Key, keyB)
		if page.Version != 1 {
			t.Errorf("B/order-1 version = %d, want 1", page.Version)
		}
		h.checkEvents(tenantB, page.Events)

		logB := h.allEvents(tenantB, 10)
		if got := globalsOf(logB); !slices.Equal(got, []int64{0, 1}) {
			t.Errorf("B's global positions %v, want [0 1]", got)
		}
		h.checkEvents(tenantB, logB)
		wantPageKeys(t, h.readAll(tenantB, 0, 10), map[eventvault.StreamName]eventvault.WrappedKey{"order-1": keyB})
	})

	t.Run("A is untouched", func(t *testing.T) {
		h := h.sub(t)
		if got := h.allEvents(tenantA, 100); !slices.EqualFunc(got, logA, eventsEqual) {
			t.Errorf("A's log changed after B's writes: %d events, had %d", len(got), len(logA))
		}
		page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
		wantKey(t, "StreamPage.Key of A/order-1", page.Key, keyA)
		if page.Version != 2 {
			t.Errorf("A/order-1 version = %d, want 2", page.Version)
		}
		h.checkEvents(tenantA, page.Events)
		wantPageKeys(t, h.readAll(tenantA, 0, 100), map[eventvault.StreamName]eventvault.WrappedKey{"order-1": keyA, "user-7": userKeyA})
		k, err := h.store.TenantKey(h.ctx, tenantA)
		if err != nil {
			t.Fatalf("TenantKey A: %v", err)
		}
		wantKey(t, "TenantKey A", k, kekA)
	})

	t.Run("A's key id does not hold in B", func(t *testing.T) {
		h := h.sub(t)
		before := h.snapshot(tenantB, "order-1")
		_, _, err := h.tryAppend(tenantB, "order-1", keyA.ID, eventvault.ExpectAny, newEvents(1))
		wantCode(t, err, eventvault.EERASED)
		h.unchanged(tenantB, before)
	})

	t.Run("tenant keys are independent", func(t *testing.T) {
		h := h.sub(t)
		kekB := newTenantKey()
		got, err := h.store.CreateTenantKey(h.ctx, tenantB, kekB)
		if err != nil {
			t.Fatalf("CreateTenantKey B: %v", err)
		}
		wantKey(t, "CreateTenantKey B", got, kekB)
		got, err = h.store.TenantKey(h.ctx, tenantA)
		if err != nil {
			t.Fatalf("TenantKey A: %v", err)
		}
		wantKey(t, "TenantKey A after B created its own", got, kekA)
	})
}
