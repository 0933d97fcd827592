package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
)

// TestFastAppendLosesAnIDRace pins the one case the fast append cannot see
// in its own snapshot: node a's cached row of order-1 holds, but while its
// statement waits for the stream's lock, node b appends one of the batch's
// ids to order-2. The unique index refuses a's insert, a falls back to the
// locking path, and the answer is the ECONFLICT a sequential reuse gets
// (which does not name order-2), with nothing of a's batch written.
// It runs with group commit (the fast append carried by a group of one)
// and without.
func TestFastAppendLosesAnIDRace(t *testing.T) {
	t.Run("grouped", func(t *testing.T) { testFastAppendLosesAnIDRace(t, postgres.Options{}) })
	t.Run("alone", func(t *testing.T) { testFastAppendLosesAnIDRace(t, postgres.Options{NoGroupCommit: true}) })
}

func testFastAppendLosesAnIDRace(t *testing.T, opts postgres.Options) {
	_, url := openDB(t)
	ctx := t.Context()
	a, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open a second node: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	keys := map[eventvault.StreamName]eventvault.WrappedKey{}
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		k, err := a.CreateStreamKey(ctx, tenantA, s, wrappedKey(string(s)))
		if err != nil {
			t.Fatalf("CreateStreamKey %s: %v", s, err)
		}
		keys[s] = k
	}
	if _, err := a.Append(ctx, tenantA, appendRequest("order-1", keys["order-1"].ID, 1)); err != nil {
		t.Fatalf("first append: %v", err)
	}

	// Hold order-1's row, so that a's fast append waits for it.
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatalf("BEGIN: %v", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM streams WHERE tenant_id = $1 AND name = 'order-1' FOR UPDATE`, string(tenantA)); err != nil {
		t.Fatalf("lock order-1: %v", err)
	}

	req := appendRequest("order-1", keys["order-1"].ID, 1)
	req.Expected = eventvault.ExpectPosition(0)
	var seals []int64
	seal := req.Seal
	req.Seal = func(first int64) ([][]byte, error) { seals = append(seals, first); return seal(first) }
	type outcome struct {
		res eventvault.AppendResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := a.Append(ctx, tenantA, req)
		done <- outcome{res, err}
	}()
	waitForLockWait(t, holder.Config().ConnString(), "WITH ")

	other := appendRequest("order-2", keys["order-2"].ID, 1)
	other.Events[0].ID = req.Events[0].ID
	if _, err := b.Append(ctx, tenantA, other); err != nil {
		t.Fatalf("append of the same id to order-2 on node b: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("release order-1: %v", err)
	}

	var got outcome
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the fast append did not finish once the lock was released")
	}
	if eventvault.ErrorCode(got.err) != eventvault.ECONFLICT || strings.Contains(eventvault.ErrorMessage(got.err), "order-2") {
		t.Fatalf("append = %+v, %v; want ECONFLICT that does not name order-2", got.res, got.err)
	}
	if len(seals) != 1 || seals[0] != 1 {
		t.Errorf("Seal called with %v, want once at the cached position 1", seals)
	}
	page, err := a.ReadStream(ctx, tenantA, "order-1", eventvault.ReadOptions{Limit: 10})
	if err != nil {
		t.Fatalf("ReadStream order-1: %v", err)
	}
	if len(page.Events) != 1 || page.Version != 0 {
		t.Errorf("order-1 has %d events at version %d, want 1 at version 0", len(page.Events), page.Version)
	}
}

// waitForLockWait waits until a session of the database at url waits for a
// lock in a statement starting with prefix.
func waitForLockWait(t *testing.T, url, prefix string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1 || '%'`, prefix).Scan(&n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no session waited for a lock in %q within 30s", prefix)
}
