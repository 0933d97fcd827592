package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// RunNodes runs the cases that need two nodes of one deployment: open
// returns two stores over the same storage (for PostgreSQL, two *DB on one
// database), each with its own caches, so that what one writes the other
// has not seen. A store that guesses a stream's version from its own
// earlier appends must still answer every append as if it had not.
func RunNodes(t *testing.T, open func(t *testing.T) (eventvault.Store, eventvault.Store)) {
	nodes := func(t *testing.T) (*harness, *harness) {
		a, b := open(t)
		if a == nil || b == nil {
			t.Fatal("open returned a nil store")
		}
		ha := setup(t, func(*testing.T) eventvault.Store { return a })
		hb := *ha
		hb.store = b
		return ha, &hb
	}
	t.Run("alternating nodes", func(t *testing.T) { testNodesAlternate(t, nodes) })
	t.Run("expected version moved on the other node", func(t *testing.T) { testNodesConflict(t, nodes) })
	t.Run("retry on the other node", func(t *testing.T) { testNodesReplay(t, nodes) })
	t.Run("id taken on the other node", func(t *testing.T) { testNodesIDTaken(t, nodes) })
	t.Run("shredded on the other node", func(t *testing.T) { testNodesShred(t, nodes) })
	t.Run("concurrent writers on both nodes", func(t *testing.T) { testNodesConcurrent(t, nodes) })
}

type nodesOpener = func(t *testing.T) (*harness, *harness)

// appended checks a successful, new append at position first, and returns
// its result. Seal may have been called more than once (a stale guess), but
// its last call was at first.
func appended(t *testing.T, res eventvault.AppendResult, calls []int64, err error, first int64, n int) eventvault.AppendResult {
	t.Helper()
	if err != nil {
		t.Fatalf("append at %d: %v", first, err)
	}
	if res.Replayed || len(res.Events) != n || res.Events[0].Position != first || res.Version != first+int64(n)-1 {
		t.Fatalf("append = %+v, want %d new events from position %d", res, n, first)
	}
	if len(calls) == 0 || calls[len(calls)-1] != first {
		t.Errorf("Seal called with first positions %v, want the last at %d", calls, first)
	}
	return res
}

// testNodesAlternate has each node append in turn with the exact version,
// so that every append finds its node's guess one batch behind.
func testNodesAlternate(t *testing.T, nodes nodesOpener) {
	a, b := nodes(t)
	key := a.streamKey(tenantA, "order-1")
	v := eventvault.NoStream
	global := int64(-1)
	for i := range 10 {
		h := a
		if i%2 == 1 {
			h = b
		}
		n := 1 + i%3
		res, calls, err := h.tryAppend(tenantA, "order-1", key.ID, expect(v), newEvents(n))
		res = appended(t, res, calls, err, v+1, n)
		if res.Events[0].GlobalPosition != global+1 {
			t.Errorf("append %d took global position %d, want %d", i, res.Events[0].GlobalPosition, global+1)
		}
		v, global = res.Version, res.Events[n-1].GlobalPosition
	}
	for _, h := range []*harness{a, b} {
		evs := h.allEvents(tenantA, 100)
		h.checkEvents(tenantA, evs)
		if want := span(0, int(global)+1, 1); !slices.Equal(globalsOf(evs), want) {
			t.Errorf("global positions %v, want %v", globalsOf(evs), want)
		}
	}
}

// testNodesConflict: node a last saw version 1; b appends; a's append
// expecting 1 is a conflict naming the actual version, and writes nothing.
func testNodesConflict(t *testing.T, nodes nodesOpener) {
	a, b := nodes(t)
	key := a.streamKey(tenantA, "order-1")
	a.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(2))
	b.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(1), newEvents(1))
	before := a.snapshot(tenantA, "order-1")

	for _, exp := range []eventvault.ExpectedVersion{eventvault.ExpectPosition(1), eventvault.ExpectNoStream} {
		_, _, err := a.tryAppend(tenantA, "order-1", key.ID, exp, newEvents(1))
		wantCode(t, err, eventvault.ECONFLICT)
		wantActualVersion(t, err, 2)
		a.unchanged(tenantA, before)
	}

	// Expecting any version, a's stale guess costs nothing but a retry.
	res, calls, err := a.tryAppend(tenantA, "order-1", key.ID, eventvault.ExpectAny, newEvents(1))
	appended(t, res, calls, err, 3, 1)
	if want := at(3, 3); res.Events[0] != want {
		t.Errorf("append after the conflict landed at %+v, want %+v", res.Events[0], want)
	}
}

// testNodesReplay: a batch retried through the other node, whose guess is
// behind or ahead, is a replay with the original positions.
func testNodesReplay(t *testing.T, nodes nodesOpener) {
	a, b := nodes(t)
	key := a.streamKey(tenantA, "order-1")
	first := newEvents(2)
	orig := a.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, first)
	second := newEvents(2)
	b.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(1), second)

	cases := []struct {
		name string
		h    *harness
		evs  []eventvault.ProposedEvent
		want eventvault.AppendResult
	}{
		// a guesses version 1, so the batch would fit at 2..3 but exists.
		{"node behind", a, second, eventvault.AppendResult{Stream: "order-1", Replayed: true, Version: 3, Events: []eventvault.Positions{at(2, 2), at(3, 3)}}},
		{"node that wrote the first batch", a, first, eventvault.AppendResult{Stream: "order-1", Replayed: true, Version: orig.Version, Events: orig.Events}},
		{"node ahead", b, first, eventvault.AppendResult{Stream: "order-1", Replayed: true, Version: 1, Events: []eventvault.Positions{at(0, 0), at(1, 1)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.h.snapshot(tenantA, "order-1")
			for _, exp := range []eventvault.ExpectedVersion{eventvault.ExpectAny, eventvault.ExpectPosition(1), eventvault.ExpectPosition(3)} {
				res, _, err := tc.h.tryAppend(tenantA, "order-1", key.ID, exp, tc.evs)
				if err != nil {
					t.Fatalf("retry expecting %s: %v", exp, err)
				}
				if res.Stream != tc.want.Stream || !res.Replayed || res.Version != tc.want.Version || !slices.Equal(res.Events, tc.want.Events) {
					t.Errorf("retry expecting %s = %+v, want %+v", exp, res, tc.want)
				}
			}
			tc.h.unchanged(tenantA, before)
		})
	}
}

// testNodesIDTaken: b uses an id in another stream; a, whose guess of its
// own stream still holds, must refuse the id rather than write it twice.
func testNodesIDTaken(t *testing.T, nodes nodesOpener) {
	a, b := nodes(t)
	key1 := a.streamKey(tenantA, "order-1")
	key2 := a.streamKey(tenantA, "order-2")
	a.mustAppend(tenantA, "order-1", key1.ID, eventvault.ExpectNoStream, newEvents(1))
	evs := newEvents(2)
	b.mustAppend(tenantA, "order-2", key2.ID, eventvault.ExpectNoStream, evs[1:])
	before := a.snapshot(tenantA, "order-1", "order-2")

	_, _, err := a.tryAppend(tenantA, "order-1", key1.ID, eventvault.ExpectPosition(0), evs)
	wantCode(t, err, eventvault.ECONFLICT)
	a.unchanged(tenantA, before)

	// The same id in the same stream but another batch.
	_, _, err = a.tryAppend(tenantA, "order-2", key2.ID, eventvault.ExpectAny, evs)
	wantCode(t, err, eventvault.ECONFLICT)
	a.unchanged(tenantA, before)
}

// testNodesShred: b shreds what a has appended to; a's next append, under
// the key it knew, is refused and writes nothing.
func testNodesShred(t *testing.T, nodes nodesOpener) {
	t.Run("stream", func(t *testing.T) {
		a, b := nodes(t)
		key := a.streamKey(tenantA, "order-1")
		a.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(1))
		if _, err := b.store.ShredStream(b.ctx, tenantA, "order-1", false, time.Time{}); err != nil {
			t.Fatalf("ShredStream on the other node: %v", err)
		}
		before := a.snapshot(tenantA, "order-1")
		_, _, err := a.tryAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(0), newEvents(1))
		wantCode(t, err, eventvault.EERASED)
		a.unchanged(tenantA, before)
	})
	t.Run("tenant", func(t *testing.T) {
		a, b := nodes(t)
		if _, err := a.store.CreateTenantKey(a.ctx, tenantA, newTenantKey()); err != nil {
			t.Fatalf("CreateTenantKey: %v", err)
		}
		key := a.streamKey(tenantA, "order-1")
		a.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(1))
		if _, err := b.store.ShredTenant(b.ctx, tenantA, time.Time{}); err != nil {
			t.Fatalf("ShredTenant on the other node: %v", err)
		}
		_, _, err := a.tryAppend(tenantA, "order-1", key.ID, eventvault.ExpectAny, newEvents(1))
		wantCode(t, err, eventvault.EERASED)
		if v := a.version(tenantA, "order-1"); v != 0 {
			t.Errorf("version after the refused append = %d, want 0", v)
		}
	})
}

// testNodesConcurrent has writers on both nodes append to one stream with
// any version: every event lands once, positions and global positions are
// gapless, and global order follows stream order.
func testNodesConcurrent(t *testing.T, nodes nodesOpener) {
	a, b := nodes(t)
	key := a.streamKey(tenantA, "order-1")
	const writers, perWriter = 8, 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []uuid.UUID
	for w := range writers {
		h := a
		if w%2 == 1 {
			h = b
		}
		wg.Go(func() {
			for range perWriter {
				evs := newEvents(1 + w%2)
				if _, _, err := h.tryAppend(tenantA, "order-1", key.ID, eventvault.ExpectAny, evs); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					ids = append(ids, e.ID)
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, &wg, "writers on two nodes")

	evs := a.allEvents(tenantA, 100)
	a.checkEvents(tenantA, evs)
	if len(evs) != len(ids) {
		t.Fatalf("the log has %d events, the writers appended %d", len(evs), len(ids))
	}
	want := span(0, len(ids), 1)
	if !slices.Equal(globalsOf(evs), want) || !slices.Equal(positionsOf(evs), want) {
		t.Errorf("positions %v and global positions %v, want both %v", positionsOf(evs), globalsOf(evs), want)
	}
}
