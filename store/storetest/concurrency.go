package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// concurrencyTimeout bounds each concurrency test: a store that deadlocks
// fails it rather than hanging the run.
const concurrencyTimeout = 60 * time.Second

func testConcurrency(t *testing.T, open opener) {
	t.Run("exact version writers on one stream", func(t *testing.T) { testExactVersionWriters(t, open) })
	t.Run("one winner per expected version", func(t *testing.T) { testOneWinner(t, open) })
	t.Run("reader never skips a global position", func(t *testing.T) { testGlobalReader(t, open) })
}

// expect returns the expected version that holds only at version v.
func expect(v int64) eventvault.ExpectedVersion {
	if v == eventvault.NoStream {
		return eventvault.ExpectNoStream
	}
	return eventvault.ExpectPosition(v)
}

// waitFor waits for wg, failing the test after the concurrency timeout.
func waitFor(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(concurrencyTimeout):
		t.Fatalf("%s did not finish within %v", what, concurrencyTimeout)
	}
}

// testExactVersionWriters has 16 writers append to one stream, each event
// with the exact version it read, retrying on ECONFLICT. Every position must
// be taken exactly once and every event land exactly once.
func testExactVersionWriters(t *testing.T, open opener) {
	h := setup(t, open)
	const writers, perWriter = 16, 10
	key := h.streamKey(tenantA, "order-1")
	deadline := time.Now().Add(concurrencyTimeout)

	var conflicts atomic.Int64
	ids := make([][]uuid.UUID, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range perWriter {
				ev := newEvents(1)
				for {
					if time.Now().After(deadline) {
						t.Errorf("writer %d: out of time after %d events", w, len(ids[w]))
						return
					}
					v := eventvault.NoStream
					page, err := h.store.ReadStream(h.ctx, tenantA, "order-1", eventvault.ReadOptions{From: -1, Limit: 1, Backward: true})
					switch {
					case err == nil:
						v = page.Version
					case eventvault.ErrorCode(err) != eventvault.ENOTFOUND:
						t.Errorf("writer %d: read version: %v", w, err)
						return
					}
					res, _, err := h.tryAppend(tenantA, "order-1", key.ID, expect(v), ev)
					if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("writer %d: append at version %d: %v", w, v, err)
						return
					}
					if res.Replayed || res.Events[0].Position != v+1 {
						t.Errorf("writer %d: append expecting version %d landed at %+v (replayed %v)", w, v, res.Events, res.Replayed)
					}
					ids[w] = append(ids[w], ev[0].ID)
					break
				}
			}
		})
	}
	waitFor(t, &wg, "the writers")
	if t.Failed() {
		return
	}
	t.Logf("%d writers appended %d events with %d conflicts", writers, writers*perWriter, conflicts.Load())

	const total = writers * perWriter
	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: total + 10})
	if got := positionsOf(page.Events); !slices.Equal(got, span(0, total, 1)) {
		t.Fatalf("stream positions %v, want 0..%d exactly once each", got, total-1)
	}
	if page.Version != total-1 {
		t.Errorf("StreamPage.Version = %d, want %d", page.Version, total-1)
	}
	h.checkEvents(tenantA, page.Events)
	if got := globalsOf(page.Events); !slices.Equal(got, span(0, total, 1)) {
		t.Errorf("global positions %v, want 0..%d", got, total-1)
	}

	// Each writer's events exactly once, in the writer's order.
	landed := map[uuid.UUID]int64{}
	for _, ev := range page.Events {
		if _, dup := landed[ev.ID]; dup {
			t.Errorf("event %s stored twice", ev.ID)
		}
		landed[ev.ID] = ev.Position
	}
	for w, wids := range ids {
		for i, id := range wids {
			p, ok := landed[id]
			if !ok {
				t.Errorf("writer %d's event %d (%s) is missing", w, i, id)
			}
			if i > 0 && p <= landed[wids[i-1]] {
				t.Errorf("writer %d's event %d landed at %d, before its previous one at %d", w, i, p, landed[wids[i-1]])
			}
		}
	}
}

// testOneWinner starts 16 writers at once with the same expected version,
// round after round: exactly one wins and 15 get ECONFLICT naming the
// winner's position as the actual version.
func testOneWinner(t *testing.T, open opener) {
	h := setup(t, open)
	const writers, rounds = 16, 6
	key := h.streamKey(tenantA, "order-1")

	winners := make([]uuid.UUID, rounds)
	for r := range rounds {
		v := int64(r) - 1
		evs := make([][]eventvault.ProposedEvent, writers)
		errs := make([]error, writers)
		results := make([]eventvault.AppendResult, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			evs[w] = newEvents(1)
			wg.Go(func() {
				<-start
				results[w], _, errs[w] = h.tryAppend(tenantA, "order-1", key.ID, expect(v), evs[w])
			})
		}
		close(start)
		waitFor(t, &wg, fmt.Sprintf("round %d", r))

		won, lost := 0, 0
		for w, err := range errs {
			switch {
			case err == nil:
				won++
				winners[r] = evs[w][0].ID
				if results[w].Events[0].Position != v+1 || results[w].Replayed {
					t.Errorf("round %d: winner landed at %+v (replayed %v), want position %d", r, results[w].Events, results[w].Replayed, v+1)
				}
			case eventvault.ErrorCode(err) == eventvault.ECONFLICT:
				lost++
				wantActualVersion(t, err, v+1)
			default:
				t.Errorf("round %d, writer %d: %v, want success or ECONFLICT", r, w, err)
			}
		}
		if won != 1 || lost != writers-1 {
			t.Fatalf("round %d expecting version %s: %d appends won and %d got ECONFLICT, want 1 and %d", r, expect(v), won, lost, writers-1)
		}
	}

	page := h.readStream(tenantA, "order-1", eventvault.ReadOptions{From: 0, Limit: 100})
	if got := positionsOf(page.Events); !slices.Equal(got, span(0, rounds, 1)) {
		t.Fatalf("stream positions %v, want 0..%d", got, rounds-1)
	}
	for r, ev := range page.Events {
		if ev.ID != winners[r] {
			t.Errorf("position %d holds %s, want round %d's winner %s", r, ev.ID, r, winners[r])
		}
	}
	h.checkEvents(tenantA, page.Events)
}

// testGlobalReader has 8 writers append to their own streams while a reader
// pages the tenant's log by global position (from = last seen + 1). The
// reader must see every global position exactly once, in order, with no
// gap: a store that let it see position N+1 before N committed would make
// it skip N for good.
func testGlobalReader(t *testing.T, open opener) {
	h := setup(t, open)
	const writers, batches = 8, 20
	deadline := time.Now().Add(concurrencyTimeout)

	total := 0
	for j := range batches {
		total += writers * (1 + j%3)
	}

	// Writers stop quietly once the reader has failed and cancelled them.
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	hw := *h
	hw.ctx = ctx
	var wg sync.WaitGroup
	for w := range writers {
		stream := eventvault.StreamName(fmt.Sprintf("writer-%d", w))
		key := h.streamKey(tenantA, stream)
		wg.Go(func() {
			for j := range batches {
				if time.Now().After(deadline) {
					t.Errorf("writer %d: out of time after %d batches", w, j)
					return
				}
				evs := newEvents(1 + j%3)
				_, _, err := hw.tryAppend(tenantA, stream, key.ID, eventvault.ExpectAny, evs)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					t.Errorf("writer %d, batch %d: %v", w, j, err)
					return
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	fail := func(format string, args ...any) {
		t.Helper()
		cancel()
		waitFor(t, &wg, "the writers")
		t.Fatalf(format, args...)
	}

	var seen []eventvault.StoredEvent
	next := int64(0)
	for len(seen) < total {
		if time.Now().After(deadline) {
			fail("reader saw %d of %d events within %v", len(seen), total, concurrencyTimeout)
		}
		finished := isClosed(writersDone)
		page, err := h.readPage(tenantA, next, 7)
		if err != nil {
			fail("ReadAll from %d: %v", next, err)
		}
		if len(page.Events) == 0 {
			if finished {
				fail("the writers are done and the log ends before global position %d, after %d of %d events", next, len(seen), total)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, ev := range page.Events {
			if ev.GlobalPosition != next {
				fail("reader asked from global position %d and got %d next (after seeing %d events)", next, ev.GlobalPosition, len(seen))
			}
			if _, ok := page.Keys[ev.Stream]; !ok {
				t.Errorf("page from %d has no key for stream %s", next, ev.Stream)
			}
			next++
			seen = append(seen, ev)
		}
	}
	waitFor(t, &wg, "the writers")
	if t.Failed() {
		return
	}

	if extra := h.readAll(tenantA, next, 10); len(extra.Events) != 0 {
		t.Errorf("after %d events the log has %d more", total, len(extra.Events))
	}
	h.checkEvents(tenantA, seen)
	ids := map[uuid.UUID]bool{}
	last := map[eventvault.StreamName]int64{}
	for _, ev := range seen {
		if ids[ev.ID] {
			t.Errorf("event %s seen twice", ev.ID)
		}
		ids[ev.ID] = true
		if p, ok := last[ev.Stream]; ok && ev.Position != p+1 {
			t.Errorf("stream %s: position %d follows %d in the log", ev.Stream, ev.Position, p)
		} else if !ok && ev.Position != 0 {
			t.Errorf("stream %s: first event in the log is at position %d", ev.Stream, ev.Position)
		}
		last[ev.Stream] = ev.Position
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
