package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
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

	// Nor does it wait for a transaction that updated the row (an append
	// setting the stream's owner, which then waits for the tenant's row):
	// its insert skips a committed row rather than wait on the unique
	// index for the updater.
	utx := sessionTx(t, url)
	if _, err := utx.Exec(t.Context(), `UPDATE streams SET subject = 'p-owner' WHERE tenant_id = $1 AND name = $2`, string(tenantA), string(s)); err != nil {
		t.Fatalf("update %s: %v", s, err)
	}
	nk = wrappedKey("third-writer")
	req = appendRequest(s, nk.ID, 1)
	req.Expected, req.NewKey = eventvault.ExpectNoStream, &nk
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	start = time.Now()
	_, err = db.Append(ctx, tenantA, req)
	cancel()
	_ = utx.Rollback(context.Background())
	if !errors.Is(err, eventvault.ErrStreamKeyExists) {
		t.Fatalf("a first append to %s, whose row another transaction updated: %v after %s; want ErrStreamKeyExists at once",
			s, err, time.Since(start).Round(time.Millisecond))
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

// TestAnAppendOfPersonalValuesWaitsForASubjectKeyHoldingNoTenantLock: an
// append that writes personal values takes each subject's key row FOR
// SHARE (the values must be sealed under the live key), and waits there
// while an erasure of the subject holds the row. It must hold neither the
// tenant's audit head meanwhile (the erasure writes its audit record
// after locking the key, so the two would deadlock until PostgreSQL's
// deadlock_timeout broke the cycle) nor the tenant's row (every other
// append of the tenant would wait behind the erasure). Here another
// session holds the subject's key row; while the append waits on it, both
// rows must be free to lock (FOR UPDATE NOWAIT).
func TestAnAppendOfPersonalValuesWaitsForASubjectKeyHoldingNoTenantLock(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	const subject = eventvault.Pseudonym("p-order")
	sk, err := db.CreateSubjectKey(ctx, tenantA, subject, eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped-subject-key")})
	if err != nil {
		t.Fatalf("CreateSubjectKey: %v", err)
	}
	const stream = eventvault.StreamName("pii-order")
	withPII := func(token string) eventvault.AppendRequest {
		req := appendRequest(stream, uuid.Nil, 1)
		req.PII = []eventvault.PIIValue{{Token: token, Subject: subject, EventID: req.Events[0].ID, Pointer: "/email", Version: 1, KeyID: sk.ID, Ciphertext: []byte("sealed-pii")}}
		req.Audit = func(first int64) ([]byte, error) {
			return fmt.Appendf(nil, `{"index":0,"time":"2026-12-01T00:00:00Z","stream":%q,"first":%d}`, stream, first), nil
		}
		return req
	}
	nk := wrappedKey(string(stream))
	first := withPII("evpii_order00000000000000000001")
	first.Expected, first.KeyID, first.NewKey = eventvault.ExpectNoStream, nk.ID, &nk
	if _, err := db.Append(ctx, tenantA, first); err != nil {
		t.Fatalf("first append with a personal value: %v", err)
	}

	hold := sessionTx(t, url)
	if _, err := hold.Exec(ctx, `SELECT 1 FROM subject_keys WHERE tenant_id = $1 AND subject = $2 FOR UPDATE`, string(tenantA), string(subject)); err != nil {
		t.Fatalf("lock the subject's key row: %v", err)
	}
	second := withPII("evpii_order00000000000000000002")
	second.KeyID = nk.ID
	appended := make(chan error, 1)
	go func() {
		_, err := db.Append(context.Background(), tenantA, second)
		appended <- err
	}()
	waitForLockWaits(t, url, 1)

	tx := sessionTx(t, url)
	_, lockErr := tx.Exec(ctx, `SELECT 1 FROM audit_heads WHERE tenant_id = $1 FOR UPDATE NOWAIT`, string(tenantA))
	if lockErr == nil {
		_, lockErr = tx.Exec(ctx, `SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE NOWAIT`, string(tenantA))
	}
	_ = tx.Rollback(ctx)
	_ = hold.Rollback(ctx)
	if err := <-appended; err != nil {
		t.Fatalf("the append with a personal value, once the subject's key was free: %v", err)
	}
	if lockErr != nil {
		t.Fatalf("the tenant's and audit head's rows, while an append waited on a subject's key: %v; want them free", lockErr)
	}
	if n := streamLength(t, db, stream); n != 2 {
		t.Fatalf("%s has %d events, want 2", stream, n)
	}
}

// TestConcurrentWritersOfOneTenantNeverDeadlock runs, for 3 s, the
// writers of one tenant that take the locks of doc.go's "Lock order" side
// by side: appends carried by group commits to known streams, first
// appends of six writers racing for each new stream (each then appends
// to it three times, naming an owner), audited appends of personal
// values, audited erasures of the subjects those values belong to, and a
// stream shredded halfway. Each writer meets only the refusals its
// race explains (ECONFLICT, EERASED). Afterwards PostgreSQL must have
// detected no deadlock in the test's database (pg_stat_database): each
// would have stalled the tenant for deadlock_timeout before a retry.
func TestConcurrentWritersOfOneTenantNeverDeadlock(t *testing.T) {
	db, url := openDB(t)
	streams, keys := createStreams(t, db, 4)
	const subjects = 40
	subjectKeys := make([]uuid.UUID, subjects)
	for i := range subjects {
		k, err := db.CreateSubjectKey(t.Context(), tenantA, eventvault.Pseudonym(fmt.Sprintf("p-%d", i)),
			eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped-subject-key")})
		if err != nil {
			t.Fatalf("CreateSubjectKey: %v", err)
		}
		subjectKeys[i] = k.ID
	}

	auditOf := func(action string) func(int64) ([]byte, error) {
		return func(int64) ([]byte, error) {
			return fmt.Appendf(nil, `{"index":0,"time":"2026-12-01T00:00:00Z","action":%q}`, action), nil
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var erased atomic.Int64 // subjects p-0 … p-(erased-1) are being or were erased
	expected := func(what string, err error) bool {
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case eventvault.ErrorCode(err) == eventvault.ECONFLICT, eventvault.ErrorCode(err) == eventvault.EERASED:
			return false
		}
		t.Errorf("%s: %v", what, err)
		return false
	}
	// Appends carried by group commits, one writer per known stream.
	for _, s := range streams {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := db.Append(ctx, tenantA, appendRequest(s, keys[s], 1)); !expected("append to "+string(s), err) && eventvault.ErrorCode(err) == eventvault.EERASED {
					return
				}
			}
		})
	}
	// Six writers racing for each new stream; each then appends to it
	// three times more, the winner's appends going in group commits at
	// once while the losers still queue for the tenant's row.
	for w := range 6 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				s := eventvault.StreamName(fmt.Sprintf("new-%d", n))
				nk := wrappedKey(string(s))
				req := appendRequest(s, nk.ID, 1)
				req.NewKey = &nk
				_, err := db.Append(ctx, tenantA, req)
				key := nk.ID
				if errors.Is(err, eventvault.ErrStreamKeyExists) {
					k, kerr := db.StreamKey(ctx, tenantA, s)
					if !expected("key of "+string(s), kerr) {
						continue
					}
					key = k.ID
				} else if !expected("first append to "+string(s), err) {
					continue
				}
				for range 3 {
					req = appendRequest(s, key, 1)
					req.Subject = eventvault.Pseudonym(fmt.Sprintf("p-owner-%d", w))
					_, err = db.Append(ctx, tenantA, req)
					expected("append naming an owner of "+string(s), err)
				}
			}
		})
	}
	// Personal values of subjects that erasures catch up with.
	wg.Go(func() {
		for n := 0; ctx.Err() == nil; n++ {
			i := (int(erased.Load()) + n%3) % subjects
			s := eventvault.StreamName(fmt.Sprintf("pii-%d", i))
			k, err := db.StreamKey(ctx, tenantA, s)
			req := appendRequest(s, k.ID, 1)
			if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
				nk := wrappedKey(string(s))
				req = appendRequest(s, nk.ID, 1)
				req.NewKey = &nk
			} else if !expected("key of "+string(s), err) {
				continue
			}
			subject := eventvault.Pseudonym(fmt.Sprintf("p-%d", i))
			req.Subject = subject
			req.PII = []eventvault.PIIValue{{Token: fmt.Sprintf("evpii_%024d", n), Subject: subject, EventID: req.Events[0].ID,
				Pointer: "/email", Version: 1, KeyID: subjectKeys[i], Ciphertext: []byte("sealed-pii")}}
			req.Audit = auditOf("append")
			_, err = db.Append(ctx, tenantA, req)
			expected("append of a personal value to "+string(s), err)
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil && erased.Load() < subjects {
			i := erased.Add(1) - 1
			line, _ := auditOf("erase")(0)
			actx := eventvault.WithAudit(ctx, &eventvault.AuditLines{Tenant: tenantA, Lines: [][]byte{line}})
			_, err := db.EraseSubjectPII(actx, tenantA, eventvault.Pseudonym(fmt.Sprintf("p-%d", i)), time.Now())
			expected("erase a subject", err)
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
		_, err := db.ShredStream(ctx, tenantA, streams[0], false, time.Now())
		expected("shred "+string(streams[0]), err)
	})
	wg.Wait()
	if erased.Load() < 3 {
		t.Errorf("only %d subjects were erased in 3 s; want the erasures to run among the appends", erased.Load())
	}
	_ = db.Close()

	if deadlocks := pgtest.Deadlocks(t, url); deadlocks != 0 {
		t.Fatalf("PostgreSQL detected %d deadlocks among the tenant's writers; want none", deadlocks)
	}
}

// sessionTx begins a transaction in a session of its own of the test
// server's superuser at url; the session closes when t ends.
func sessionTx(t *testing.T, url string) pgx.Tx {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatalf("BEGIN: %v", err)
	}
	return tx
}

// TestADeadlockPostgreSQLBreaksIsRetriedCountedAndLogged: a session that
// takes the tenant's row and then the stream's, against the order every
// append keeps, deadlocks with an append on the locking path. The
// append's session waited first, so PostgreSQL aborts it after
// deadlock_timeout (the other session sets its own to a minute); the
// store runs it again, counts the retry as "deadlock" and logs a warning
// naming the operation, and the append commits once the session is gone.
func TestADeadlockPostgreSQLBreaksIsRetriedCountedAndLogged(t *testing.T) {
	db, url := openDB(t)
	streams, keys := createStreams(t, db, 1)
	s := streams[0]
	var logged bytes.Buffer
	var mu sync.Mutex
	other, obs := openObserved(t, url, postgres.Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))})

	side := sessionTx(t, url)
	if _, err := side.Exec(t.Context(), `SET LOCAL deadlock_timeout = '60s'`); err != nil {
		t.Fatalf("SET deadlock_timeout: %v", err)
	}
	if _, err := side.Exec(t.Context(), `SELECT 1 FROM tenants WHERE tenant_id = $1 FOR UPDATE`, string(tenantA)); err != nil {
		t.Fatalf("lock the tenant's row: %v", err)
	}
	appended := make(chan error, 1)
	go func() {
		// other has not seen the stream: the locking path, which locks
		// the stream's row and then waits for the tenant's.
		_, err := other.Append(context.Background(), tenantA, appendRequest(s, keys[s], 1))
		appended <- err
	}()
	waitForLockWaits(t, url, 1)
	if _, err := side.Exec(t.Context(), `SELECT 1 FROM streams WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, string(tenantA), string(s)); err != nil {
		t.Fatalf("the side session's lock of %s, once PostgreSQL aborted the append: %v", s, err)
	}
	if err := side.Rollback(t.Context()); err != nil {
		t.Fatalf("ROLLBACK: %v", err)
	}
	if err := <-appended; err != nil {
		t.Fatalf("the append, run again after the deadlock: %v", err)
	}
	if n := count(&obs.retries, postgres.RetryDeadlock); n != 1 {
		t.Errorf("retries counted as %q: %d, want 1", postgres.RetryDeadlock, n)
	}
	if n := streamLength(t, db, s); n != 2 {
		t.Errorf("%s has %d events, want 2", s, n)
	}
	mu.Lock()
	log := logged.String()
	mu.Unlock()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "deadlock") || !strings.Contains(log, "op=postgres.Append") {
		t.Errorf("the store's log after a deadlock:\n%s\nwant a warning naming the deadlock and postgres.Append", log)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
