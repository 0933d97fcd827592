package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

// TestLargeEventsReachEveryReaderDespiteShortPages appends one batch of
// four events of 1.5 MiB each, more than eventvault.MaxPageBytes together,
// so that every store page is short of its limit before the end. A live
// subscriber (the shared reader's path), a subscriber from 0 (its own
// catch-up), paged ReadAll and paged ReadStream must each get all four, in
// order, on both stores: none may take a short page for the end.
func TestLargeEventsReachEveryReaderDespiteShortPages(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			t.Cleanup(func() { store.Close() })
			// A poll far longer than the test: only the append wakes the
			// shared reader, which must read on past a short page.
			feed := engine.NewFeed(store, time.Hour, nil)
			e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil, engine.WithFeed(feed))
			appendOne(t, e, "order-0", `{"n":0}`, "") // the tenant exists: global position 0
			live, err := e.Subscribe(t.Context(), acmeAll, engine.FromEnd, eventvault.FeedFilter{})
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			defer live.Close()

			const n = 4
			big := `"` + strings.Repeat("x", 3<<19) + `"` // 1.5 MiB of JSON string
			evs := make([]eventvault.NewEvent, n)
			for i := range evs {
				evs[i] = eventvault.NewEvent{ID: uuid.New(), Type: "Blob", Data: []byte(big)}
			}
			if _, err := e.Append(t.Context(), acme, "blob-1", eventvault.ExpectAny, evs); err != nil {
				t.Fatalf("append %d events of 1.5 MiB: %v", n, err)
			}

			collect := func(name string, s *engine.Subscription, first int64) {
				t.Helper()
				want := first
				for want < 1+n {
					got, err := s.Next(t.Context(), 10*time.Second)
					if err != nil || len(got) == 0 {
						t.Fatalf("%s: %v; got up to %d, want global positions through %d within 10 s", name, err, want-1, n)
					}
					for _, ev := range got {
						if ev.GlobalPosition != want || ev.Type != "Noted" && len(ev.Data) != len(big) {
							t.Fatalf("%s: event at %d (%d bytes), want %d", name, ev.GlobalPosition, len(ev.Data), want)
						}
						want++
					}
				}
			}
			collect("live subscriber", live, 1)
			from0, err := e.Subscribe(t.Context(), acmeAll, 0, eventvault.FeedFilter{})
			if err != nil {
				t.Fatalf("subscribe from 0: %v", err)
			}
			defer from0.Close()
			collect("subscriber from 0", from0, 0)

			var all []int64
			for from := int64(0); ; {
				page, err := e.ReadAll(t.Context(), acmeAll, from, 100)
				if err != nil {
					t.Fatalf("read all from %d: %v", from, err)
				}
				if len(page) == 0 {
					break
				}
				if len(page) == 100 {
					t.Fatal("a page of 100 events: there are 5")
				}
				for _, ev := range page {
					all = append(all, ev.GlobalPosition)
				}
				from = page[len(page)-1].GlobalPosition + 1
			}
			if len(all) != 1+n {
				t.Fatalf("paged read-all got global positions %v, want 0..%d", all, n)
			}

			first, err := e.ReadStream(t.Context(), acmeAll, "blob-1", eventvault.ReadOptions{Limit: 100})
			if err != nil {
				t.Fatalf("read stream: %v", err)
			}
			if len(first.Events) == 0 || len(first.Events) == n {
				t.Fatalf("first page of the stream holds %d events; want a short page (the bound is %d bytes)", len(first.Events), eventvault.MaxPageBytes)
			}
		})
	}
}
