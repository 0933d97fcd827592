package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// switchedStore is a store whose database an operator switches under a
// running node, as a failover to a standby or a restore does.
type switchedStore struct {
	mu sync.RWMutex
	eventvault.Store
}

func (s *switchedStore) to(db eventvault.Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Store = db
}

func (s *switchedStore) ReadAllTo(ctx context.Context, tenant eventvault.TenantID, from int64, limit int, r eventvault.AllPageReceiver) error {
	s.mu.RLock()
	db := s.Store
	s.mu.RUnlock()
	return db.ReadAllTo(ctx, tenant, from, limit, r)
}

// epochRig is a tenant's log of 40 events over streams order-0 to order-3,
// a node that reads it all (its cache warm across reads, and deaf to
// other nodes), and what another node does to it.
type epochRig struct {
	url   string
	store *switchedStore
	node  *engine.Events
	root  *countingRoot
	pseud *pseudonym.Key
	sign  *dsse.SigningKey
}

const epochRigEvents = 40

func newEpochRig(t *testing.T) *epochRig {
	t.Helper()
	url := pgtest.URL(t)
	db := openPostgresAt(t, url)
	r := &epochRig{url: url, store: &switchedStore{Store: db}, root: newRoot(t)}
	r.pseud, r.sign = erasureKeys(t, t.TempDir())
	r.node = engine.NewEvents(r.store, evcrypto.NewKeyring(r.root, r.store, evcrypto.KeyringOptions{}), nil)
	other := engine.NewEvents(db, evcrypto.NewKeyring(r.root, db, evcrypto.KeyringOptions{}), nil)
	for i := range epochRigEvents {
		ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
		if _, err := other.Append(t.Context(), acme, eventvault.StreamName(fmt.Sprintf("order-%d", i%4)), eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// shred shreds a stream through another node on db.
func (r *epochRig) shred(t *testing.T, db *postgres.DB, stream eventvault.StreamName) {
	t.Helper()
	erasure := engine.NewErasure(db, evcrypto.NewKeyring(r.root, db, evcrypto.KeyringOptions{}), r.pseud, r.sign, nil)
	if _, err := erasure.ShredStream(t.Context(), dpo, stream, false); err != nil {
		t.Fatalf("shred %s: %v", stream, err)
	}
}

// opened reads the whole log on n in pages of 16 and counts, per stream,
// the events it handed over in clear.
func opened(t *testing.T, n *engine.Events) map[eventvault.StreamName]int {
	t.Helper()
	got := map[eventvault.StreamName]int{}
	for from := int64(0); from < epochRigEvents; from += 16 {
		page, err := n.ReadAll(t.Context(), acme, from, 16)
		if err != nil {
			t.Fatalf("ReadAll from %d: %v", from, err)
		}
		for _, ev := range page {
			if !ev.Erased && ev.Data != nil {
				got[ev.Stream]++
			}
		}
	}
	return got
}

// sameAsACold node checks that the warm node opens what a node with an
// empty cache on the same database opens.
func (r *epochRig) sameAsACold(t *testing.T, what string) {
	t.Helper()
	cold := engine.NewEvents(r.store, evcrypto.NewKeyring(r.root, r.store, evcrypto.KeyringOptions{}), nil)
	want, got := opened(t, cold), opened(t, r.node)
	if !maps.Equal(got, want) {
		t.Fatalf("%s: the warm node opened %v, a cold node %v: the warm node trusted ciphers checked on key rows that are no more", what, got, want)
	}
}

// TestAWarmNodeTrustsNoKeyEpochOfAnotherHistory plays what would make the
// stream key epoch that a node checked its ciphers at come back with other
// key rows behind it (migration 0013): a failover to a standby that lacks
// the old primary's last shred, then a shred on the new primary; the epoch
// row deleted by hand, then a shred; an epoch wound back, or the streams
// table truncated, in a session that skips triggers. In each, a node whose
// cache holds every cipher checked opens exactly what a node with an empty
// cache opens: never a stream shredded since.
func TestAWarmNodeTrustsNoKeyEpochOfAnotherHistory(t *testing.T) {
	t.Run("a failover to a standby without the last shred", func(t *testing.T) {
		r := newEpochRig(t)
		live := r.store.Store.(*postgres.DB)
		r.shred(t, live, "order-0")
		dump := filepath.Join(t.TempDir(), "standby.sql")
		if out, err := exec.Command(pgTool(t, "pg_dump"), "--no-owner", "-d", r.url, "-f", dump).CombinedOutput(); err != nil {
			t.Fatalf("pg_dump: %v\n%s", err, out)
		}
		r.shred(t, live, "order-3") // committed on the old primary only
		opened(t, r.node)
		if got := opened(t, r.node); got["order-3"] != 0 || got["order-1"] != 10 {
			t.Fatalf("before the failover the node opened %v", got)
		}
		promoted := restore(t, dump)
		r.store.to(promoted)
		r.shred(t, promoted, "order-2")
		r.sameAsACold(t, "after a failover and a shred on the new primary")
		if got := opened(t, r.node); got["order-2"] != 0 || got["order-3"] != 10 || got["order-1"] != 10 {
			t.Fatalf("on the new primary the node opened %v; want order-1 and order-3 (whose shred was lost), not order-2", got)
		}
	})

	t.Run("the epoch row deleted by hand, then a shred", func(t *testing.T) {
		r := newEpochRig(t)
		r.shred(t, r.store.Store.(*postgres.DB), "order-0")
		opened(t, r.node)
		if err := pgtest.Session(t, r.url, `DELETE FROM stream_key_epochs`); err != nil {
			t.Fatal(err)
		}
		r.shred(t, r.store.Store.(*postgres.DB), "order-2")
		r.sameAsACold(t, "after a shred that wrote the row again")
		if err := pgtest.Session(t, r.url, `DELETE FROM stream_key_epochs`); err != nil {
			t.Fatal(err)
		}
		r.sameAsACold(t, "with no epoch row")
		r.shred(t, r.store.Store.(*postgres.DB), "order-1")
		r.sameAsACold(t, "after a shred with no epoch row before it")
	})

	t.Run("the epoch wound back in a session that skips triggers", func(t *testing.T) {
		r := newEpochRig(t)
		r.shred(t, r.store.Store.(*postgres.DB), "order-0")
		r.shred(t, r.store.Store.(*postgres.DB), "order-3")
		opened(t, r.node)
		err := pgtest.Session(t, r.url, `SET session_replication_role = replica`, `UPDATE stream_key_epochs SET epoch = epoch - 1`)
		wantInsufficientPrivilege(t, "wind the epoch back under session_replication_role = replica", err)
		r.shred(t, r.store.Store.(*postgres.DB), "order-2")
		r.sameAsACold(t, "after a shred")
	})

	t.Run("the streams table truncated", func(t *testing.T) {
		r := newEpochRig(t)
		opened(t, r.node)
		for _, sqls := range [][]string{
			{`TRUNCATE streams`},
			{`SET session_replication_role = replica`, `TRUNCATE streams`},
		} {
			wantInsufficientPrivilege(t, fmt.Sprint(sqls), pgtest.Session(t, r.url, sqls...))
		}
		r.sameAsACold(t, "after the truncations were refused")
		if got := opened(t, r.node); len(got) != 4 {
			t.Fatalf("after the truncations were refused the node opened %v; want all four streams", got)
		}
	})
}

func wantInsufficientPrivilege(t *testing.T, what string, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("%s: err = %v, want insufficient_privilege (42501)", what, err)
	}
}
