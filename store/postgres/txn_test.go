package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// openInternal returns a store on a fresh, migrated database.
func openInternal(t *testing.T, opts Options) *DB {
	t.Helper()
	url := pgtest.URL(t)
	if err := Migrate(t.Context(), url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	db, err := Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestSettingsAreTransactionLocal runs store operations on a pool of one
// connection, then checks that the connection carries neither the tenant,
// nor a token hash, nor admin, nor the app role into its next use.
func TestSettingsAreTransactionLocal(t *testing.T) {
	db := openInternal(t, Options{MaxConns: 1})
	ctx := t.Context()
	k, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Ciphertext: []byte("k")})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	req := eventvault.AppendRequest{
		Stream: "order-1", Expected: eventvault.ExpectAny, KeyID: k.ID,
		Events: []eventvault.ProposedEvent{{ID: uuid.New(), Type: "Happened", ContentMAC: []byte("m")}},
		Seal:   func(int64) ([][]byte, error) { return [][]byte{[]byte("sealed")}, nil },
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"Append", func() error { _, err := db.Append(ctx, "tenant-a", req); return err }},
		{"ReadAll", func() error { _, err := db.ReadAll(ctx, "tenant-a", 0, 10); return err }},
		{"TokenByHash", func() error {
			_, err := db.TokenByHash(ctx, []byte("hash"))
			if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
				return nil
			}
			return err
		}},
		{"DeleteRootTokens", func() error { _, err := db.DeleteRootTokens(ctx); return err }},
		{"a conflicting Append", func() error {
			bad := req
			bad.Expected = eventvault.ExpectNoStream
			bad.Events = []eventvault.ProposedEvent{{ID: uuid.New(), Type: "Happened", ContentMAC: []byte("m")}}
			_, err := db.Append(ctx, "tenant-a", bad)
			if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
				return nil
			}
			return errors.Join(errors.New("want ECONFLICT"), err)
		}},
	}
	for _, step := range steps {
		t.Run("after "+step.name, func(t *testing.T) {
			if err := step.run(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			var user, tenant, hash, admin string
			err := db.pool.QueryRow(ctx, `SELECT current_user,
				coalesce(current_setting('eventvault.tenant', true), ''),
				coalesce(current_setting('eventvault.token_hash', true), ''),
				coalesce(current_setting('eventvault.admin', true), '')`).Scan(&user, &tenant, &hash, &admin)
			if err != nil {
				t.Fatalf("read settings: %v", err)
			}
			if user == appRole || tenant != "" || hash != "" || admin != "" {
				t.Errorf("pooled connection after %s: role %q, tenant %q, token hash %q, admin %q; want none of the store's settings", step.name, user, tenant, hash, admin)
			}
		})
	}
}

// raise returns the *pgconn.PgError the server sends for a RAISE with the
// given SQLSTATE.
func raise(t *testing.T, db *DB, code string) error {
	t.Helper()
	_, err := db.pool.Exec(t.Context(), `DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '`+code+`'; END $$`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Fatalf("RAISE with SQLSTATE %s returned %v", code, err)
	}
	return err
}

func TestErrorClassification(t *testing.T) {
	db := openInternal(t, Options{})
	cases := []struct {
		sqlstate    string
		retry       bool
		retryUnique bool
		code        eventvault.Code
	}{
		{"40001", true, true, eventvault.EUNAVAILABLE},   // serialization_failure
		{"40P01", true, true, eventvault.EUNAVAILABLE},   // deadlock_detected
		{"23505", false, true, eventvault.ECONFLICT},     // unique_violation
		{"57P01", false, false, eventvault.EUNAVAILABLE}, // admin_shutdown
		{"53300", false, false, eventvault.EUNAVAILABLE}, // too_many_connections
		{"42P01", false, false, eventvault.EINTERNAL},    // undefined_table
		{"22012", false, false, eventvault.EINTERNAL},    // division_by_zero
	}
	for _, tc := range cases {
		t.Run(tc.sqlstate, func(t *testing.T) {
			err := raise(t, db, tc.sqlstate)
			if got := retryable(err, false); got != tc.retry {
				t.Errorf("retryable = %v, want %v", got, tc.retry)
			}
			if got := retryable(err, true); got != tc.retryUnique {
				t.Errorf("retryable with unique = %v, want %v", got, tc.retryUnique)
			}
			mapped := mapError("test", err)
			if got := eventvault.ErrorCode(mapped); got != tc.code {
				t.Errorf("mapped code = %q, want %q", got, tc.code)
			}
			var pgErr *pgconn.PgError
			if errors.As(mapped, &pgErr) {
				t.Errorf("the mapped error still exposes the *pgconn.PgError")
			}
		})
	}
}

// TestRunRetriesAbortedTransactions checks that run hides a transaction
// aborted for serialization or deadlock: it runs it again, and only gives
// up, as EUNAVAILABLE, after maxAttempts.
func TestRunRetriesAbortedTransactions(t *testing.T) {
	db := openInternal(t, Options{})
	for _, code := range []string{"40001", "40P01"} {
		t.Run(code+" then success", func(t *testing.T) {
			var attempts int
			err := db.run(t.Context(), txSpec{op: "test", scope: scope{tenant: "tenant-a"}}, func(ctx context.Context, tx *txn) error {
				attempts++
				b := &pgx.Batch{}
				if attempts < 3 {
					b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'abort' USING ERRCODE = '` + code + `'; END $$`)
				} else {
					b.Queue(`SELECT 1`)
				}
				return tx.send(ctx, b, false)
			})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if attempts != 3 {
				t.Errorf("fn ran %d times, want 3", attempts)
			}
		})
		t.Run(code+" every time", func(t *testing.T) {
			var attempts int
			err := db.run(t.Context(), txSpec{op: "test", scope: scope{tenant: "tenant-a"}}, func(ctx context.Context, tx *txn) error {
				attempts++
				b := &pgx.Batch{}
				b.Queue(`DO $$ BEGIN RAISE EXCEPTION 'abort' USING ERRCODE = '` + code + `'; END $$`)
				return tx.send(ctx, b, false)
			})
			if got := eventvault.ErrorCode(err); got != eventvault.EUNAVAILABLE {
				t.Errorf("error code = %q (%v), want %q", got, err, eventvault.EUNAVAILABLE)
			}
			if attempts != maxAttempts {
				t.Errorf("fn ran %d times, want %d", attempts, maxAttempts)
			}
		})
	}
}

// TestRunRetriesARealDeadlock makes two transactions lock two streams' rows
// in opposite orders. PostgreSQL aborts one with 40P01; run retries it and
// both succeed.
func TestRunRetriesARealDeadlock(t *testing.T) {
	db := openInternal(t, Options{})
	ctx := t.Context()
	for _, s := range []eventvault.StreamName{"left-1", "right-1"} {
		if _, err := db.CreateStreamKey(ctx, "tenant-a", s, eventvault.WrappedKey{ID: uuid.New(), Ciphertext: []byte("k")}); err != nil {
			t.Fatalf("CreateStreamKey %s: %v", s, err)
		}
	}
	lock := func(ctx context.Context, tx *txn, stream string) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT 1 FROM streams WHERE tenant_id = 'tenant-a' AND name = $1 FOR UPDATE`, stream)
		return tx.send(ctx, b, false)
	}
	var (
		attempts atomic.Int32
		both     sync.WaitGroup // both hold their first lock
	)
	both.Add(2)
	worker := func(first, second string) error {
		var once sync.Once
		return db.run(ctx, txSpec{op: "test", scope: scope{tenant: "tenant-a"}}, func(ctx context.Context, tx *txn) error {
			attempts.Add(1)
			if err := lock(ctx, tx, first); err != nil {
				return err
			}
			once.Do(func() { both.Done(); both.Wait() })
			return lock(ctx, tx, second)
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- worker("left-1", "right-1") }()
	go func() { errs <- worker("right-1", "left-1") }()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the deadlocked transactions did not finish")
		}
	}
	if got := attempts.Load(); got < 3 {
		t.Errorf("%d attempts in all, want at least 3 (one transaction aborted and retried)", got)
	}
}

// TestAStatementLeftWithASequentialScanIsNotCompiled: every transaction
// makes sequential scans the last resort, costed at 10^10, past every JIT
// threshold, and a generic plan keeps its JIT decision, so a statement
// with no index to walk (goose's version table, read at every Open) was
// JIT-compiled at every execution, 50 to 120 ms for one page. It runs the
// store's schema check statement under EXPLAIN ANALYZE in a store
// transaction of each kind and finds no JIT in its plan. It needs a
// PostgreSQL with JIT, as Debian's, which make test installs, is.
func TestAStatementLeftWithASequentialScanIsNotCompiled(t *testing.T) {
	db := openInternal(t, Options{})
	var available bool
	if err := db.pool.QueryRow(t.Context(), `SELECT pg_jit_available()`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Fatal("this PostgreSQL has no JIT (pg_jit_available() is false), so the test would prove nothing: run it on a PostgreSQL built with LLVM, such as the one `bash scripts/with-postgres.sh` installs")
	}
	for _, spec := range []txSpec{
		{op: "test", readOnly: true},
		{op: "test", scope: scope{tenant: "tenant-a"}},
		{op: "test", scope: scope{tenant: "tenant-a"}, readOnly: true, pageRead: true},
	} {
		for _, query := range []string{`SELECT coalesce(max(version_id), 0) FROM ` + versionTable} {
			var plan string
			err := db.run(t.Context(), spec, func(ctx context.Context, tx *txn) error {
				b := &pgx.Batch{}
				b.Queue(`EXPLAIN (ANALYZE, FORMAT TEXT) ` + query).Query(func(rows pgx.Rows) error {
					lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
					plan = strings.Join(lines, "\n")
					return err
				})
				return tx.send(ctx, b, false)
			})
			if err != nil {
				t.Fatalf("explain %q: %v", query, err)
			}
			if !strings.Contains(plan, "Seq Scan") {
				t.Errorf("%q (page read %v) is not a sequential scan, so this proves nothing of it:\n%s", query, spec.pageRead, plan)
			}
			if strings.Contains(plan, "JIT") {
				t.Errorf("%q (page read %v) was JIT-compiled:\n%s", query, spec.pageRead, plan)
			}
		}
	}
}
