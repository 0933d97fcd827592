package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventvault/eventvault"
)

// appRole is the role every store transaction runs as. Row-level security
// applies to it because it neither owns the tables nor has BYPASSRLS.
const appRole = "eventvault_app"

// setScopeSQL switches the transaction to the app role, sets what the
// row-level security policies read and has the transaction's statements
// run on their generic plans, with sequential scans the last resort and
// no JIT compilation. All seven are transaction-local
// (set_config's third argument), so nothing outlives the transaction on a
// pooled connection; all are set every time so that no value can come
// from an earlier statement of the same transaction.
//
// Generic plans are planned once per connection and statement, never at
// each execution, and never for one tenant's value: every statement is for
// one tenant (tenant_id = $1), and a plan made for a value is made from
// what the statistics say of that tenant, one row for a tenant the last
// ANALYZE did not see, however many it holds by now. Such a plan read all
// of a big new tenant's index entries to find one id. A generic plan takes
// any tenant for a big one (migration 0014) and looks up what it needs.
//
// The same estimate makes a statement that walks all of one tenant's rows
// of a table (a tenant shred, its erasure records) look like a walk of
// most of the table once a big tenant holds most of it, and a sequential
// scan, which reads every tenant's rows, look cheaper than the tenant's
// index range. Every table with a tenant_id has an index that begins
// with it (api_tokens since 0015), so with sequential scans off
// (enable_seqscan: only costed as a last resort, so a table without such
// an index, goose's version table, is still read) a walk reads its
// tenant's rows and no one else's. See docs/performance.md, "A big tenant
// the statistics do not know".
//
// A last resort is costed at 10^10, past every JIT threshold, and a
// generic plan keeps its JIT decision: a statement left with a sequential
// scan was compiled at every execution, 50 to 120 ms for a read of one
// page (found by a review). The store's statements are short; JIT is off
// for all of them.
const setScopeSQL = `SELECT set_config('role', '` + appRole + `', true),
	set_config('eventvault.tenant', $1, true),
	set_config('eventvault.token_hash', $2, true),
	set_config('eventvault.admin', $3, true),
	set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true),
	set_config('jit', 'off', true)`

// setScopePageSQL is setScopeSQL for the page reads (txSpec.pageRead): it
// also turns bitmap scans and sorts off, for this transaction only, so that
// a page is read along its index in order and stops at its LIMIT. On a
// generic plan, with many small tenants in the statistics, PostgreSQL
// estimated a big tenant's rows past a position at a few dozen, and read
// all of them in a bitmap scan to sort them and keep the page's first
// hundred (docs/performance.md, "A big tenant the statistics do not
// know"). Off only makes them the last resort: a statement with no other
// plan still has one.
const setScopePageSQL = setScopeSQL + `,
	set_config('enable_bitmapscan', 'off', true),
	set_config('enable_sort', 'off', true)`

// scope is what a transaction may see: one tenant's rows, or for
// authentication the token with one hash, or for retiring the dev root
// tokens the root tokens.
type scope struct {
	tenant    eventvault.TenantID
	tokenHash []byte
	admin     bool
}

func (s scope) args() []any {
	admin := ""
	if s.admin {
		admin = "on"
	}
	return []any{string(s.tenant), hex.EncodeToString(s.tokenHash), admin}
}

// txSpec describes a transaction run by DB.run.
type txSpec struct {
	op    string
	scope scope
	// readOnly runs at REPEATABLE READ, READ ONLY, so that every statement
	// of the transaction sees one snapshot: a page of events and the keys
	// that protect it are read together. Writers run at READ COMMITTED and
	// serialise on row locks.
	readOnly bool
	// pageRead runs the transaction with setScopePageSQL: for reads of a
	// page of events in index order (a stream, read-all, a page's keys),
	// or of the end of an index range (a log's latest audit checkpoint).
	pageRead bool
	// retryUnique retries on a unique violation too: a concurrent writer
	// committed a row this transaction also meant to write, and running
	// again sees it and answers precisely (a replay or a conflict naming
	// the row).
	retryUnique bool
}

func (s txSpec) beginSQL() string {
	if s.readOnly {
		return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	}
	return "BEGIN ISOLATION LEVEL READ COMMITTED"
}

// txn is one transaction on one pooled connection. BEGIN and the scope ride
// along with the first batch sent and COMMIT with the last, so that the
// transaction costs no round trip of its own.
type txn struct {
	conn   *pgx.Conn
	spec   txSpec
	begun  bool
	closed bool
	// audit are the audit records of the action this transaction carries
	// out, written with its COMMIT (eventvault.WithAudit); nil for none.
	audit *eventvault.AuditLines
}

// send sends b in the transaction, first BEGIN and the scope if they are not
// sent yet, and with commit a COMMIT after b. It returns the first error of
// the batch, including those of b's callbacks.
func (t *txn) send(ctx context.Context, b *pgx.Batch, commit bool) error {
	if t.closed {
		return errors.New("transaction is closed")
	}
	full := b
	if !t.begun {
		full = &pgx.Batch{}
		full.Queue(t.spec.beginSQL())
		scopeSQL := setScopeSQL
		if t.spec.pageRead {
			scopeSQL = setScopePageSQL
		}
		full.Queue(scopeSQL, t.spec.scope.args()...)
		full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
		t.begun = true
	}
	var auditFirst int64 = -1
	if commit && t.audit != nil {
		if lines, ok := t.audit.Take(); ok {
			if err := t.queueAudit(full, lines, &auditFirst); err != nil {
				return err
			}
		}
	}
	if commit {
		full.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
			// COMMIT of an aborted transaction answers ROLLBACK.
			if ct.String() != "COMMIT" {
				return fmt.Errorf("commit answered %s", ct.String())
			}
			return nil
		})
	}
	err := t.conn.SendBatch(ctx, full).Close()
	if commit && err == nil {
		t.closed = true
		if auditFirst >= 0 {
			t.audit.Written(auditFirst)
		}
	}
	return err
}

// rollback ends an open transaction. Its errors do not matter: a connection
// left inside a transaction is not returned to the pool.
func (t *txn) rollback(ctx context.Context) {
	if !t.begun || t.closed || t.conn.IsClosed() {
		return
	}
	t.closed = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = t.conn.Exec(ctx, "ROLLBACK")
}

// maxAttempts bounds how often run tries a transaction that PostgreSQL
// aborted for serialization or deadlock.
const maxAttempts = 6

// run runs fn as one transaction on a pooled connection, under spec's scope.
// If fn returns without committing, run commits. A transaction aborted for
// serialization (40001) or deadlock (40P01) is run again, a few times with
// jittered back-off, so callers never see these, and so is a read-only one
// whose session ended under it (lostSession: a pooled connection whose
// backend was terminated); every other database error is mapped to an
// *eventvault.Error at this boundary. fn may therefore run more than once.
func (db *DB) run(ctx context.Context, spec txSpec, fn func(ctx context.Context, t *txn) error) error {
	for attempt := 1; ; attempt++ {
		err := db.attempt(ctx, spec, fn)
		if err == nil {
			return nil
		}
		again := retryable(err, spec.retryUnique) || spec.readOnly && lostSession(err)
		if attempt >= maxAttempts || !again || ctx.Err() != nil {
			return db.observe(spec.op, mapError(spec.op, err))
		}
		reason := retryReason(err)
		if reason == RetryDeadlock {
			db.log.WarnContext(ctx, "PostgreSQL broke a deadlock; running the transaction again", "op", spec.op, "attempt", attempt)
		} else {
			db.log.DebugContext(ctx, "retrying transaction", "op", spec.op, "attempt", attempt, "reason", reason)
		}
		if db.observer != nil {
			db.observer.StoreRetry(spec.op, reason)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return db.observe(spec.op, mapError(spec.op, err))
		}
	}
}

// observe reports err, an error a store operation returns, to the
// Observer, by its code, and returns it. A receiver's error (ReadAllTo) is
// its caller's, not the store's, and is not reported.
func (db *DB) observe(op string, err error) error {
	var re *receiverError
	if db.observer != nil && err != nil && !errors.As(err, &re) {
		db.observer.StoreError(op, string(eventvault.ErrorCode(err)))
	}
	return err
}

func (db *DB) attempt(ctx context.Context, spec txSpec, fn func(ctx context.Context, t *txn) error) (err error) {
	pc, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	t := &txn{conn: pc.Conn(), spec: spec}
	if !spec.readOnly {
		t.audit = eventvault.AuditFrom(ctx)
	}
	defer func() {
		if err != nil {
			t.rollback(ctx)
			if t.conn.IsClosed() && !isPgError(err) {
				err = &connLostError{err}
			}
		}
	}()
	if err := fn(ctx, t); err != nil {
		return err
	}
	if !t.closed {
		return t.send(ctx, &pgx.Batch{}, true)
	}
	return nil
}

// backoff is the pause before attempt+1: a few milliseconds, doubling, with
// full jitter so that transactions that collided do not collide again.
func backoff(attempt int) time.Duration {
	ceiling := time.Duration(2<<attempt) * time.Millisecond
	return ceiling/2 + rand.N(ceiling/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// acquire takes a connection from the pool, waiting at most
// acquireTimeout (when set) and never for a caller that is gone: a request
// whose deadline passed, or whose caller gave up, is never started in the
// database. A wait that times out is EUNAVAILABLE, the pool being the
// bottleneck, and is not retried by run.
func (db *DB) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	actx := ctx
	if db.acquireTimeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, db.acquireTimeout)
		defer cancel()
	}
	pc, err := db.pool.Acquire(actx)
	switch {
	case err == nil:
		return pc, nil
	case ctx.Err() == nil && actx.Err() != nil:
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: "postgres.acquire",
			Message: fmt.Sprintf("no database connection came free within %s: the pool is busy; retry later", db.acquireTimeout), Err: err}
	case ctx.Err() != nil:
		return nil, fmt.Errorf("acquire connection: %w", ctx.Err())
	}
	return nil, &connLostError{fmt.Errorf("acquire connection: %w", err)}
}
