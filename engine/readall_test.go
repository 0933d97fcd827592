package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestReadAllOpensPagesAsTheyArrive reads pages larger than the chunks a
// store hands over (ReadAllTo) on a node whose key cache is cold (every
// chunk waits for its keys until the read ends) and on one whose cache is
// warm (chunks open while the store still receives), with a shredded
// stream among the others: both see every event, in order, with its data,
// and the shredded stream's events as erased envelopes.
func TestReadAllOpensPagesAsTheyArrive(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			store := b.open(t)
			t.Cleanup(func() { store.Close() })
			pseud, signer := erasureKeys(t, t.TempDir())
			root := newRoot(t)
			keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
			e := engine.NewEvents(store, keys, nil)
			er := engine.NewErasure(store, keys, pseud, signer, nil)
			const total, streams = 400, 7
			for i := range total / 20 {
				stream := eventvault.StreamName(fmt.Sprintf("order-%d", i%streams))
				evs := make([]eventvault.NewEvent, 20)
				for j := range evs {
					evs[j] = eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"n":%d}`, i*20+j)}
				}
				if _, err := e.Append(ctx, acme, stream, eventvault.ExpectAny, evs); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := er.ShredStream(ctx, dpo, "order-3", false); err != nil {
				t.Fatal(err)
			}
			check := func(t *testing.T, node *engine.Events, from int64, limit int) {
				t.Helper()
				all, err := node.ReadAll(ctx, acme, from, limit)
				if err != nil {
					t.Fatalf("ReadAll from %d limit %d: %v", from, limit, err)
				}
				if want := min(limit, total-int(from)); len(all) != want {
					t.Fatalf("ReadAll from %d limit %d: %d events, want %d", from, limit, len(all), want)
				}
				for i, ev := range all {
					g := from + int64(i)
					if ev.GlobalPosition != g {
						t.Fatalf("event %d of the page has global position %d, want %d", i, ev.GlobalPosition, g)
					}
					if ev.Stream == "order-3" {
						if !ev.Erased || ev.Data != nil {
							t.Fatalf("event %d of shredded order-3: erased %v, data %s", g, ev.Erased, ev.Data)
						}
						continue
					}
					if want := fmt.Sprintf(`{"n":%d}`, g); ev.Erased || string(ev.Data) != want {
						t.Fatalf("event %d: erased %v, data %s, want %s", g, ev.Erased, ev.Data, want)
					}
				}
			}
			for _, tc := range []struct {
				from  int64
				limit int
			}{{0, total}, {0, engine.MaxReadLimit}, {13, 250}, {390, 50}} {
				t.Run(fmt.Sprintf("from %d limit %d", tc.from, tc.limit), func(t *testing.T) {
					cold := engine.NewEvents(store, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), nil)
					check(t, cold, tc.from, tc.limit)
					check(t, cold, tc.from, tc.limit) // warm now
					check(t, e, tc.from, tc.limit)
				})
			}
			t.Run("from past the end", func(t *testing.T) {
				_, err := e.ReadAll(ctx, acme, total+1, 10)
				if code := eventvault.ErrorCode(err); code != eventvault.EINVALID || !strings.Contains(err.Error(), fmt.Sprint(total)) {
					t.Fatalf("ReadAll past the end: %v (%s), want %s naming the head %d", err, code, eventvault.EINVALID, total)
				}
				if all, err := e.ReadAll(ctx, acme, total, 10); err != nil || len(all) != 0 {
					t.Fatalf("ReadAll at the end: %d events, %v; want an empty page", len(all), err)
				}
			})
		})
	}
}

// TestReadAllFailsWithTheFirstBadEvent tampers with two events of a page
// far apart, so that they fall in different chunks opened side by side:
// the read fails with the first one's error, as a loop over the page
// would, and never returns a page.
func TestReadAllFailsWithTheFirstBadEvent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil)
	ids := map[int64]uuid.UUID{}
	for i := range 300 / 50 {
		evs := make([]eventvault.NewEvent, 50)
		for j := range evs {
			evs[j] = eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(`{}`)}
		}
		res, err := e.Append(ctx, acme, eventvault.StreamName(fmt.Sprintf("order-%d", i%2)), eventvault.ExpectAny, evs)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res.Events {
			ids[r.GlobalPosition] = evs[j].ID
		}
	}
	// Warm the key cache, so that the chunks open while the store reads.
	if _, err := e.ReadAll(ctx, acme, 0, 300); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, url, `UPDATE events SET type = 'Tampered' WHERE global_position IN (70, 260)`)
	for range 5 {
		start := time.Now()
		all, err := e.ReadAll(ctx, acme, 0, 300)
		if err == nil {
			t.Fatalf("ReadAll of a tampered page returned %d events", len(all))
		}
		if code := eventvault.ErrorCode(err); code != eventvault.EINTERNAL || !strings.Contains(err.Error(), ids[70].String()) {
			t.Fatalf("ReadAll of a tampered page: %v (%s), want %s naming event %s (global position 70)", err, code, eventvault.EINTERNAL, ids[70])
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("ReadAll of a tampered page took over 10 s")
		}
	}
}
