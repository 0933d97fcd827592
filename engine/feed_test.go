package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
)

// countingStore counts the read-all queries that reach the store.
type countingStore struct {
	eventvault.Store
	readAlls atomic.Int64
}

func (c *countingStore) ReadAll(ctx context.Context, tenant eventvault.TenantID, from int64, limit int) (eventvault.AllPage, error) {
	c.readAlls.Add(1)
	return c.Store.ReadAll(ctx, tenant, from, limit)
}

// TestOneSharedReaderFansOutToEverySubscriber: 40 live subscribers and
// 30 appends; every subscriber gets every event once, in order, and the
// store is queried by the tenant's one shared reader, not once per
// subscriber per event (on both stores).
func TestOneSharedReaderFansOutToEverySubscriber(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			inner := b.open(t)
			t.Cleanup(func() { inner.Close() })
			store := &countingStore{Store: inner}
			// A poll far longer than the test: only appends wake the reader.
			feed := engine.NewFeed(store, time.Hour, nil)
			e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil, engine.WithFeed(feed))
			appendOne(t, e, "order-0", `{"n":0}`, "")
			const subscribers, appends = 40, 30
			subs := make([]*engine.Subscription, subscribers)
			for i := range subs {
				s, err := e.Subscribe(t.Context(), acmeAll, engine.FromEnd, eventvault.FeedFilter{})
				if err != nil {
					t.Fatalf("subscribe: %v", err)
				}
				defer s.Close()
				subs[i] = s
			}
			before := store.readAlls.Load()
			var wg sync.WaitGroup
			for i, s := range subs {
				wg.Go(func() {
					for want := int64(1); want <= appends; {
						evs, err := s.Next(t.Context(), 10*time.Second)
						if err != nil || len(evs) == 0 {
							t.Errorf("subscriber %d: %v (none within 10 s)", i, err)
							return
						}
						for _, ev := range evs {
							if ev.GlobalPosition != want {
								t.Errorf("subscriber %d: position %d, want %d", i, ev.GlobalPosition, want)
								return
							}
							want++
						}
					}
				})
			}
			for i := 1; i <= appends; i++ {
				appendOne(t, e, eventvault.StreamName(fmt.Sprintf("order-%d", i)), `{"n":1}`, "")
			}
			wg.Wait()
			// One read per wake-up at most, plus one that finds nothing
			// new: far below one per subscriber per event (1,200).
			if n := store.readAlls.Load() - before; n > 3*appends {
				t.Fatalf("%d read-all queries for %d subscribers and %d appends; want the shared reader's alone (<= %d)", n, subscribers, appends, 3*appends)
			}
		})
	}
}

var acmeAll = eventvault.Principal{Tenant: "acme", TokenID: "tok_feed", Rules: []eventvault.Rule{
	{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "*"},
}}

// TestFeedNeverOpensAPageReadBeforeAShred: a live page the shared reader
// read before a stream was shredded waits in a slow subscriber's buffer;
// once the shred commits, the subscriber gets the event as an erased
// envelope, never its data (reads fail closed), on both stores.
func TestFeedNeverOpensAPageReadBeforeAShred(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			t.Cleanup(func() { store.Close() })
			pseud, signer := erasureKeys(t, t.TempDir())
			keys := evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{})
			feed := engine.NewFeed(store, time.Hour, nil)
			e := engine.NewEvents(store, keys, nil, engine.WithFeed(feed))
			er := engine.NewErasure(store, feed.Evicting(keys), pseud, signer, nil, engine.WithPropagation(e, store))
			appendOne(t, e, "order-0", `{"n":0}`, "")
			sub, err := e.Subscribe(t.Context(), dpo, engine.FromEnd, eventvault.FeedFilter{})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			appendOne(t, e, "secret-1", `{"card":"4111-secret"}`, "")
			// The shared reader has read and buffered the page by now.
			deadline := time.Now().Add(5 * time.Second)
			for feed.SharedReads() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			if _, err := er.ShredStream(t.Context(), dpo, "secret-1", false); err != nil {
				t.Fatal(err)
			}
			evs, err := sub.Next(t.Context(), 5*time.Second)
			if err != nil || len(evs) == 0 {
				t.Fatalf("Next: %v, %v", evs, err)
			}
			if ev := evs[0]; ev.Stream != "secret-1" || !ev.Erased || ev.Data != nil {
				t.Fatalf("the event read before its shred came back %+v (%s); want an erased envelope", ev, ev.Data)
			}
		})
	}
}
