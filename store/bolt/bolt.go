// Package bolt is EventVault's embedded store: the dev default, so that the
// server runs with no database to install. It keeps everything in one bbolt
// file (go.etcd.io/bbolt): pure Go, maintained by etcd, ACID transactions
// with a single writer. That single writer is what makes the store simple to
// get right: appends are serialised, so stream versions are checked and
// global positions assigned in commit order, and a reader paging the log by
// global position can never see N+1 before N. Reads run in read-only
// transactions on a consistent snapshot. The store holds ciphertext and
// wrapped keys only.
//
// Layout (keys big-endian so that byte order is numeric order):
//
//	meta                           "layout" → layout version (1);
//	                               "scrub" → present while a shred awaits scrubbing
//	tokens                         token hash → token record (JSON)
//	token_ids                      token id → token hash
//	tenants/<tenant>/
//	    keks                       KEK version (uint32) → wrapped key (JSON)
//	    streams                    stream name → version, wrapped key, owner and
//	                               shred record (JSON)
//	    events/<stream>/           position (uint64) → event record (binary)
//	    log                        global position (uint64) → position + stream name
//	    ids                        event id (16 bytes) → position + stream name
//	erasure/<tenant>/
//	    "tenant_shred"             the tenant's shred record (JSON), once shredded
//	    "kek_retired_before"       KEK version (uint32) below which every version was
//	                               destroyed; no stream key is stored under one
//	    subjects/<pseudonym>/      stream name → 1: the streams a subject owns
//	    holds                      pseudonym → legal hold (JSON)
//	    requests                   request id (16 bytes) → erasure request (JSON)
//	pii/<tenant>/                  personal data kept apart (pii.go)
//	    subject_keys               pseudonym → subject key record (JSON): the wrapped
//	                               key, or once erased only its id and the time
//	    values                     token || 0 || version (uint64) → sealed value (JSON)
//	    by_subject                 pseudonym || 0 || token → empty: a subject's tokens
//	    restrictions               pseudonym → restriction (JSON)
//
// The log bucket's sequence is the tenant's next global position. The
// event record is binary (see records.go): a format byte, the id, the
// global position, the recorded time in microseconds, the type, the content
// MAC and the payload.
//
// A second process opening the same file waits at most the lock timeout
// and then fails with ErrLocked, rather than hanging.
//
// bbolt never overwrites a page in place: a shredded key's old page stays in
// the file, free but readable, until it is reused. So a shred marks the file
// "to scrub" in the same transaction, and the store then rewrites the file
// with its live data only (scrub.go); a crash before that is caught up on at
// the next Open.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/eventvault/eventvault"
)

// DefaultLockTimeout is how long Open waits for another process to release
// the file.
const DefaultLockTimeout = time.Second

// layoutVersion is the version of the bucket layout this package writes.
const layoutVersion = 1

// ErrLocked is the cause of Open's error when another process holds the file.
var ErrLocked = errors.New("database is locked by another process")

var (
	bucketMeta     = []byte("meta")
	bucketTokens   = []byte("tokens")
	bucketTokenIDs = []byte("token_ids")
	bucketTenants  = []byte("tenants")
	bucketErasure  = []byte("erasure")
	// bucketPolicies holds a bucket per tenant, a bucket per document name
	// in it, and each version under its number (8 bytes, big-endian).
	bucketPolicies = []byte("policies")
	// bucketAudit holds a bucket per audit log (the tenant's id, or
	// auditDeployment for the deployment's own), each with the buckets
	// records, hashes and checkpoints (keys: 8-byte big-endian indexes
	// or sizes).
	bucketAudit = []byte("audit")
	// bucketDeploymentKeys holds the wrapped deployment keys by name
	// (deploykeys.go); created in files of any layout, as it is new.
	bucketDeploymentKeys = []byte("deployment_keys")

	bucketKEKs    = []byte("keks")
	bucketStreams = []byte("streams")
	bucketEvents  = []byte("events")
	bucketLog     = []byte("log")
	bucketIDs     = []byte("ids")

	keyLayout = []byte("layout")
)

// DB is an EventVault store in one bbolt file. It implements
// eventvault.Store and is safe for concurrent use.
type DB struct {
	// mu guards the bbolt handle, which a scrub replaces: transactions hold
	// it shared, a scrub and Close exclusively.
	mu   sync.RWMutex
	bolt *bbolt.DB
	// scrubs counts the handles a scrub replaced (under mu): a new file's
	// transaction ids start over, so the PII generation counts it too.
	scrubs int64
	path   string
	opts   bbolt.Options
	now    func() time.Time
	// scrubPending mirrors meta's "scrub" key: a shred committed and the
	// file still holds the destroyed key's old pages.
	scrubPending atomic.Bool
}

var _ eventvault.Store = (*DB)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	lockTimeout time.Duration
	now         func() time.Time
}

// WithLockTimeout sets how long Open waits for another process to release
// the file (DefaultLockTimeout if unset).
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) { o.lockTimeout = d }
}

// WithClock sets the clock that stamps recorded_at (time.Now if unset).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Open opens the store in the file at path, creating it (mode 0600) if it
// does not exist. Errors: EUNAVAILABLE, with ErrLocked as the cause if
// another process holds the file; EINTERNAL for a file this package cannot
// read.
func Open(path string, opts ...Option) (*DB, error) {
	const op = "bolt.Open"
	o := options{lockTimeout: DefaultLockTimeout, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	bopts := bbolt.Options{Timeout: o.lockTimeout}
	bdb, err := bbolt.Open(path, 0o600, &bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &eventvault.Error{
			Code:    eventvault.EUNAVAILABLE,
			Op:      op,
			Message: fmt.Sprintf("open %s: the database is locked by another process (is an EventVault server running on this file? The embedded store is one process's: stop that server first, or do this through its HTTP API)", path),
			Err:     ErrLocked,
		}
	}
	if err != nil {
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("open %s", path), Err: err}
	}
	db := &DB{bolt: bdb, path: path, opts: bopts, now: o.now}
	if err := db.init(); err != nil {
		bdb.Close()
		return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("open %s", path), Err: err}
	}
	if err := db.scrub(); err != nil {
		db.Close()
		return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("open %s: finish scrubbing a shred", path), Err: err}
	}
	return db, nil
}

// init creates the top-level buckets and checks the layout version.
func (db *DB) init() error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketTokens, bucketTokenIDs, bucketTenants, bucketErasure, bucketDeploymentKeys, bucketPolicies, bucketAudit, bucketPII} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		db.scrubPending.Store(meta.Get(keyScrub) != nil)
		v := meta.Get(keyLayout)
		if v == nil {
			return meta.Put(keyLayout, be64(layoutVersion))
		}
		if len(v) != 8 || int64(u64(v)) != layoutVersion {
			return fmt.Errorf("the file has layout version %x; this build reads version %d", v, layoutVersion)
		}
		return nil
	})
}

// Close closes the file. Closing twice is harmless.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.bolt.Close(); err != nil {
		return internal("bolt.Close", err)
	}
	return nil
}

// Ping reports whether the store can serve. Errors: EUNAVAILABLE once
// closed.
func (db *DB) Ping(ctx context.Context) error {
	return db.view(ctx, "bolt.Ping", func(*bbolt.Tx) error { return nil })
}

// view runs fn in a read-only transaction.
func (db *DB) view(ctx context.Context, op string, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	return storeError(op, db.bolt.View(fn))
}

// update runs fn in the write transaction. The context is checked again
// once the writer lock is held, so that a caller who gave up while waiting
// writes nothing.
func (db *DB) update(ctx context.Context, op string, fn func(*bbolt.Tx) error) error {
	return db.updateIf(ctx, op, func(tx *bbolt.Tx) (bool, error) { return true, fn(tx) })
}

// updateIf is update for an action that may find nothing to do: when fn
// reports that it did nothing, the audit records ctx carries are not
// written either, since they tell of what was done.
func (db *DB) updateIf(ctx context.Context, op string, fn func(*bbolt.Tx) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	var written []func()
	err := storeError(op, db.bolt.Update(func(tx *bbolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		did, err := fn(tx)
		if err != nil || !did {
			return err
		}
		// The audit records of the action commit with it, or neither does.
		if a := eventvault.AuditFrom(ctx); a != nil {
			if lines, ok := a.Take(); ok {
				first, err := appendAudit(tx, a.Tenant, lines)
				if err != nil {
					return err
				}
				written = append(written, func() { a.Written(first) })
			}
		}
		return nil
	}))
	if err == nil {
		for _, f := range written {
			f()
		}
	}
	return err
}

// storeError maps what a transaction returned to EventVault's errors.
// Errors that already carry a code (the store's own, or a Seal's) and
// context errors pass through; bbolt's become EUNAVAILABLE or EINTERNAL.
func storeError(op string, err error) error {
	var e *eventvault.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: "the embedded store is closed", Err: err}
	default:
		return internal(op, err)
	}
}

func internal(op string, err error) error {
	return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err}
}

// tenantBuckets are one tenant's buckets.
type tenantBuckets struct {
	keks, streams, events, log, ids *bbolt.Bucket
}

// readTenant returns the tenant's buckets, or nil if it has never written.
func readTenant(tx *bbolt.Tx, tenant eventvault.TenantID) *tenantBuckets {
	tb := tx.Bucket(bucketTenants).Bucket([]byte(tenant))
	if tb == nil {
		return nil
	}
	return &tenantBuckets{
		keks:    tb.Bucket(bucketKEKs),
		streams: tb.Bucket(bucketStreams),
		events:  tb.Bucket(bucketEvents),
		log:     tb.Bucket(bucketLog),
		ids:     tb.Bucket(bucketIDs),
	}
}

// writeTenant returns the tenant's buckets, creating them on first write.
func writeTenant(tx *bbolt.Tx, tenant eventvault.TenantID) (*tenantBuckets, error) {
	tb, err := tx.Bucket(bucketTenants).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return nil, fmt.Errorf("create bucket of tenant %s: %w", tenant, err)
	}
	var bs [5]*bbolt.Bucket
	for i, name := range [][]byte{bucketKEKs, bucketStreams, bucketEvents, bucketLog, bucketIDs} {
		if bs[i], err = tb.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("create bucket %s of tenant %s: %w", name, tenant, err)
		}
	}
	return &tenantBuckets{keks: bs[0], streams: bs[1], events: bs[2], log: bs[3], ids: bs[4]}, nil
}

// stream returns the stream's record, or false if it has none.
func (tb *tenantBuckets) stream(name eventvault.StreamName) (streamRecord, bool, error) {
	v := tb.streams.Get([]byte(name))
	if v == nil {
		return streamRecord{}, false, nil
	}
	rec, err := decodeStream(v)
	if err != nil {
		return streamRecord{}, false, fmt.Errorf("stream %s: %w", name, err)
	}
	return rec, true, nil
}

func (tb *tenantBuckets) putStream(name eventvault.StreamName, rec streamRecord) error {
	v, err := encodeStream(rec)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	return tb.streams.Put([]byte(name), v)
}

// validateTenant checks a tenant name, which becomes a bucket key.
// Errors: EINVALID.
func validateTenant(tenant eventvault.TenantID) error {
	return eventvault.ValidateTenant(tenant)
}

// validateStream checks a tenant and a stream name, both bucket keys.
// Errors: EINVALID.
func validateStream(tenant eventvault.TenantID, stream eventvault.StreamName) error {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	return eventvault.ValidateStream(stream)
}
