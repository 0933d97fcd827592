package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func testAppend(t *testing.T, open opener) {
	t.Run("NewStream", func(t *testing.T) { testAppendNewStream(t, open) })
	t.Run("InvalidRequest", func(t *testing.T) { testAppendInvalid(t, open) })
	t.Run("ExpectedVersion", func(t *testing.T) { testExpectedVersion(t, open) })
	t.Run("SealFailure", func(t *testing.T) { testSealFailure(t, open) })
	t.Run("StreamKey", func(t *testing.T) { testAppendStreamKey(t, open) })
	t.Run("NewKey", func(t *testing.T) { testAppendNewKey(t, open) })
}

func testAppendNewStream(t *testing.T, open opener) {
	h := setup(t, open)
	key := h.streamKey(tenantA, "order-1")

	res := h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(3))
	if want := []eventvault.Positions{at(0, 0), at(1, 1), at(2, 2)}; !slices.Equal(res.Events, want) {
		t.Fatalf("first append to a new stream landed at %+v, want %+v", res.Events, want)
	}

	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 100})
	wantKey(t, "StreamPage.Key", page.Key, key)
	if page.Version != 2 {
		t.Errorf("StreamPage.Version = %d, want 2", page.Version)
	}
	if got := positionsOf(page.Events); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Fatalf("read back positions %v, want [0 1 2]", got)
	}
	h.checkEvents(tenantA, page.Events)

	res = h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(2), newEvents(2))
	if want := []eventvault.Positions{at(3, 3), at(4, 4)}; !slices.Equal(res.Events, want) {
		t.Errorf("second append landed at %+v, want %+v", res.Events, want)
	}

	other := h.streamKey(tenantA, "order-2")
	res = h.mustAppend(tenantA, "order-2", other.ID, eventvault.ExpectAny, newEvents(1))
	if want := []eventvault.Positions{at(0, 5)}; !slices.Equal(res.Events, want) {
		t.Errorf("append to a second stream landed at %+v, want %+v (its own positions, the tenant's next global position)", res.Events, want)
	}

	all := h.allEvents(tenantA, 100)
	if got := globalsOf(all); !slices.Equal(got, span(0, 6, 1)) {
		t.Errorf("global positions %v, want 0..5", got)
	}
	h.checkEvents(tenantA, all)
}

// testAppendInvalid checks requests that can never succeed, whatever the
// store holds. A duplicate id inside one batch is EINVALID, not ECONFLICT:
// it is a malformed request, not a clash with stored state.
func testAppendInvalid(t *testing.T, open opener) {
	dup := newEvents(2)
	dup[1].ID = dup[0].ID

	cases := []struct {
		name   string
		events []eventvault.ProposedEvent
		noSeal bool
	}{
		{name: "no events", events: nil},
		{name: "event id twice in the batch", events: dup},
		{name: "nil Seal", events: newEvents(1), noSeal: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open)
			key := h.streamKey(tenantA, "order-1")
			h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectAny, newEvents(1))
			before := h.snapshot(tenantA, "order-1")

			var s sealer
			req := eventvault.AppendRequest{Stream: "order-1", Expected: eventvault.ExpectAny, KeyID: key.ID, Events: tc.events, Seal: s.seal(tc.events)}
			if tc.noSeal {
				req.Seal = nil
			}
			_, calls, err := h.appendWith(tenantA, req, &s)
			wantCode(t, err, eventvault.EINVALID)
			if len(calls) != 0 {
				t.Errorf("Seal called %d times for an invalid request", len(calls))
			}
			h.unchanged(tenantA, before)
		})
	}
}

func testExpectedVersion(t *testing.T, open opener) {
	cases := []struct {
		name     string
		existing int // events in the stream before the append
		expected eventvault.ExpectedVersion
		ok       bool
	}{
		{"any on a new stream", 0, eventvault.ExpectAny, true},
		{"any on an existing stream", 3, eventvault.ExpectAny, true},
		{"no_stream on a new stream", 0, eventvault.ExpectNoStream, true},
		{"no_stream on an existing stream", 3, eventvault.ExpectNoStream, false},
		{"exists on a new stream", 0, eventvault.ExpectExists, false},
		{"exists on an existing stream", 3, eventvault.ExpectExists, true},
		{"exact at the version", 3, eventvault.ExpectPosition(2), true},
		{"exact behind the version", 3, eventvault.ExpectPosition(1), false},
		{"exact ahead of the version", 3, eventvault.ExpectPosition(3), false},
		{"exact 0 on a new stream", 0, eventvault.ExpectPosition(0), false},
		{"exact -1 on a new stream", 0, eventvault.ExpectPosition(eventvault.NoStream), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open)
			// Another stream first, so that global and stream positions differ.
			otherKey := h.streamKey(tenantA, "other-1")
			h.mustAppend(tenantA, "other-1", otherKey.ID, eventvault.ExpectAny, newEvents(2))
			key := h.streamKey(tenantA, "order-1")
			if tc.existing > 0 {
				h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(tc.existing))
			}
			current := int64(tc.existing) - 1
			nextGlobal := int64(2 + tc.existing)
			before := h.snapshot(tenantA, "order-1", "other-1")

			evs := newEvents(2)
			if tc.ok {
				res := h.mustAppend(tenantA, "order-1", key.ID, tc.expected, evs)
				if want := (eventvault.Positions{Position: current + 1, GlobalPosition: nextGlobal}); res.Events[0] != want {
					t.Errorf("append landed at %+v, want %+v", res.Events[0], want)
				}
				h.checkEvents(tenantA, h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 100}).Events)
				return
			}

			_, calls, err := h.tryAppend(tenantA, "order-1", key.ID, tc.expected, evs)
			wantCode(t, err, eventvault.ECONFLICT)
			wantActualVersion(t, err, current)
			if len(calls) != 0 {
				t.Errorf("Seal called with %v for an append whose expected version does not hold", calls)
			}
			h.unchanged(tenantA, before)

			// The failed append consumed no position: the next one fills it.
			res := h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectAny, evs)
			if want := (eventvault.Positions{Position: current + 1, GlobalPosition: nextGlobal}); res.Events[0] != want {
				t.Errorf("append after the conflict landed at %+v, want %+v (no gap)", res.Events[0], want)
			}
		})
	}
}

func testSealFailure(t *testing.T, open opener) {
	errSeal := errors.New("storetest: seal failed")
	errCoded := &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "storetest: root key unreachable"}
	payloads := func(n int) eventvault.SealFunc {
		return func(int64) ([][]byte, error) { return make([][]byte, n), nil }
	}
	const batch = 3

	cases := []struct {
		name   string
		seal   eventvault.SealFunc
		code   eventvault.Code
		wantIs error
	}{
		{"error", func(int64) ([][]byte, error) { return nil, errSeal }, eventvault.EINTERNAL, errSeal},
		{"error with a code", func(int64) ([][]byte, error) { return nil, errCoded }, eventvault.EUNAVAILABLE, errCoded},
		{"too few payloads", payloads(batch - 1), eventvault.EINTERNAL, nil},
		{"too many payloads", payloads(batch + 1), eventvault.EINTERNAL, nil},
		{"no payloads", payloads(0), eventvault.EINTERNAL, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open)
			key := h.streamKey(tenantA, "order-1")
			h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(2))
			before := h.snapshot(tenantA, "order-1")

			evs := newEvents(batch)
			var s sealer
			req := eventvault.AppendRequest{
				Stream: "order-1", Expected: eventvault.ExpectPosition(1), KeyID: key.ID, Events: evs,
				Seal: func(first int64) ([][]byte, error) { s.record(first); return tc.seal(first) },
			}
			_, calls, err := h.appendWith(tenantA, req, &s)
			wantCode(t, err, tc.code)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("append error %v does not wrap the Seal error %v", err, tc.wantIs)
			}
			if !slices.Equal(calls, []int64{2}) {
				t.Errorf("Seal called with first positions %v, want once with 2", calls)
			}
			h.unchanged(tenantA, before)

			// Nothing of the failed batch was kept: its ids append afresh.
			res := h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(1), evs)
			if want := (eventvault.Positions{Position: 2, GlobalPosition: 2}); res.Events[0] != want {
				t.Errorf("retry after the Seal failure landed at %+v, want %+v", res.Events[0], want)
			}
		})
	}
}

// testAppendStreamKey checks that an append lands only under the stream's
// current key. EERASED holds for a retry too: a batch is never confirmed
// under a key that is no longer the stream's.
func testAppendStreamKey(t *testing.T, open opener) {
	cases := []struct {
		name  string
		keyID func(h *harness) uuid.UUID
		code  eventvault.Code
	}{
		{"stream without a key", func(h *harness) uuid.UUID {
			return uuid.New()
		}, eventvault.ENOTFOUND},
		{"unknown key id", func(h *harness) uuid.UUID {
			h.streamKey(tenantA, "order-1")
			return uuid.New()
		}, eventvault.EERASED},
		{"key of another stream", func(h *harness) uuid.UUID {
			h.streamKey(tenantA, "order-1")
			return h.streamKey(tenantA, "order-2").ID
		}, eventvault.EERASED},
		{"tenant key", func(h *harness) uuid.UUID {
			h.streamKey(tenantA, "order-1")
			k, err := h.store.CreateTenantKey(h.ctx, tenantA, newTenantKey())
			if err != nil {
				h.t.Fatalf("CreateTenantKey: %v", err)
			}
			return k.ID
		}, eventvault.EERASED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open)
			keyID := tc.keyID(h)
			before := h.snapshot(tenantA, "order-1")

			_, calls, err := h.tryAppend(tenantA, "order-1", keyID, eventvault.ExpectAny, newEvents(2))
			wantCode(t, err, tc.code)
			if len(calls) != 0 {
				t.Errorf("Seal called with %v for an append refused for its key", calls)
			}
			h.unchanged(tenantA, before)
			if tc.code == eventvault.ENOTFOUND {
				if _, err := h.store.StreamKey(h.ctx, tenantA, "order-1"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
					t.Errorf("after a refused append, StreamKey = %v, want ENOTFOUND: the append must not create the stream", err)
				}
			}
		})
	}

	t.Run("retry under another key id", func(t *testing.T) {
		h := setup(t, open)
		key := h.streamKey(tenantA, "order-1")
		evs := newEvents(2)
		h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, evs)
		before := h.snapshot(tenantA, "order-1")

		_, calls, err := h.tryAppend(tenantA, "order-1", uuid.New(), eventvault.ExpectAny, evs)
		wantCode(t, err, eventvault.EERASED)
		if len(calls) != 0 {
			t.Errorf("Seal called with %v", calls)
		}
		h.unchanged(tenantA, before)
	})
}
