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
