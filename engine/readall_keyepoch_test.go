package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// keysAsked wraps a real store and counts the read-all pages whose
// receiver asked for the keys after the events (AllPageKeysOnRequest), and
// those it did not ask for.
type keysAsked struct {
	eventvault.Store
	asked, skipped atomic.Int64
}

func (s *keysAsked) ReadAllTo(ctx context.Context, tenant eventvault.TenantID, from int64, limit int, r eventvault.AllPageReceiver) error {
	kr, ok := r.(eventvault.AllPageKeysOnRequest)
	if !ok {
		return s.Store.ReadAllTo(ctx, tenant, from, limit, r)
	}
	return s.Store.ReadAllTo(ctx, tenant, from, limit, &countingKeys{AllPageKeysOnRequest: kr, s: s})
}

type countingKeys struct {
	eventvault.AllPageKeysOnRequest
	s *keysAsked
}

func (c *countingKeys) WantsKeys() bool {
	want := c.AllPageKeysOnRequest.WantsKeys()
	if want {
		c.s.asked.Add(1)
	} else {
		c.s.skipped.Add(1)
	}
	return want
}

// TestReadAllTakesKeysOnRequestOnlyAtTheEpochItChecked reads the log of a
// tenant page after page on one node, with the store handing the head
// without the keys: a page needs the keys only while a stream's cipher has
// not been checked against its key row at the page's key epoch. Then it
// plays what would make a cipher checked earlier wrong, with the node's
// cache warm and every cipher checked: another node shreds a stream (this
// node hears nothing of it), and an attacker with the database moves one
// stream's key row onto another, past the triggers that guard key rows.
// Each moves the epoch, so the next page
// reads the keys again: the shredded stream's events are erased envelopes,
// and the moved row is an integrity error, never the events opened with
// the cipher the cache still holds.
func TestReadAllTakesKeysOnRequestOnlyAtTheEpochItChecked(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	db := openPostgresAt(t, url)
	spy := &keysAsked{Store: db}
	root := newRoot(t)
	pseud, signer := erasureKeys(t, t.TempDir())
	node := engine.NewEvents(spy, evcrypto.NewKeyring(root, db, evcrypto.KeyringOptions{}), nil)
	otherKeys := evcrypto.NewKeyring(root, db, evcrypto.KeyringOptions{})
	other := engine.NewEvents(db, otherKeys, nil)
	otherErasure := engine.NewErasure(db, otherKeys, pseud, signer, nil)
	const total, streams = 200, 4
	for i := range total / 10 {
		evs := make([]eventvault.NewEvent, 10)
		for j := range evs {
			evs[j] = eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"n":%d}`, i*10+j)}
		}
		if _, err := other.Append(ctx, acme, eventvault.StreamName(fmt.Sprintf("order-%d", i%streams)), eventvault.ExpectAny, evs); err != nil {
			t.Fatal(err)
		}
	}
	// read reads the whole log in pages of 64 and reports how many pages
	// asked for the keys and how many did not.
	read := func(t *testing.T, erased eventvault.StreamName) (asked, skipped int64) {
		t.Helper()
		a0, s0 := spy.asked.Load(), spy.skipped.Load()
		for from := int64(0); from < total; from += 64 {
			page, err := node.ReadAll(ctx, acme, from, int(min(64, total-from)))
			if err != nil {
				t.Fatalf("ReadAll from %d: %v", from, err)
			}
			for i, ev := range page {
				g := from + int64(i)
				if ev.Stream == erased {
					if !ev.Erased || ev.Data != nil {
						t.Fatalf("event %d of shredded %s: erased %v, data %s", g, erased, ev.Erased, ev.Data)
					}
					continue
				}
				if want := fmt.Sprintf(`{"n":%d}`, g); ev.GlobalPosition != g || ev.Erased || string(ev.Data) != want {
					t.Fatalf("event %d: global position %d, erased %v, data %s; want %s", g, ev.GlobalPosition, ev.Erased, ev.Data, want)
				}
			}
		}
		return spy.asked.Load() - a0, spy.skipped.Load() - s0
	}
	const pages = (total + 63) / 64
	// The first page holds every stream: once it checked their key rows,
	// the other pages at the same epoch need none.
	if asked, skipped := read(t, ""); asked != 1 || skipped != pages-1 {
		t.Fatalf("a cold node: %d of %d pages asked for the keys, %d did not; want the first only", asked, pages, skipped)
	}
	if asked, skipped := read(t, ""); asked != 0 || skipped != pages {
		t.Fatalf("a warm node at the same epoch: %d pages asked for the keys, %d did not; want none to ask", asked, skipped)
	}
	// An append and a new stream leave the epoch where it was.
	if _, err := other.Append(ctx, acme, "invoice-1", eventvault.ExpectAny, []eventvault.NewEvent{{ID: uuid.New(), Type: "Noted", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if asked, _ := read(t, ""); asked != 0 {
		t.Fatalf("after an append to a new stream (not in the pages read), %d pages asked for the keys; want none", asked)
	}

	t.Run("a stream shredded on another node", func(t *testing.T) {
		if _, err := otherErasure.ShredStream(ctx, dpo, "order-2", false); err != nil {
			t.Fatal(err)
		}
		if asked, _ := read(t, "order-2"); asked == 0 {
			t.Fatal("no page asked for the keys after another node shredded a stream")
		}
		if asked, _ := read(t, "order-2"); asked != 0 {
			t.Fatalf("%d pages asked for the keys at the new epoch, once checked; want none", asked)
		}
	})

	t.Run("a key row moved onto another stream in the database", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		// The guards on key rows are triggers, which a session with
		// session_replication_role = replica skips; the epoch's fire
		// always.
		if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
		tag, err := conn.Exec(ctx, `UPDATE streams AS s SET key_id = o.key_id, key_version = o.key_version, kek_version = o.kek_version, wrapped_key = o.wrapped_key
			FROM streams AS o WHERE s.tenant_id = $1 AND s.name = 'order-1' AND o.tenant_id = $1 AND o.name = 'order-3'`, string(acme.Tenant))
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("move the key row: %v, %v", tag, err)
		}
		page, err := node.ReadAll(ctx, acme, 0, 64)
		if eventvault.ErrorCode(err) != eventvault.EINTERNAL {
			t.Fatalf("ReadAll after order-3's key row was put on order-1: %d events, %v (%s); want EINTERNAL", len(page), err, eventvault.ErrorCode(err))
		}
		if !strings.Contains(err.Error(), "order-1") {
			t.Fatalf("the error does not name the stream whose key row fails: %v", err)
		}
	})
}
