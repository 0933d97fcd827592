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

// holdStreamRow locks tenantA's row of stream in a transaction of its own
// until the test ends or release is called.
func holdStreamRow(t *testing.T, url string, stream eventvault.StreamName) (release func()) {
	t.Helper()
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatalf("BEGIN: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM streams WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, string(tenantA), string(stream)); err != nil {
		t.Fatalf("lock %s: %v", stream, err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
			_ = holder.Close(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

func streamLength(t *testing.T, db *postgres.DB, stream eventvault.StreamName) int {
	t.Helper()
	page, err := db.ReadStream(context.Background(), tenantA, stream, eventvault.ReadOptions{Limit: 100})
	if err != nil {
		t.Fatalf("ReadStream %s: %v", stream, err)
	}
	return len(page.Events)
}

// TestAppendOfAGoneCallerIsNeverStarted: an append whose context ended
// before it reached the database writes nothing; one waiting for a group
// commit returns as soon as its caller goes away (freeing what the caller
// holds), and the group that would have carried it drops it: nothing of it
// is written once the groups in flight commit.
func TestAppendOfAGoneCallerIsNeverStarted(t *testing.T) {
	_, url := openDB(t)
	db, _ := openObserved(t, url, postgres.Options{})
	streams, keys := createStreams(t, db, 4)

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Append(gone, tenantA, appendRequest(streams[0], keys[streams[0]], 1)); eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("append with its context ended: %v, want EUNAVAILABLE", err)
	}
	if n := streamLength(t, db, streams[0]); n != 1 {
		t.Fatalf("%s has %d events after an append whose caller was gone, want 1", streams[0], n)
	}

	// The append left waiting behind the two groups this tenant may have
	// in flight, each waiting on a locked row (of streams of their own: an
	// append to a stream of a group in flight waits for the next group).
	release1 := holdStreamRow(t, url, streams[1])
	release3 := holdStreamRow(t, url, streams[3])
	held := make(chan error, 2)
	hold := func(stream eventvault.StreamName, events, waits int) {
		go func() {
			_, err := db.Append(context.Background(), tenantA, appendRequest(stream, keys[stream], events))
			held <- err
		}()
		waitForLockWaits(t, url, waits)
	}
	leave := func(behind string) {
		ctx, cancel := context.WithCancel(context.Background())
		left := make(chan error, 1)
		go func() {
			_, err := db.Append(ctx, tenantA, appendRequest(streams[2], keys[streams[2]], 1))
			left <- err
		}()
		time.Sleep(50 * time.Millisecond) // it joins the tenant's queue
		cancel()
		select {
		case err := <-left:
			if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
				t.Fatalf("the append whose caller left, behind %s: %v, want EUNAVAILABLE", behind, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("an append waiting behind %s did not return when its caller left", behind)
		}
	}
	hold(streams[1], 1, 1)
	// 64 events waiting (secondGroupEvents) start the second group at
	// once. (Behind one group, an append left waiting would be carried by
	// a second group secondGroupAfter later: its caller could not leave
	// in time for sure.)
	hold(streams[3], 64, 2)
	leave("two groups in flight")
	release1()
	release3()
	for range 2 {
		if err := <-held; err != nil {
			t.Fatalf("held append: %v", err)
		}
	}
	if n := streamLength(t, db, streams[2]); n != 1 {
		t.Fatalf("%s has %d events: an append whose caller left before its group was written", streams[2], n)
	}
	if n1, n3 := streamLength(t, db, streams[1]), streamLength(t, db, streams[3]); n1 != 2 || n3 != 65 {
		t.Fatalf("%s has %d events and %s %d, want 2 and 65", streams[1], n1, streams[3], n3)
	}
}

// TestPoolAcquireTimeoutIsUnavailable: with one connection held by an
// append waiting on a lock, a read waits at most AcquireTimeout for a
// connection and fails EUNAVAILABLE, saying the pool is busy.
func TestPoolAcquireTimeoutIsUnavailable(t *testing.T) {
	_, url := openDB(t)
	db, _ := openObserved(t, url, postgres.Options{MaxConns: 1, AcquireTimeout: 50 * time.Millisecond})
	streams, keys := createStreams(t, db, 1)
	release := holdStreamRow(t, url, streams[0])
	held := make(chan error, 1)
	go func() {
		_, err := db.Append(context.Background(), tenantA, appendRequest(streams[0], keys[streams[0]], 1))
		held <- err
	}()
	waitForLockWait(t, url, "WITH ")
	start := time.Now()
	_, err := db.ReadStream(context.Background(), tenantA, streams[0], eventvault.ReadOptions{Limit: 10})
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(eventvault.ErrorMessage(err), "no database connection came free within 50ms") {
		t.Fatalf("read with the pool busy: %v, want EUNAVAILABLE naming the acquire timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the read waited %s for a connection", d)
	}
	release()
	if err := <-held; err != nil {
		t.Fatalf("held append: %v", err)
	}
}

// waitForLockWaits waits until n sessions of the database wait for a lock.
func waitForLockWaits(t *testing.T, url string, n int) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var got int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got); err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d sessions waited for a lock within 30s", n)
}
