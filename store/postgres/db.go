package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventvault/eventvault"
)

// Options tune a DB. The zero value is ready to use.
type Options struct {
	// MaxConns bounds the connection pool; zero leaves pgxpool's default
	// (the larger of 4 and the number of CPUs).
	MaxConns int32
	// AcquireTimeout bounds how long a transaction waits for a connection
	// of the pool (the pool's queue); past it the operation fails with
	// EUNAVAILABLE, having done nothing. Zero: only the caller's context
	// bounds the wait.
	AcquireTimeout time.Duration
	// Logger receives retries of aborted transactions: a deadlock
	// PostgreSQL broke at warning level (the store takes its locks in one
	// order, "Lock order" in the package documentation, so one is a fault
	// to look into), the others at debug level; nil discards them.
	Logger *slog.Logger
	// NoGroupCommit makes every fast append commit on its own, as before
	// group commit (see "Group commit" in the package documentation): for
	// comparisons, not for service.
	NoGroupCommit bool
	// Observer, if set, learns of group commits and of the errors the
	// store returns (a metrics registry implements it).
	Observer Observer
}

// Observer is what a DB reports as it works. Its methods must be safe for
// concurrent use and quick: they run on the append and error paths.
type Observer interface {
	GroupObserver
	// StoreError counts an error a store operation returned, by its code
	// (eventvault.ECONFLICT, EUNAVAILABLE, ...).
	StoreError(op, code string)
	// StoreRetry counts a transaction the store ran again, by why its
	// last attempt ended (RetryDeadlock, RetrySerialization, RetryUnique,
	// RetryLostSession, RetryUnsent).
	StoreRetry(op, reason string)
}

// Reasons the store runs a transaction again (Observer.StoreRetry).
const (
	// RetryDeadlock: PostgreSQL aborted it to break a deadlock (40P01),
	// after deadlock_timeout.
	RetryDeadlock = "deadlock"
	// RetrySerialization: a serialization failure (40001).
	RetrySerialization = "serialization"
	// RetryUnique: a unique violation (23505) that a concurrent writer
	// explains, in a transaction that checks again what it looked up.
	RetryUnique = "unique"
	// RetryLostSession: a read-only transaction whose session ended under
	// it.
	RetryLostSession = "lost_session"
	// RetryUnsent: the driver failed before anything reached the server.
	RetryUnsent = "unsent"
)

// DB is the PostgreSQL store. It implements eventvault.Store. It is safe for
// concurrent use.
type DB struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// versions is the row this process last saw of each stream, which
	// lets most appends take the fast append, one round trip (see Append).
	versions versionCache
	// recent holds the ids this process appended last: a retry of one of
	// them takes the locking path, which does not seal it.
	recent recentIDs
	// groups coalesces each tenant's concurrent fast appends into one
	// transaction, unless noGroupCommit.
	groups        groupCommitter
	noGroupCommit bool
	observer      Observer
	groupObserver GroupObserver
	// acquireTimeout is Options.AcquireTimeout.
	acquireTimeout time.Duration
}

var _ eventvault.Store = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and checks that its schema is up to date. It does not
// migrate: call Migrate first (`eventvault migrate`). The role in url must
// be able to switch to eventvault_app (a superuser, or a member of
// eventvault_app); in production it is a login role that is a member of
// eventvault_app and holds nothing itself (see the package documentation).
//
// Errors: EINVALID for a URL that does not parse; EUNAVAILABLE if the
// database cannot be reached; EINTERNAL if the schema is not at this
// package's version (behind or ahead).
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	const op = "postgres.Open"
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn redacts the password in parse errors.
		return nil, &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: urlProblem(url), Err: err}
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.BuildFrontend = bufferedFrontend
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerByteaArray(conn.TypeMap())
		return nil
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "eventvault"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapError(op, fmt.Errorf("create pool: %w", err))
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{pool: pool, log: log, noGroupCommit: opts.NoGroupCommit, observer: opts.Observer, acquireTimeout: opts.AcquireTimeout}
	if opts.Observer != nil {
		db.groupObserver = opts.Observer
	}
	if err := db.checkSchema(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// frontendReadBuffer is the size of the buffer a connection reads the
// server's messages through (bufferedFrontend).
const frontendReadBuffer = 64 << 10

// bufferedFrontend is pgx's protocol frontend reading through a buffer of
// frontendReadBuffer bytes. pgx's own reader asks the socket for at most
// the room left in its 8 KiB block, so a read-all page of 500 events
// (about 330 KB) took 50 to 60 read calls; through the buffer, each call
// takes whatever the socket holds, up to 64 KiB, and a page takes 15 to 25
// (measured on loopback), for one more copy of the bytes in memory. The
// frontend is the only reader of the connection once it is built.
func bufferedFrontend(r io.Reader, w io.Writer) *pgproto3.Frontend {
	return pgproto3.NewFrontend(bufio.NewReaderSize(r, frontendReadBuffer), w)
}

// checkSchema reads the schema version (goose's version table, as the app
// role) and fails unless it is the version this package needs: behind, the
// operator runs `eventvault migrate`; ahead, the server is older than the
// schema and might miss a fence or a trigger's contract a newer migration
// relies on, so it refuses too. It never migrates.
func (db *DB) checkSchema(ctx context.Context) error {
	const op = "postgres.checkSchema"
	want := latestVersion()
	var have int
	err := db.run(ctx, txSpec{op: op, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT coalesce(max(version_id), 0) FROM ` + versionTable).QueryRow(func(r pgx.Row) error {
			return r.Scan(&have)
		})
		return t.send(ctx, b, true)
	})
	var cause *dbError
	switch {
	case errors.As(err, &cause) && cause.code == sqlUndefinedTable:
		return &eventvault.Error{
			Code:    eventvault.EINTERNAL,
			Op:      op,
			Message: fmt.Sprintf("the database is not migrated (this server needs schema version %d): run `eventvault migrate` as the schema's owner", want),
			Err:     err,
		}
	case err != nil:
		return err
	case have < want:
		return &eventvault.Error{
			Code:    eventvault.EINTERNAL,
			Op:      op,
			Message: fmt.Sprintf("the database schema is at version %d, behind this server (%d): run `eventvault migrate` as the schema's owner", have, want),
		}
	case have > want:
		return &eventvault.Error{
			Code:    eventvault.EINTERNAL,
			Op:      op,
			Message: fmt.Sprintf("the database schema is at version %d, newer than this server knows (%d): upgrade the server", have, want),
		}
	}
	return nil
}

// Ping reports whether the database answers.
// Errors: EUNAVAILABLE.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: "postgres.Ping", Message: "the database is unreachable", Err: err}
	}
	return nil
}

// Close closes every connection of the pool. It waits for connections in use
// to be released.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// PoolStats are the connection pool's counters since Open: its size, the
// connections in use, and how often and how long transactions waited for
// one (the pool's queue).
type PoolStats struct {
	MaxConns, InUse int32
	// Acquires counts connections handed out; Waited those that had to
	// wait for one; Canceled the waits that ended with their context.
	Acquires, Waited, Canceled int64
	// Wait is the time spent waiting for connections, summed.
	Wait time.Duration
}

// PoolStats returns the pool's counters.
func (db *DB) PoolStats() PoolStats {
	s := db.pool.Stat()
	return PoolStats{MaxConns: s.MaxConns(), InUse: s.AcquiredConns(), Acquires: s.AcquireCount(), Waited: s.EmptyAcquireCount(),
		Canceled: s.CanceledAcquireCount(), Wait: s.AcquireDuration()}
}

// urlProblem is the message for a database URL that pgx cannot parse: what
// is wrong with it, when a common mistake explains it, never a part of the
// URL itself (it may hold a password).
func urlProblem(raw string) string {
	const base = "the database URL does not parse"
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") && strings.Contains(raw, "://") {
		return base + ": it must start with postgres:// or postgresql://"
	}
	u, err := neturl.Parse(raw)
	if err != nil && strings.Contains(err.Error(), "invalid port") {
		return base + ": its port is not a number from 0 to 65535"
	}
	if err != nil {
		return base + ": a character in it is not allowed there; a '%', '@', ':', '/' or '#' in the user name or password must be percent-encoded (%25, %40, %3A, %2F, %23)"
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return base + ": its port is not a number from 0 to 65535"
		}
	}
	switch m := u.Query().Get("sslmode"); m {
	case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		return base + ": sslmode must be disable, allow, prefer, require, verify-ca or verify-full"
	}
	return base + " (postgres://user:password@host:port/database?sslmode=...)"
}
