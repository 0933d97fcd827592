package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
)

// TestAFirstAppendNeverWaitsOnAStreamRowUnderTheTenantLock: two writers
// append the first events of one stream at once; the first commits, and
// its next append goes in a group commit, which locks the stream's row
// and then waits for the tenant's row. The second writer's first append
// (carrying a new key) locks the tenant's row before it looks at the
// stream: had it then waited for the stream's row, the two would
// deadlock, and every append of the tenant would stall until PostgreSQL's
// deadlock_timeout (1 s) broke the cycle (as in a CI run of
// TestKilledServerLosesNoAcknowledgedAppend, where a request waiting
// for a pooled connection meanwhile got a 503).
//
// The stream's row is held by another session here, so that the group
// waits on it first: the second first append must come back with
// ErrStreamKeyExists while the row is still held, without waiting on it;
// once the row is free the group commits.
func TestAFirstAppendNeverWaitsOnAStreamRowUnderTheTenantLock(t *testing.T) {
	_, url := openDB(t)
	db, _ := openObserved(t, url, postgres.Options{})
	streams, keys := createStreams(t, db, 1)
	s := streams[0]

	release := holdStreamRow(t, url, s)
	grouped := make(chan error, 1)
	go func() {
		_, err := db.Append(context.Background(), tenantA, appendRequest(s, keys[s], 1))
		grouped <- err
	}()
	waitForLockWaits(t, url, 1)

	nk := wrappedKey("second-writer")
	req := appendRequest(s, nk.ID, 1)
	req.Expected, req.NewKey = eventvault.ExpectNoStream, &nk
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	start := time.Now()
	_, err := db.Append(ctx, tenantA, req)
	cancel()
	if !errors.Is(err, eventvault.ErrStreamKeyExists) || eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("a first append to %s, which has a key and whose row another session holds: %v after %s; want ECONFLICT with ErrStreamKeyExists at once",
			s, err, time.Since(start).Round(time.Millisecond))
	}
	select {
	case err := <-grouped:
		t.Fatalf("the grouped append returned before the stream's row was free: %v", err)
	default:
	}
	release()
	if err := <-grouped; err != nil {
		t.Fatalf("the grouped append, once the row was free: %v", err)
	}
	if n := streamLength(t, db, s); n != 2 {
		t.Fatalf("%s has %d events, want 2", s, n)
	}

	// The same first append to a stream without a key row still writes.
	fresh := eventvault.StreamName("fresh-" + uuid.NewString()[:8])
	nk = wrappedKey(string(fresh))
	req = appendRequest(fresh, nk.ID, 2)
	req.Expected, req.NewKey = eventvault.ExpectNoStream, &nk
	if _, err := db.Append(t.Context(), tenantA, req); err != nil {
		t.Fatalf("first append to %s: %v", fresh, err)
	}
	if n := streamLength(t, db, fresh); n != 2 {
		t.Fatalf("%s has %d events, want 2", fresh, n)
	}
}
