package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventvault/eventvault/store/postgres"
)

// TestAGroupWaitingOnALockedStreamDoesNotHoldUpTheTenant: a group commit
// that waits on a stream row locked elsewhere (a slow transaction, an
// operator's session) does not hold up the tenant's small appends to other
// streams: past secondGroupAfter a second group starts for them, though
// fewer than 64 events wait, and commits while the first still waits.
// A second append to the locked stream waits; appends to three other
// streams, one after another, each from a caller of its own, must all
// commit within 5 s while the row stays locked.
func TestAGroupWaitingOnALockedStreamDoesNotHoldUpTheTenant(t *testing.T) {
	_, url := openDB(t)
	db, _ := openObserved(t, url, postgres.Options{})
	streams, keys := createStreams(t, db, 4)

	release := holdStreamRow(t, url, streams[0])
	stuck := make(chan error, 1)
	go func() {
		_, err := db.Append(context.Background(), tenantA, appendRequest(streams[0], keys[streams[0]], 1))
		stuck <- err
	}()
	waitForLockWaits(t, url, 1)
	// A second append to the locked stream waits for the next group, and
	// does not take the appends behind it into a wait of its own.
	again := make(chan error, 1)
	go func() {
		_, err := db.Append(context.Background(), tenantA, appendRequest(streams[0], keys[streams[0]], 1))
		again <- err
	}()
	time.Sleep(30 * time.Millisecond) // past secondGroupAfter

	for _, s := range streams[1:] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := db.Append(ctx, tenantA, appendRequest(s, keys[s], 1))
		cancel()
		if err != nil {
			t.Fatalf("append to %s while a group waits on %s's row: %v (after %s)", s, streams[0], err, time.Since(start).Round(time.Millisecond))
		}
	}
	select {
	case err := <-stuck:
		t.Fatalf("the append to the locked stream returned before the lock went: %v", err)
	default:
	}
	release()
	for _, ch := range []chan error{stuck, again} {
		if err := <-ch; err != nil {
			t.Fatalf("an append to the locked stream, once released: %v", err)
		}
	}
	for i, s := range streams {
		want := 2
		if i == 0 {
			want = 3
		}
		if n := streamLength(t, db, s); n != want {
			t.Fatalf("stream %d has %d events, want %d", i, n, want)
		}
	}
}
