package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/eventvault/eventvault"
)

// testReadStream reads one stream of ten events (positions 0..9) whose
// global positions differ from its stream positions. The read cases share
// one store: they only read.
func testReadStream(t *testing.T, open opener) {
	h := setup(t, open)
	key := h.streamKey(tenantA, "order-1")
	otherKey := h.streamKey(tenantA, "order-2")
	h.mustAppend(tenantA, "order-2", otherKey.ID, eventvault.ExpectAny, newEvents(2))
	h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectNoStream, newEvents(4))
	h.mustAppend(tenantA, "order-2", otherKey.ID, eventvault.ExpectAny, newEvents(1))
	h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(3), newEvents(3))
	h.mustAppend(tenantA, "order-1", key.ID, eventvault.ExpectPosition(6), newEvents(3))
	h.streamKey(tenantA, "order-3") // a key, no events

	cases := []struct {
		name string
		opts eventvault.ReadOptions
		want []int64
	}{
		{"forward from 0", eventvault.ReadOptions{From: 0, Limit: 100}, span(0, 10, 1)},
		{"forward from 0 with a limit", eventvault.ReadOptions{From: 0, Limit: 4}, span(0, 4, 1)},
		{"forward from the middle", eventvault.ReadOptions{From: 5, Limit: 3}, span(5, 3, 1)},
		{"forward up to the end", eventvault.ReadOptions{From: 8, Limit: 10}, span(8, 2, 1)},
		{"forward from the last", eventvault.ReadOptions{From: 9, Limit: 1}, span(9, 1, 1)},
		{"forward just past the end", eventvault.ReadOptions{From: 10, Limit: 10}, nil},
		{"forward far past the end", eventvault.ReadOptions{From: 1000, Limit: 10}, nil},
		{"backward from the end", eventvault.ReadOptions{From: -1, Limit: 100, Backward: true}, span(9, 10, -1)},
		{"backward from the end with a limit", eventvault.ReadOptions{From: -1, Limit: 3, Backward: true}, span(9, 3, -1)},
		{"backward from the middle", eventvault.ReadOptions{From: 5, Limit: 3, Backward: true}, span(5, 3, -1)},
		{"backward down to the start", eventvault.ReadOptions{From: 2, Limit: 10, Backward: true}, span(2, 3, -1)},
		{"backward from 0", eventvault.ReadOptions{From: 0, Limit: 5, Backward: true}, span(0, 1, -1)},
		{"backward from the last position", eventvault.ReadOptions{From: 9, Limit: 2, Backward: true}, span(9, 2, -1)},
		{"backward from past the end", eventvault.ReadOptions{From: 1000, Limit: 2, Backward: true}, span(9, 2, -1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.sub(t)
			page := h.readStream(tenantA, "order-1", tc.opts)
			if got := positionsOf(page.Events); !slices.Equal(got, tc.want) {
				t.Fatalf("positions %v, want %v", got, tc.want)
			}
			if page.Version != 9 {
				t.Errorf("StreamPage.Version = %d, want 9", page.Version)
			}
			wantKey(t, "StreamPage.Key", page.Key, key)
			h.checkEvents(tenantA, page.Events)
		})
	}

	invalid := []struct {
		name string
		opts eventvault.ReadOptions
	}{
		{"limit 0", eventvault.ReadOptions{From: 0, Limit: 0}},
		{"negative limit", eventvault.ReadOptions{From: 0, Limit: -1}},
		{"forward from -1", eventvault.ReadOptions{From: -1, Limit: 10}},
		{"backward from -2", eventvault.ReadOptions{From: -2, Limit: 10, Backward: true}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.store.ReadStream(t.Context(), tenantA, "order-1", tc.opts)
			wantCode(t, err, eventvault.EINVALID)
		})
	}

	notFound := []struct {
		name   string
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}{
		{"stream never seen", tenantA, "order-99"},
		{"stream with a key and no events", tenantA, "order-3"},
		{"stream of another tenant", tenantB, "order-1"},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) {
			for _, opts := range []eventvault.ReadOptions{{From: 0, Limit: 10}, {From: -1, Limit: 10, Backward: true}} {
				_, err := h.store.ReadStream(t.Context(), tc.tenant, tc.stream, opts)
				wantCode(t, err, eventvault.ENOTFOUND)
			}
		})
	}
}

// testReadAll reads a tenant's log of twelve events over three streams.
// The read cases share one store: they only read.
func testReadAll(t *testing.T, open opener) {
	h := setup(t, open)
	keys := map[eventvault.StreamName]eventvault.WrappedKey{}
	for _, s := range []eventvault.StreamName{"order-1", "order-2", "user-1", "unused-1"} {
		keys[s] = h.streamKey(tenantA, s)
	}
	for _, step := range []struct {
		stream eventvault.StreamName
		n      int
	}{{"order-1", 3}, {"order-2", 2}, {"order-1", 2}, {"user-1", 4}, {"order-2", 1}} {
		h.mustAppend(tenantA, step.stream, keys[step.stream].ID, eventvault.ExpectAny, newEvents(step.n))
	}
	const total = 12

	cases := []struct {
		name        string
		from        int64
		limit       int
		wantGlobals []int64
	}{
		{"everything", 0, 100, span(0, total, 1)},
		{"from 0 with a limit", 0, 5, span(0, 5, 1)},
		{"from the middle", 5, 3, span(5, 3, 1)},
		{"up to the end", 10, 10, span(10, 2, 1)},
		{"just past the end", total, 10, nil},
		{"far past the end", 1000, 10, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.sub(t)
			page := h.readAll(tenantA, tc.from, tc.limit)
			if got := globalsOf(page.Events); !slices.Equal(got, tc.wantGlobals) {
				t.Fatalf("global positions %v, want %v", got, tc.wantGlobals)
			}
			h.checkEvents(tenantA, page.Events)
			wantPageKeys(t, page, keys)
			// Next comes with every page, past the end too: read-all
			// refuses a from beyond it without another round trip.
			if page.Next != total {
				t.Fatalf("page.Next %d, want the next global position %d", page.Next, total)
			}
			if next, err := h.store.NextGlobalPosition(h.ctx, tenantA); err != nil || next != page.Next {
				t.Fatalf("NextGlobalPosition %d, %v; page.Next %d", next, err, page.Next)
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		h := h.sub(t)
		for _, limit := range []int{1, 5, 7} {
			got := h.allEvents(tenantA, limit)
			if g := globalsOf(got); !slices.Equal(g, span(0, total, 1)) {
				t.Errorf("paging with limit %d saw global positions %v, want 0..%d", limit, g, total-1)
			}
		}
	})

	t.Run("empty tenant", func(t *testing.T) {
		page, err := h.store.ReadAll(t.Context(), tenantB, 0, 10)
		if err != nil {
			t.Fatalf("ReadAll of a tenant without events: %v, want an empty page", err)
		}
		if len(page.Events) != 0 || len(page.Keys) != 0 || page.Next != 0 {
			t.Errorf("ReadAll of a tenant without events: %d events, %d keys, next %d", len(page.Events), len(page.Keys), page.Next)
		}
	})

	invalid := []struct {
		name  string
		from  int64
		limit int
	}{
		{"negative from", -1, 10},
		{"limit 0", 0, 0},
		{"negative limit", 0, -1},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.store.ReadAll(t.Context(), tenantA, tc.from, tc.limit)
			wantCode(t, err, eventvault.EINVALID)
		})
	}
}

// wantPageKeys checks that an AllPage holds the key of exactly the streams
// of its events.
func wantPageKeys(t *testing.T, page eventvault.AllPage, keys map[eventvault.StreamName]eventvault.WrappedKey) {
	t.Helper()
	streams := map[eventvault.StreamName]bool{}
	for _, ev := range page.Events {
		streams[ev.Stream] = true
	}
	for s := range streams {
		k, ok := page.Keys[s]
		if !ok {
			t.Errorf("AllPage.Keys has no key for stream %s of the page", s)
			continue
		}
		wantKey(t, "AllPage.Keys["+string(s)+"]", k, keys[s])
	}
	for s := range page.Keys {
		if !streams[s] {
			t.Errorf("AllPage.Keys holds the key of %s, which has no event in the page", s)
		}
	}
}

// testReadAllTo checks that ReadAllTo hands over what ReadAll returns, a
// page larger than a store's chunks included, and that a receiver's error
// stops the read and comes back as it is.
func testReadAllTo(t *testing.T, open opener) {
	h := setup(t, open)
	streams := []eventvault.StreamName{"order-1", "order-2", "user-1"}
	keys := map[eventvault.StreamName]eventvault.WrappedKey{}
	for _, s := range streams {
		keys[s] = h.streamKey(tenantA, s)
	}
	const total = 300
	for i := range total / 20 {
		s := streams[i%len(streams)]
		h.mustAppend(tenantA, s, keys[s].ID, eventvault.ExpectAny, newEvents(20))
	}

	for _, tc := range []struct {
		from  int64
		limit int
	}{{0, total}, {0, 1000}, {7, 130}, {250, 64}, {299, 10}, {total, 10}} {
		t.Run(fmt.Sprintf("from %d limit %d", tc.from, tc.limit), func(t *testing.T) {
			want, err := h.store.ReadAll(t.Context(), tenantA, tc.from, tc.limit)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			r := &checkingReceiver{limit: tc.limit}
			if err := h.store.ReadAllTo(t.Context(), tenantA, tc.from, tc.limit, r); err != nil {
				t.Fatalf("ReadAllTo: %v", err)
			}
			if r.problem != "" || !r.headed {
				t.Fatalf("ReadAllTo broke its contract: %q (Head called: %v)", r.problem, r.headed)
			}
			if !slices.EqualFunc(r.page.Events, want.Events, eventsEqual) {
				t.Fatalf("ReadAllTo handed over global positions %v, ReadAll returned %v", globalsOf(r.page.Events), globalsOf(want.Events))
			}
			h.checkEvents(tenantA, r.page.Events)
			wantPageKeys(t, r.page, keys)
			if r.page.Next != want.Next || r.page.Next != total {
				t.Fatalf("ReadAllTo's Next %d, ReadAll's %d, want %d", r.page.Next, want.Next, total)
			}
		})
	}

	// A receiver that takes the keys on request: a store hands them with
	// the head, or after the events if the receiver asks for them, and
	// then they are ReadAll's; never if it does not ask.
	for _, want := range []bool{true, false} {
		t.Run(fmt.Sprintf("keys on request, asked for: %v", want), func(t *testing.T) {
			r := &keysOnRequest{checkingReceiver: checkingReceiver{limit: total}, want: want}
			if err := h.store.ReadAllTo(t.Context(), tenantA, 0, total, r); err != nil {
				t.Fatalf("ReadAllTo: %v", err)
			}
			r.finish()
			if r.problem != "" || !r.headed {
				t.Fatalf("ReadAllTo broke its contract: %q (Head called: %v)", r.problem, r.headed)
			}
			if len(r.page.Events) != total {
				t.Fatalf("ReadAllTo handed over %d events, want %d", len(r.page.Events), total)
			}
			if r.keysInHead || want {
				wantPageKeys(t, r.page, keys)
			} else if r.page.Keys != nil {
				t.Fatalf("the page has keys %v, which the receiver did not ask for", r.page.Keys)
			}
		})
	}

	stop := errors.New("the receiver stops here")
	t.Run("an error of Head", func(t *testing.T) {
		r := &failingReceiver{failHead: stop}
		err := h.store.ReadAllTo(t.Context(), tenantA, 0, 100, r)
		if !errors.Is(err, stop) {
			t.Fatalf("ReadAllTo = %v, want the receiver's error", err)
		}
		if r.events != 0 {
			t.Fatalf("Events called with %d events after Head failed", r.events)
		}
	})
	t.Run("an error of Events", func(t *testing.T) {
		r := &failingReceiver{failEvents: stop}
		err := h.store.ReadAllTo(t.Context(), tenantA, 0, total, r)
		if !errors.Is(err, stop) {
			t.Fatalf("ReadAllTo = %v, want the receiver's error", err)
		}
		if r.calls != 1 {
			t.Fatalf("Events called %d times, want once: its error stops the read", r.calls)
		}
		// The store still serves after a read its receiver stopped.
		if page := h.readAll(tenantA, 0, 10); len(page.Events) != 10 {
			t.Fatalf("ReadAll after a stopped read: %d events, want 10", len(page.Events))
		}
	})
}

// failingReceiver fails its Head or its Events with the error given.
type failingReceiver struct {
	failHead, failEvents error
	calls, events        int
}

func (r *failingReceiver) Head(eventvault.AllPage) error { return r.failHead }

func (r *failingReceiver) Events(chunk []eventvault.StoredEvent) error {
	r.calls++
	r.events += len(chunk)
	return r.failEvents
}
