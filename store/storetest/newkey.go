package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// testAppendNewKey checks AppendRequest.NewKey: the first key of a stream
// rides with its first append and is stored with it, or not at all. A
// refused append leaves no key row, no stream and no event, and the stream
// then takes its first append as if nothing had happened.
func testAppendNewKey(t *testing.T, open opener) {
	t.Run("race", func(t *testing.T) { testNewKeyRace(t, open) })
	t.Run("stored with the append", func(t *testing.T) {
		h := setup(t, open)
		nk := newStreamKey()
		res := h.mustAppendNew(tenantA, "order-1", nk, eventvault.ExpectAny, newEvents(2))
		if res.Events[0].Position != 0 {
			t.Errorf("first append landed at %+v, want position 0", res.Events[0])
		}
		got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
		if err != nil {
			t.Fatalf("StreamKey after the append: %v", err)
		}
		wantKey(t, "StreamKey", got, nk)
		page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{Limit: 10})
		wantKey(t, "StreamPage.Key", page.Key, nk)
		h.checkEvents(tenantA, page.Events)
		// The stream is known now: the next append goes without a new key.
		h.mustAppend(tenantA, "order-1", nk.ID, eventvault.ExpectPosition(1), newEvents(1))
	})

	t.Run("new key that is not the sealing key", func(t *testing.T) {
		h := setup(t, open)
		nk, evs := newStreamKey(), newEvents(1)
		var s sealer
		other := newStreamKey()
		_, calls, err := h.appendWith(tenantA, eventvault.AppendRequest{Stream: "order-1", Expected: eventvault.ExpectAny,
			KeyID: other.ID, NewKey: &nk, Events: evs, Seal: s.seal(evs)}, &s)
		wantCode(t, err, eventvault.EINVALID)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		h.wantNoStream(tenantA, "order-1")
	})

	errSeal := errors.New("storetest: seal failed")
	refusals := []struct {
		name     string
		expected eventvault.ExpectedVersion
		prepare  func(h *harness) []eventvault.ProposedEvent // the batch
		seal     eventvault.SealFunc
		code     eventvault.Code
		actual   *int64 // the actual version a version conflict carries
		is       error
	}{
		{name: "exists on a new stream", expected: eventvault.ExpectExists, code: eventvault.ECONFLICT, actual: ptr(eventvault.NoStream), is: eventvault.ErrVersionConflict},
		{name: "exact 3 on a new stream", expected: eventvault.ExpectPosition(3), code: eventvault.ECONFLICT, actual: ptr(eventvault.NoStream), is: eventvault.ErrVersionConflict},
		{name: "exact 0 on a new stream", expected: eventvault.ExpectPosition(0), code: eventvault.ECONFLICT, actual: ptr(eventvault.NoStream), is: eventvault.ErrVersionConflict},
		{name: "an id used in another stream", expected: eventvault.ExpectAny, prepare: func(h *harness) []eventvault.ProposedEvent {
			evs := newEvents(2)
			h.mustAppend(tenantA, "other-1", h.streamKey(tenantA, "other-1").ID, eventvault.ExpectAny, evs[1:])
			return evs
		}, code: eventvault.ECONFLICT},
		{name: "an id used in another stream, no_stream", expected: eventvault.ExpectNoStream, prepare: func(h *harness) []eventvault.ProposedEvent {
			evs := newEvents(1)
			h.mustAppend(tenantA, "other-1", h.streamKey(tenantA, "other-1").ID, eventvault.ExpectAny, evs)
			return evs
		}, code: eventvault.ECONFLICT},
		{name: "seal failure", expected: eventvault.ExpectNoStream,
			seal: func(int64) ([][]byte, error) { return nil, errSeal }, code: eventvault.EINTERNAL, is: errSeal},
	}
	for _, tc := range refusals {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			h := setup(t, open)
			// Another stream first, so that the tenant exists and has events.
			h.mustAppend(tenantA, "other-2", h.streamKey(tenantA, "other-2").ID, eventvault.ExpectAny, newEvents(1))
			evs := newEvents(2)
			if tc.prepare != nil {
				evs = tc.prepare(h)
			}
			before := h.snapshot(tenantA, "other-1", "other-2")
			nk := newStreamKey()
			var s sealer
			seal := s.seal(evs)
			if tc.seal != nil {
				seal = func(first int64) ([][]byte, error) { s.record(first); return tc.seal(first) }
			}
			_, _, err := h.appendWith(tenantA, eventvault.AppendRequest{Stream: "order-1", Expected: tc.expected,
				KeyID: nk.ID, NewKey: &nk, Events: evs, Seal: seal}, &s)
			wantCode(t, err, tc.code)
			if tc.actual != nil {
				wantActualVersion(t, err, *tc.actual)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("append error %v does not wrap %v", err, tc.is)
			}
			h.unchanged(tenantA, before)
			h.wantNoStream(tenantA, "order-1")

			// Nothing was left behind: the stream takes its first append.
			fresh := newStreamKey()
			res := h.mustAppendNew(tenantA, "order-1", fresh, eventvault.ExpectNoStream, newEvents(1))
			if res.Events[0].Position != 0 {
				t.Errorf("first append after the refusal landed at %+v, want position 0", res.Events[0])
			}
			got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
			if err != nil {
				t.Fatalf("StreamKey: %v", err)
			}
			wantKey(t, "StreamKey after the first append", got, fresh)
		})
	}

	t.Run("the stream has a key already", func(t *testing.T) {
		for _, events := range []int{0, 2} {
			h := setup(t, open)
			stored := h.streamKey(tenantA, "order-1")
			if events > 0 {
				h.mustAppend(tenantA, "order-1", stored.ID, eventvault.ExpectAny, newEvents(events))
			}
			before := h.snapshot(tenantA, "order-1")
			nk := newStreamKey()
			_, calls, err := h.tryAppendNew(tenantA, "order-1", nk, eventvault.ExpectAny, newEvents(1))
			wantCode(t, err, eventvault.ECONFLICT)
			if !errors.Is(err, eventvault.ErrStreamKeyExists) {
				t.Errorf("append with a new key to a stream with %d events and a key: %v, want ErrStreamKeyExists", events, err)
			}
			if len(calls) != 0 {
				t.Errorf("Seal called with %v", calls)
			}
			h.unchanged(tenantA, before)
			got, err := h.store.StreamKey(h.ctx, tenantA, "order-1")
			if err != nil {
				t.Fatalf("StreamKey: %v", err)
			}
			wantKey(t, "StreamKey after the refused new key", got, stored)
		}
	})

	t.Run("the stream has this key already", func(t *testing.T) {
		// A first append sent again after it committed (its answer lost)
		// appends nothing: the key is the stream's now, and an append
		// under it replays.
		h := setup(t, open)
		nk, evs := newStreamKey(), newEvents(2)
		first := h.mustAppendNew(tenantA, "order-1", nk, eventvault.ExpectNoStream, evs)
		before := h.snapshot(tenantA, "order-1")
		_, calls, err := h.tryAppendNew(tenantA, "order-1", nk, eventvault.ExpectNoStream, evs)
		wantCode(t, err, eventvault.ECONFLICT)
		if !errors.Is(err, eventvault.ErrStreamKeyExists) {
			t.Errorf("a first append sent again: %v, want ErrStreamKeyExists", err)
		}
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		h.unchanged(tenantA, before)
		again, _, err := h.tryAppend(tenantA, "order-1", nk.ID, eventvault.ExpectNoStream, evs)
		if err != nil || !again.Replayed || again.Events[0] != first.Events[0] {
			t.Errorf("the batch under the stream's key: %+v, %v; want a replay of %+v", again, err, first)
		}
	})

	t.Run("shredded stream", func(t *testing.T) {
		h := setup(t, open)
		stored := h.streamKey(tenantA, "order-1")
		h.mustAppend(tenantA, "order-1", stored.ID, eventvault.ExpectAny, newEvents(1))
		h.shred(tenantA, "order-1", false, time.Now())
		nk := newStreamKey()
		_, calls, err := h.tryAppendNew(tenantA, "order-1", nk, eventvault.ExpectAny, newEvents(1))
		wantCode(t, err, eventvault.EERASED)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		if _, err := h.store.StreamKey(h.ctx, tenantA, "order-1"); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("StreamKey of the shredded stream after a new key was refused: %v, want EERASED", err)
		}
	})

	t.Run("new key under a destroyed KEK version", func(t *testing.T) {
		h := setup(t, open)
		h.kekVersions(tenantA, 2)
		h.mustDestroy(tenantA, 2, 1)
		nk := newStreamKey() // KEK version 1
		_, calls, err := h.tryAppendNew(tenantA, "order-1", nk, eventvault.ExpectAny, newEvents(1))
		wantCode(t, err, eventvault.ECONFLICT)
		if !errors.Is(err, eventvault.ErrKEKRetired) {
			t.Errorf("append with a new key under a destroyed KEK version: %v, want ErrKEKRetired", err)
		}
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		h.wantNoStream(tenantA, "order-1")
		nk.KEKVersion = 2
		h.mustAppendNew(tenantA, "order-1", nk, eventvault.ExpectNoStream, newEvents(1))
	})
}

// testNewKeyRace checks first appends that race: to distinct new streams
// of one tenant, all commit (none waits for a deadlock to be broken); to
// one new stream, exactly one key wins and every loser gets
// ErrStreamKeyExists, having written nothing.
func testNewKeyRace(t *testing.T, open opener) {
	h := setup(t, open)
	h.mustAppend(tenantA, "other-1", h.streamKey(tenantA, "other-1").ID, eventvault.ExpectAny, newEvents(1))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = h.tryAppendNew(tenantA, eventvault.StreamName(fmt.Sprintf("order-%d", i)), newStreamKey(), eventvault.ExpectNoStream, newEvents(1))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("first append to order-%d beside %d others: %v", i, n-1, err)
		}
	}

	keys := make([]eventvault.WrappedKey, n)
	for i := range n {
		keys[i] = newStreamKey()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = h.tryAppendNew(tenantA, "loan-1", keys[i], eventvault.ExpectAny, newEvents(1))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("two first appends to one stream committed with keys %d and %d", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, eventvault.ErrStreamKeyExists):
			t.Errorf("a first append that lost the race: %v, want ErrStreamKeyExists", err)
		}
	}
	if won < 0 {
		t.Fatal("no first append to the raced stream committed")
	}
	got, err := h.store.StreamKey(h.ctx, tenantA, "loan-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	wantKey(t, "the raced stream's key", got, keys[won])
	if page := h.readStream(tenantA, "loan-1", eventvault.ReadOptions{Limit: 100}); len(page.Events) != 1 {
		t.Errorf("the raced stream holds %d events, want 1", len(page.Events))
	}
	h.checkEvents(tenantA, h.allEvents(tenantA, 100))
}

func ptr[T any](v T) *T { return &v }

// tryAppendNew is tryAppend for a stream's first append, carrying its key.
func (h *harness) tryAppendNew(tenant eventvault.TenantID, stream eventvault.StreamName, nk eventvault.WrappedKey, expected eventvault.ExpectedVersion, evs []eventvault.ProposedEvent) (eventvault.AppendResult, []int64, error) {
	var s sealer
	return h.appendWith(tenant, eventvault.AppendRequest{
		Stream: stream, Expected: expected, KeyID: nk.ID, NewKey: &nk, Events: evs, Seal: s.seal(evs),
	}, &s)
}

// mustAppendNew is mustAppend for a stream's first append, carrying its key.
func (h *harness) mustAppendNew(tenant eventvault.TenantID, stream eventvault.StreamName, nk eventvault.WrappedKey, expected eventvault.ExpectedVersion, evs []eventvault.ProposedEvent) eventvault.AppendResult {
	h.t.Helper()
	res, calls, err := h.tryAppendNew(tenant, stream, nk, expected, evs)
	if err != nil {
		h.t.Fatalf("first append to %s/%s with its new key: %v", tenant, stream, err)
	}
	if len(res.Events) != len(evs) || res.Replayed || len(calls) != 1 {
		h.t.Fatalf("first append to %s/%s: %+v, Seal calls %v", tenant, stream, res, calls)
	}
	return res
}

// wantNoStream fails the test unless the stream has no key row and no
// events: a refused append left nothing behind.
func (h *harness) wantNoStream(tenant eventvault.TenantID, stream eventvault.StreamName) {
	h.t.Helper()
	if _, err := h.store.StreamKey(h.ctx, tenant, stream); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		h.t.Errorf("StreamKey %s/%s after a refused append: %v, want ENOTFOUND (no key row)", tenant, stream, err)
	}
	if _, err := h.store.ReadStream(h.ctx, tenant, stream, eventvault.ReadOptions{Limit: 10}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		h.t.Errorf("ReadStream %s/%s after a refused append: %v, want ENOTFOUND", tenant, stream, err)
	}
	if owners, ok := h.store.(eventvault.StreamOwners); ok {
		if _, err := owners.StreamOwner(h.ctx, tenant, stream); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			h.t.Errorf("StreamOwner %s/%s after a refused append: %v, want ENOTFOUND (no stream)", tenant, stream, err)
		}
	}
}
