package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

var _ eventvault.ErasureStore = (*DB)(nil)

// evictChannel is the channel ShredStream and ShredTenant notify, inside
// their transactions, so that every node drops the keys it caches: the
// payload is "<tenant>/<stream>" for a stream and "<tenant>" for a tenant.
const evictChannel = "eventvault_evict"

// shredStreamSQL destroys the stream's key: the key columns become NULL and
// the trigger of migration 0003 records the destroyed key's id. For a stream
// shredded before it changes nothing, so the first shred record stands.
const shredStreamSQL = `UPDATE streams SET
		shredded_at = coalesce(shredded_at, $3),
		key_id = NULL, key_version = NULL, kek_version = NULL, wrapped_key = NULL, key_created_at = NULL
	WHERE tenant_id = $1 AND name = $2
	RETURNING shredded_at, shredded_key_id, coalesce(subject, ''), purged_at IS NOT NULL`

// purgeStreamSQL deletes the events of the stream, through the SECURITY
// DEFINER function of migration 0003 (the app role cannot delete events).
// It calls nothing for a stream that does not exist.
const purgeStreamSQL = `SELECT eventvault_purge_stream(name, $3) FROM streams
	WHERE tenant_id = $1 AND name = $2`

const notifyStreamSQL = `SELECT pg_notify('` + evictChannel + `', tenant_id || '/' || name) FROM streams
	WHERE tenant_id = $1 AND name = $2`

// lockTenantStreamsSQL locks the tenant's live streams in name order, as a
// group commit locks its streams, before shredTenantStreamsSQL updates them
// in whatever order its plan reads them.
const lockTenantStreamsSQL = `SELECT 1 FROM streams
	WHERE tenant_id = $1 AND shredded_at IS NULL
	ORDER BY name
	FOR UPDATE`

// shredTenantStreamsSQL shreds every stream key of the tenant that lives.
const shredTenantStreamsSQL = `UPDATE streams SET
		shredded_at = $2,
		key_id = NULL, key_version = NULL, kek_version = NULL, wrapped_key = NULL, key_created_at = NULL
	WHERE tenant_id = $1 AND shredded_at IS NULL`

const markTenantShreddedSQL = `UPDATE tenants SET shredded_at = coalesce(shredded_at, $2)
	WHERE tenant_id = $1
	RETURNING shredded_at`

const destroyTenantKeysSQL = `SELECT eventvault_destroy_tenant_keys() FROM tenants WHERE tenant_id = $1`

const notifyTenantSQL = `SELECT pg_notify('` + evictChannel + `', tenant_id) FROM tenants WHERE tenant_id = $1`

// streamsOfSubjectSQL uses the partial index on (tenant_id, subject) and
// sorts by byte order, as the embedded store does.
const streamsOfSubjectSQL = `SELECT name FROM streams
	WHERE tenant_id = $1 AND subject = $2
	ORDER BY name COLLATE "C"`

// ShredStream destroys the stream's key at time at (NULL key columns, a
// shredded_at), and with purge deletes its events' rows too, in one
// transaction and one round trip that also notifies every node listening
// for evictions (ListenEvictions). The row stays: the stream is remembered
// as shredded, so CreateStreamKey never gives it a key again and appends
// are refused. Shredding again returns the first shred, purging now if
// asked. Purged events' global positions disappear from ReadAll.
//
// The key's ciphertext is gone from every table at once. PostgreSQL keeps
// the old row version on disk until VACUUM reclaims its space, and in WAL
// and backups until they are recycled: that copy is wrapped by the tenant
// KEK, and becomes undecryptable once the KEK version that wraps it is
// rotated out and retired (see docs/design.md, "Backups").
//
// Errors: ENOTFOUND for a stream that never existed; EINVALID for a
// malformed tenant or stream name.
func (db *DB) ShredStream(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, purge bool, at time.Time) (eventvault.Shred, error) {
	const op = "postgres.ShredStream"
	if err := validateStreamKey(tenant, stream); err != nil {
		return eventvault.Shred{}, err
	}
	at = stampOrNow(at)
	var s eventvault.Shred
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		s, found = eventvault.Shred{Stream: stream}, false
		b := &pgx.Batch{}
		b.Queue(shredStreamSQL, tenant, stream, at).QueryRow(func(r pgx.Row) error {
			var keyID *uuid.UUID
			var subject string
			err := r.Scan(&s.ShreddedAt, &keyID, &subject, &s.Purged)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			if keyID != nil {
				s.KeyID = *keyID
			}
			s.Subject = eventvault.Pseudonym(subject)
			return nil
		})
		if purge {
			b.Queue(purgeStreamSQL, tenant, stream, at)
		}
		b.Queue(notifyStreamSQL, tenant, stream)
		return t.send(ctx, b, true)
	})
	// A fast append at the stream's old key would seal for nothing.
	db.versions.forget(tenant, stream)
	if err != nil {
		return eventvault.Shred{}, fmt.Errorf("shred stream %s: %w", stream, err)
	}
	if !found {
		return eventvault.Shred{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s does not exist", stream)}
	}
	s.Purged = s.Purged || purge
	s.ShreddedAt = s.ShreddedAt.UTC()
	return s, nil
}

// ShredTenant destroys every KEK version of the tenant and every stream key
// it still has, and marks it shredded, in one transaction and one round
// trip that also notifies every node listening for evictions. From then on
// CreateTenantKey, AddTenantKey and CreateStreamKey refuse it (EERASED).
// It returns the ids of the KEKs destroyed, in the order of their first
// version (versions of one KEK share its id); shredding again returns the
// first record.
//
// The streams are locked in name order and shredded before the tenant's
// row is locked, and again after, so that the locks are taken in the order
// appends take them (streams in name order, then the tenant) and a stream
// key created meanwhile is shredded too. That second pass is the one
// exception to the store's lock order (doc.go): it can wait, holding the
// tenant's row, on a stream created meanwhile whose next append locked
// its row and waits for the tenant's; PostgreSQL breaks the cycle after
// deadlock_timeout, and the store runs again the transaction it aborted.
// Only a tenant being shredded waits.
//
// Errors: ENOTFOUND for a tenant the store has never held; EINVALID for a
// malformed tenant.
func (db *DB) ShredTenant(ctx context.Context, tenant eventvault.TenantID, at time.Time) (eventvault.TenantShred, error) {
	const op = "postgres.ShredTenant"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.TenantShred{}, err
	}
	at = stampOrNow(at)
	var s eventvault.TenantShred
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		s, found = eventvault.TenantShred{Tenant: tenant, KeyIDs: []uuid.UUID{}}, false
		b := &pgx.Batch{}
		b.Queue(lockTenantStreamsSQL, tenant)
		b.Queue(shredTenantStreamsSQL, tenant, at)
		b.Queue(markTenantShreddedSQL, tenant, at).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&s.ShreddedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		b.Queue(destroyTenantKeysSQL, tenant).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&s.KeyIDs)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		b.Queue(shredTenantStreamsSQL, tenant, at)
		b.Queue(notifyTenantSQL, tenant)
		return t.send(ctx, b, true)
	})
	db.versions.forgetTenant(tenant)
	if err != nil {
		return eventvault.TenantShred{}, fmt.Errorf("shred tenant %s: %w", tenant, err)
	}
	if !found {
		return eventvault.TenantShred{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s does not exist", tenant)}
	}
	if s.KeyIDs == nil {
		s.KeyIDs = []uuid.UUID{}
	}
	s.ShreddedAt = s.ShreddedAt.UTC()
	return s, nil
}

// StreamsOfSubject lists the streams the subject owns, shredded or not, in
// byte order of their names.
// Errors: EINVALID for a malformed tenant or an empty or over-long
// pseudonym.
func (db *DB) StreamsOfSubject(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) ([]eventvault.StreamName, error) {
	const op = "postgres.StreamsOfSubject"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return nil, err
	}
	var out []eventvault.StreamName
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = []eventvault.StreamName{}
		b := &pgx.Batch{}
		b.Queue(streamsOfSubjectSQL, tenant, string(subject)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					return err
				}
				out = append(out, eventvault.StreamName(name))
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("streams of a subject: %w", err)
	}
	return out, nil
}

// validateOwner checks the subject an append names, if any.
// Errors: EINVALID.
func validateOwner(subject eventvault.Pseudonym) error {
	if subject == "" {
		return nil
	}
	return eventvault.ValidatePseudonym(subject)
}

// stampOrNow is t truncated to the database's precision, or now for the
// zero time.
func stampOrNow(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
