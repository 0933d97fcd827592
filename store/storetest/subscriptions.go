package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// testSubscriptions fixes what the interface leaves open: a consumer's
// checkpoint is set when it is registered and moved only by an ack, and
// only forward; re-registering replaces the filter alone; a propagation
// is created once per request and updated atomically.
func testSubscriptions(t *testing.T, open opener) {
	t.Run("consumers: register, replace the filter, ack forward only, remove", func(t *testing.T) {
		h := setup(t, open)
		at := time.Now().UTC().Truncate(time.Microsecond)
		c := eventvault.Consumer{Tenant: tenantA, Name: "orders-view", Filter: eventvault.FeedFilter{Categories: []string{"order"}}, Checkpoint: 5, CreatedAt: at, CreatedBy: "tok_a"}
		got, created, err := h.store.PutConsumer(h.ctx, c)
		if err != nil || !created || got.Checkpoint != 5 || !got.CreatedAt.Equal(at) || got.CreatedBy != "tok_a" {
			t.Fatalf("PutConsumer new = %+v, %v, %v", got, created, err)
		}
		c2 := c
		c2.Filter, c2.Checkpoint, c2.CreatedBy = eventvault.FeedFilter{Types: []string{"OrderPlaced"}}, 0, "tok_b"
		got, created, err = h.store.PutConsumer(h.ctx, c2)
		if err != nil || created || got.Checkpoint != 5 || got.CreatedBy != "tok_a" || !slices.Equal(got.Filter.Types, []string{"OrderPlaced"}) || len(got.Filter.Categories) != 0 {
			t.Fatalf("PutConsumer again = %+v, %v, %v; want the filter replaced, checkpoint and creator kept", got, created, err)
		}
		// Replaced whole, whatever the old and new filters hold: each list
		// shorter, longer or of other values than before. The caller's
		// filter is left as it gave it.
		for _, f := range []eventvault.FeedFilter{
			{Categories: []string{"invoice"}, Types: []string{"A", "B"}},
			{Categories: []string{"order"}, Types: []string{"C", "D", "E"}},
			{Categories: []string{"customer", "order"}, Types: []string{"F"}},
			{Categories: []string{"payment"}},
		} {
			want := eventvault.FeedFilter{Categories: slices.Clone(f.Categories), Types: slices.Clone(f.Types)}
			c3 := c
			c3.Filter = f
			got, _, err := h.store.PutConsumer(h.ctx, c3)
			if err != nil || !slices.Equal(got.Filter.Categories, want.Categories) || !slices.Equal(got.Filter.Types, want.Types) ||
				!slices.Equal(f.Categories, want.Categories) || !slices.Equal(f.Types, want.Types) {
				t.Fatalf("PutConsumer with %+v = %+v, %v; the caller's filter now %+v", want, got.Filter, err, f)
			}
			if again, err := h.store.Consumer(h.ctx, tenantA, c.Name); err != nil || !slices.Equal(again.Filter.Categories, want.Categories) || !slices.Equal(again.Filter.Types, want.Types) {
				t.Fatalf("Consumer after PutConsumer with %+v = %+v, %v", want, again.Filter, err)
			}
		}
		got, err = h.store.AckConsumer(h.ctx, tenantA, c.Name, 9, at.Add(time.Second))
		if err != nil || got.Checkpoint != 9 || !got.AckedAt.Equal(at.Add(time.Second)) {
			t.Fatalf("AckConsumer 9 = %+v, %v", got, err)
		}
		got, err = h.store.AckConsumer(h.ctx, tenantA, c.Name, 7, at.Add(2*time.Second))
		if err != nil || got.Checkpoint != 9 || !got.AckedAt.Equal(at.Add(time.Second)) {
			t.Fatalf("a stale AckConsumer 7 = %+v, %v; want the checkpoint kept at 9", got, err)
		}
		if _, err := h.store.AckConsumer(h.ctx, tenantB, c.Name, 20, at); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("AckConsumer from another tenant: %v, want ENOTFOUND", err)
		}
		if _, err := h.store.Consumer(h.ctx, tenantB, c.Name); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("Consumer from another tenant: %v, want ENOTFOUND", err)
		}
		if list, err := h.store.Consumers(h.ctx, tenantB); err != nil || len(list) != 0 {
			t.Fatalf("Consumers of another tenant = %v, %v", list, err)
		}
		if _, _, err := h.store.PutConsumer(h.ctx, eventvault.Consumer{Tenant: tenantA, Name: "a-first", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		list, err := h.store.Consumers(h.ctx, tenantA)
		if err != nil || len(list) != 2 || list[0].Name != "a-first" || list[1].Name != c.Name {
			t.Fatalf("Consumers = %+v, %v; want both by name", list, err)
		}
		if err := h.store.DeleteConsumer(h.ctx, tenantB, c.Name); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("DeleteConsumer from another tenant: %v, want ENOTFOUND", err)
		}
		if err := h.store.DeleteConsumer(h.ctx, tenantA, c.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.Consumer(h.ctx, tenantA, c.Name); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("Consumer after delete: %v", err)
		}
		if _, _, err := h.store.PutConsumer(h.ctx, eventvault.Consumer{Tenant: tenantA, Name: "bad/name"}); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("PutConsumer with a bad name: %v, want EINVALID", err)
		}
	})
	t.Run("propagations: created once, updated atomically, open until done", func(t *testing.T) {
		h := setup(t, open)
		id := uuid.New()
		p := eventvault.Propagation{Tenant: tenantA, RequestID: id, TombstonePosition: 12, Streams: []eventvault.StreamName{"user-1"},
			Pending: []string{"a", "b", "c", "d"}, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		got, err := h.store.CreatePropagation(h.ctx, p)
		if err != nil || got.TombstonePosition != 12 || len(got.Pending) != 4 {
			t.Fatalf("CreatePropagation = %+v, %v", got, err)
		}
		again := p
		again.TombstonePosition = 99
		if got, err := h.store.CreatePropagation(h.ctx, again); err != nil || got.TombstonePosition != 12 {
			t.Fatalf("CreatePropagation again = %+v, %v; want the first kept", got, err)
		}
		if _, err := h.store.Propagation(h.ctx, tenantB, id); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("Propagation from another tenant: %v", err)
		}
		// Four concurrent updates each take one pending consumer: none is
		// lost.
		var wg sync.WaitGroup
		for _, name := range p.Pending {
			wg.Go(func() {
				_, err := h.store.UpdatePropagation(h.ctx, tenantA, id, func(p *eventvault.Propagation) error {
					p.Pending = slices.DeleteFunc(p.Pending, func(s string) bool { return s == name })
					p.Acks = append(p.Acks, eventvault.ConsumerAck{Consumer: name, Checkpoint: 13, AcknowledgedAt: time.Now().UTC()})
					p.Done = len(p.Pending) == 0
					return nil
				})
				if err != nil {
					t.Errorf("UpdatePropagation %s: %v", name, err)
				}
			})
		}
		wg.Wait()
		got, err = h.store.Propagation(h.ctx, tenantA, id)
		if err != nil || len(got.Pending) != 0 || len(got.Acks) != 4 || !got.Done {
			t.Fatalf("after concurrent updates: %+v, %v; want 4 acks, none pending, done", got, err)
		}
		if open, err := h.store.OpenPropagations(h.ctx, tenantA); err != nil || len(open) != 0 {
			t.Fatalf("OpenPropagations after done = %+v, %v", open, err)
		}
		refuse := errors.New("refused")
		if _, err := h.store.UpdatePropagation(h.ctx, tenantA, id, func(*eventvault.Propagation) error { return refuse }); !errors.Is(err, refuse) {
			t.Fatalf("UpdatePropagation whose change fails: %v", err)
		}
		if _, err := h.store.UpdatePropagation(h.ctx, tenantA, uuid.New(), func(*eventvault.Propagation) error { return nil }); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("UpdatePropagation of none: %v", err)
		}
		second := eventvault.Propagation{Tenant: tenantA, RequestID: uuid.New(), TombstonePosition: 3, Pending: []string{"x"}}
		if _, err := h.store.CreatePropagation(h.ctx, second); err != nil {
			t.Fatal(err)
		}
		if open, err := h.store.OpenPropagations(h.ctx, tenantA); err != nil || len(open) != 1 || open[0].RequestID != second.RequestID {
			t.Fatalf("OpenPropagations = %+v, %v", open, err)
		}
	})
}
