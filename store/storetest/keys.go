package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/eventvault/eventvault"
)

// keyKind is a kind of wrapped key the KeyStore keeps: get and
// insert-if-absent.
type keyKind struct {
	name   string
	newKey func() eventvault.WrappedKey
	get    func(ctx context.Context, s eventvault.Store) (eventvault.WrappedKey, error)
	create func(ctx context.Context, s eventvault.Store, k eventvault.WrappedKey) (eventvault.WrappedKey, error)
}

var keyKinds = []keyKind{
	{
		name:   "tenant KEK",
		newKey: newTenantKey,
		get: func(ctx context.Context, s eventvault.Store) (eventvault.WrappedKey, error) {
			return s.TenantKey(ctx, tenantA)
		},
		create: func(ctx context.Context, s eventvault.Store, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
			return s.CreateTenantKey(ctx, tenantA, k)
		},
	},
	{
		name:   "stream key",
		newKey: newStreamKey,
		get: func(ctx context.Context, s eventvault.Store) (eventvault.WrappedKey, error) {
			return s.StreamKey(ctx, tenantA, "order-1")
		},
		create: func(ctx context.Context, s eventvault.Store, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
			return s.CreateStreamKey(ctx, tenantA, "order-1", k)
		},
	},
}

func testKeys(t *testing.T, open opener) {
	for _, kind := range keyKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Run("insert if absent", func(t *testing.T) { testKeyInsertIfAbsent(t, open, kind) })
			t.Run("concurrent create", func(t *testing.T) { testKeyConcurrentCreate(t, open, kind) })
		})
	}
	t.Run("stream keys are per stream", func(t *testing.T) {
		h := setup(t, open)
		k1 := h.streamKey(tenantA, "order-1")
		if _, err := h.store.StreamKey(h.ctx, tenantA, "order-2"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("StreamKey of a stream without a key = %v, want ENOTFOUND", err)
		}
		k2 := newStreamKey()
		got, err := h.store.CreateStreamKey(h.ctx, tenantA, "order-2", k2)
		if err != nil {
			t.Fatalf("CreateStreamKey order-2: %v", err)
		}
		wantKey(t, "CreateStreamKey order-2", got, k2)
		got, err = h.store.StreamKey(h.ctx, tenantA, "order-1")
		if err != nil {
			t.Fatalf("StreamKey order-1: %v", err)
		}
		wantKey(t, "StreamKey order-1", got, k1)
	})
}

func testKeyInsertIfAbsent(t *testing.T, open opener, kind keyKind) {
	h := setup(t, open)
	if _, err := kind.get(h.ctx, h.store); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("%s before creation: %v, want ENOTFOUND", kind.name, err)
	}

	first := kind.newKey()
	got, err := kind.create(h.ctx, h.store, first)
	if err != nil {
		t.Fatalf("create %s: %v", kind.name, err)
	}
	wantKey(t, "first create", got, first)
	got, err = kind.get(h.ctx, h.store)
	if err != nil {
		t.Fatalf("get %s: %v", kind.name, err)
	}
	wantKey(t, "get after create", got, first)

	second := kind.newKey()
	second.Version = 7
	got, err = kind.create(h.ctx, h.store, second)
	if err != nil {
		t.Fatalf("second create %s: %v", kind.name, err)
	}
	wantKey(t, "second create", got, first)
	got, err = kind.get(h.ctx, h.store)
	if err != nil {
		t.Fatalf("get %s: %v", kind.name, err)
	}
	wantKey(t, "get after the second create", got, first)
}

// testKeyConcurrentCreate races eight creates of one key: all must return
// the same stored key, one of those proposed.
func testKeyConcurrentCreate(t *testing.T, open opener, kind keyKind) {
	h := setup(t, open)
	const n = 8
	proposed := make([]eventvault.WrappedKey, n)
	got := make([]eventvault.WrappedKey, n)
	errs := make([]error, n)
	for i := range proposed {
		proposed[i] = kind.newKey()
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = kind.create(h.ctx, h.store, proposed[i])
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d of %d: %v", i, n, err)
		}
	}
	winner := -1
	for i, p := range proposed {
		if keysEqual(got[0], p) {
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("create returned key %s, which none of the creates proposed", got[0].ID)
	}
	for i := range got {
		wantKey(t, "concurrent create", got[i], proposed[winner])
	}
	stored, err := kind.get(h.ctx, h.store)
	if err != nil {
		t.Fatalf("get %s: %v", kind.name, err)
	}
	wantKey(t, "get after the race", stored, proposed[winner])
}
