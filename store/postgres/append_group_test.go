package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// groupCounter is an Observer that counts group commits, errors and
// retries.
type groupCounter struct {
	groups, shared, appends, written atomic.Int64
	errors                           sync.Map // code -> *atomic.Int64
	retries                          sync.Map // reason -> *atomic.Int64
}

func (g *groupCounter) GroupCommitted(appends, _, written int) {
	g.groups.Add(1)
	g.appends.Add(int64(appends))
	g.written.Add(int64(written))
	if appends > 1 {
		g.shared.Add(1)
	}
}

func (g *groupCounter) StoreError(_, code string) {
	n, _ := g.errors.LoadOrStore(code, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (g *groupCounter) StoreRetry(_, reason string) {
	n, _ := g.retries.LoadOrStore(reason, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// count returns the count m holds under key.
func count(m *sync.Map, key string) int64 {
	if n, ok := m.Load(key); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// openObserved opens a second *DB on url with an observer.
func openObserved(t *testing.T, url string, opts postgres.Options) (*postgres.DB, *groupCounter) {
	t.Helper()
	obs := &groupCounter{}
	opts.Observer = obs
	db, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, obs
}

// createStreams creates n streams of tenantA ("order-0" …) with a key and
// one append each, so that the node's version cache holds the stream and
// the next appends take the fast (grouped) path.
func createStreams(t *testing.T, db *postgres.DB, n int) ([]eventvault.StreamName, map[eventvault.StreamName]uuid.UUID) {
	t.Helper()
	return makeStreams(t, db, tenantA, "order", n, 1)
}

// makeStreams creates n streams of tenant, named prefix-0 …, each with a
// key and events events appended.
func makeStreams(t *testing.T, db *postgres.DB, tenant eventvault.TenantID, prefix string, n, events int) ([]eventvault.StreamName, map[eventvault.StreamName]uuid.UUID) {
	t.Helper()
	streams := make([]eventvault.StreamName, n)
	keys := map[eventvault.StreamName]uuid.UUID{}
	for i := range streams {
		s := eventvault.StreamName(fmt.Sprintf("%s-%d", prefix, i))
		k, err := db.CreateStreamKey(t.Context(), tenant, s, wrappedKey(string(s)))
		if err != nil {
			t.Fatalf("CreateStreamKey %s: %v", s, err)
		}
		if _, err := db.Append(t.Context(), tenant, appendRequest(s, k.ID, events)); err != nil {
			t.Fatalf("first append to %s: %v", s, err)
		}
		streams[i], keys[s] = s, k.ID
	}
	return streams, keys
}

// TestGroupCommitSharesCommitsAndKeepsEachOutcome has concurrent appends to
// several streams of one tenant share group commits, while one append in
// every round expects a version its stream does not have: each of those
// fails alone with ECONFLICT, and every other append of its group lands.
func TestGroupCommitSharesCommitsAndKeepsEachOutcome(t *testing.T) {
	_, url := openDB(t)
	db, obs := openObserved(t, url, postgres.Options{})
	streams, keys := createStreams(t, db, 8)
	ctx := t.Context()
	const rounds = 30
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		acked     []uuid.UUID
		conflicts atomic.Int64
	)
	for w, s := range streams {
		wg.Go(func() {
			for r := range rounds {
				req := appendRequest(s, keys[s], 2)
				wrong := w == r%len(streams)
				if wrong {
					req.Expected = eventvault.ExpectPosition(1 << 40)
				}
				res, err := db.Append(ctx, tenantA, req)
				switch {
				case wrong && eventvault.ErrorCode(err) == eventvault.ECONFLICT:
					conflicts.Add(1)
				case wrong:
					t.Errorf("append to %s expecting a version far ahead = %+v, %v; want ECONFLICT", s, res, err)
				case err != nil:
					t.Errorf("append to %s: %v", s, err)
				default:
					mu.Lock()
					acked = append(acked, req.Events[0].ID, req.Events[1].ID)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if conflicts.Load() != rounds {
		t.Errorf("%d conflicts, want %d", conflicts.Load(), rounds)
	}
	if n, ok := obs.errors.Load(string(eventvault.ECONFLICT)); !ok || n.(*atomic.Int64).Load() != rounds {
		t.Errorf("the observer counted %v conflicts, want %d", n, rounds)
	}
	checkLog(t, db, acked)
	if obs.shared.Load() == 0 {
		t.Errorf("%d groups, none carried more than one append: nothing shared a commit", obs.groups.Load())
	}
	t.Logf("%d groups carried %d appends (%d of them written); %d shared", obs.groups.Load(), obs.appends.Load(), obs.written.Load(), obs.shared.Load())
}

// TestGroupCommitSurvivesKilledBackends terminates the store's PostgreSQL
// backends again and again while writers append batches through group
// commits. Afterwards every acknowledged event is there, every batch is
// there whole or not at all, and the log has no gap in global positions or
// in any stream's positions.
func TestGroupCommitSurvivesKilledBackends(t *testing.T) {
	_, url := openDB(t)
	db, obs := openObserved(t, url, postgres.Options{})
	streams, keys := createStreams(t, db, 8)
	ctx := t.Context()

	killer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect the killer: %v", err)
	}
	defer killer.Close(context.Background())

	const batch = 3
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   []uuid.UUID
		batches [][]uuid.UUID
		failed  atomic.Int64
	)
	stop := time.Now().Add(1500 * time.Millisecond)
	for _, s := range streams {
		wg.Go(func() {
			for time.Now().Before(stop) {
				req := appendRequest(s, keys[s], batch)
				ids := make([]uuid.UUID, batch)
				for i, e := range req.Events {
					ids[i] = e.ID
				}
				_, err := db.Append(ctx, tenantA, req)
				mu.Lock()
				batches = append(batches, ids)
				if err == nil {
					acked = append(acked, ids...)
				}
				mu.Unlock()
				if err != nil {
					if c := eventvault.ErrorCode(err); c != eventvault.EUNAVAILABLE && c != eventvault.EINTERNAL {
						t.Errorf("append to %s: %v; want success or EUNAVAILABLE while backends are killed", s, err)
						return
					}
					failed.Add(1)
				}
			}
		})
	}
	var kills int64
	for time.Now().Before(stop) {
		var n int64
		err := killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'eventvault' AND pid <> pg_backend_pid()`).Scan(&n)
		if err != nil {
			t.Fatalf("terminate backends: %v", err)
		}
		kills += n
		time.Sleep(40 * time.Millisecond)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d backends killed; %d appends acknowledged, %d failed; %d groups, %d shared", kills, len(acked)/batch, failed.Load(), obs.groups.Load(), obs.shared.Load())
	if kills == 0 || failed.Load() == 0 {
		t.Errorf("%d backends killed and %d appends failed: the test killed nothing during a commit", kills, failed.Load())
	}
	if obs.shared.Load() == 0 {
		t.Errorf("no group carried more than one append: the grouped path was not under test")
	}
	present := checkLog(t, db, acked)
	for _, ids := range batches {
		n := 0
		for _, id := range ids {
			if present[id] {
				n++
			}
		}
		if n != 0 && n != len(ids) {
			t.Errorf("batch %v is partly stored: %d of %d events", ids, n, len(ids))
		}
	}
}

// checkLog reads the tenant's whole log and checks that it holds every id
// of acked, that global positions run from 0 without a gap and that each
// stream's positions do too. It returns the ids present.
func checkLog(t *testing.T, db *postgres.DB, acked []uuid.UUID) map[uuid.UUID]bool {
	t.Helper()
	present := map[uuid.UUID]bool{}
	next := map[eventvault.StreamName]int64{}
	var from int64
	for {
		page, err := db.ReadAll(t.Context(), tenantA, from, 1000)
		if err != nil {
			t.Fatalf("ReadAll from %d: %v", from, err)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			if e.GlobalPosition != from {
				t.Fatalf("global position %d follows %d: a gap in the log", e.GlobalPosition, from-1)
			}
			if e.Position != next[e.Stream] {
				t.Fatalf("%s position %d follows %d: a gap in the stream", e.Stream, e.Position, next[e.Stream]-1)
			}
			next[e.Stream]++
			present[e.ID] = true
			from++
		}
	}
	lost := slices.DeleteFunc(slices.Clone(acked), func(id uuid.UUID) bool { return present[id] })
	if len(lost) > 0 {
		t.Errorf("%d acknowledged events are not in the log, e.g. %s", len(lost), lost[0])
	}
	return present
}

// TestAnEmptyAuditRecordFailsTheAppendOnEveryPath: an append whose audit
// record comes out empty is refused, with nothing written, whether it
// takes the locking path (a stream's first append on a node), the fast
// append or a group commit; none of them writes an empty record or skips
// it.
func TestAnEmptyAuditRecordFailsTheAppendOnEveryPath(t *testing.T) {
	_, url := openDB(t)
	ctx := t.Context()
	for _, opts := range []postgres.Options{{}, {NoGroupCommit: true}} {
		db, err := postgres.Open(ctx, url, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		stream := eventvault.StreamName(fmt.Sprintf("audited-%v", opts.NoGroupCommit))
		k, err := db.CreateStreamKey(ctx, tenantA, stream, wrappedKey(string(stream)))
		if err != nil {
			t.Fatalf("CreateStreamKey: %v", err)
		}
		empty := func(int64) ([]byte, error) { return []byte{}, nil }
		// The first append takes the locking path; after one that lands,
		// the node knows the stream and the next takes the fast append
		// (in a group, with group commit).
		req := appendRequest(stream, k.ID, 1)
		req.Audit = empty
		if _, err := db.Append(ctx, tenantA, req); eventvault.ErrorCode(err) != eventvault.EINTERNAL {
			t.Errorf("%+v, locking path: Append = %v; want EINTERNAL", opts, err)
		}
		if _, err := db.Append(ctx, tenantA, appendRequest(stream, k.ID, 1)); err != nil {
			t.Fatalf("%+v: Append: %v", opts, err)
		}
		req = appendRequest(stream, k.ID, 1)
		req.Audit = empty
		if _, err := db.Append(ctx, tenantA, req); eventvault.ErrorCode(err) != eventvault.EINTERNAL {
			t.Errorf("%+v, fast path: Append = %v; want EINTERNAL", opts, err)
		}
		page, err := db.ReadStream(ctx, tenantA, stream, eventvault.ReadOptions{From: 0, Limit: 10})
		if err != nil || len(page.Events) != 1 {
			t.Errorf("%+v: the stream holds %d events (%v); want only the one appended without a record", opts, len(page.Events), err)
		}
		if n, err := db.AuditSize(ctx, tenantA); err != nil || n != 0 {
			t.Errorf("%+v: audit log of %d records (%v); want none", opts, n, err)
		}
		db.Close()
	}
}

// TestAReadOnADeadPooledConnectionIsRunAgain: once the backends of the
// store's idle pooled connections are terminated (an administrator's
// pg_terminate_backend, a failover), reads still answer: the first
// statement on each dead connection fails with 57P01 and the read-only
// transaction runs again on another connection. A write is not run again:
// it may have committed before the end reached the client.
func TestAReadOnADeadPooledConnectionIsRunAgain(t *testing.T) {
	_, url := openDB(t)
	db, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	ctx := t.Context()
	streams, _ := makeStreams(t, db, tenantA, "alive", 4, 3)
	// Fill the pool with idle connections: four reads at once.
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			if _, err := db.ReadStream(ctx, tenantA, s, eventvault.ReadOptions{From: 0, Limit: 10}); err != nil {
				t.Errorf("read %s: %v", s, err)
			}
		})
	}
	wg.Wait()
	sctx, conn, done := pgtest.Connect(t, url)
	defer done()
	var killed int
	if err := conn.QueryRow(sctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'eventvault' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
		t.Fatalf("terminate the store's backends: %v", err)
	}
	if killed < 2 {
		t.Fatalf("%d of the store's backends terminated; want the pool's idle connections", killed)
	}
	for _, s := range streams {
		if page, err := db.ReadStream(ctx, tenantA, s, eventvault.ReadOptions{From: 0, Limit: 10}); err != nil || len(page.Events) != 3 {
			t.Errorf("read %s after its connection died: %d events, %v", s, len(page.Events), err)
		}
	}
	if page, err := db.ReadAll(ctx, tenantA, 0, 100); err != nil || len(page.Events) != 12 {
		t.Errorf("read all after the connections died: %d events, %v", len(page.Events), err)
	}
}
