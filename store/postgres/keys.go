package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

const newestTenantKeySQL = `SELECT version, key_id, wrapped, created_at FROM tenant_keys
	WHERE tenant_id = $1
	ORDER BY version DESC
	LIMIT 1`

const ensureTenantSQL = `INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT (tenant_id) DO NOTHING`

// lockTenantSQL serialises the creation of a tenant's first KEK, so that
// two creators proposing different versions cannot both insert. NO KEY
// UPDATE, like an append's, leaves foreign key checks unblocked. A tenant
// that was shredded fails it with EERASED (migration 0003): it never gets a
// KEK again.
const lockTenantSQL = `SELECT eventvault_check_tenant_live(tenant_id, shredded_at) FROM tenants WHERE tenant_id = $1 FOR NO KEY UPDATE`

const insertTenantKeySQL = `INSERT INTO tenant_keys (tenant_id, version, key_id, wrapped, created_at)
	SELECT $1::text, $2::bigint, $3::uuid, $4::bytea, coalesce($5::timestamptz, now())
	WHERE NOT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant_id = $1)
	ON CONFLICT DO NOTHING`

// insertStreamKeySQL inserts the stream's row with its first key unless it
// has one. The NOT EXISTS sees a committed row, and the insert then never
// reaches the unique index: ON CONFLICT alone would wait for a transaction
// that updated the row (an append setting the stream's owner, a shred),
// and an append carrying the first key holds the tenant's row meanwhile,
// which that transaction may be waiting for (doc.go, "Lock order").
const insertStreamKeySQL = `INSERT INTO streams (tenant_id, name, key_id, key_version, kek_version, wrapped_key, key_created_at)
	SELECT $1::text, $2::text, $3::uuid, $4::bigint, $5::bigint, $6::bytea, coalesce($7::timestamptz, now())
	WHERE NOT EXISTS (SELECT 1 FROM streams WHERE tenant_id = $1::text AND name = $2::text)
	ON CONFLICT (tenant_id, name) DO NOTHING`

const streamKeySQL = `SELECT ` + keyColumns + ` FROM streams
	WHERE tenant_id = $1 AND name = $2`

// TenantKey returns the newest version of the tenant's wrapped KEK.
// Errors: ENOTFOUND if the tenant has none yet.
func (db *DB) TenantKey(ctx context.Context, tenant eventvault.TenantID) (eventvault.WrappedKey, error) {
	const op = "postgres.TenantKey"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(newestTenantKeySQL, tenant).QueryRow(scanTenantKey(&k, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("tenant key of %s: %w", tenant, err)
	}
	if !found {
		return eventvault.WrappedKey{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet", tenant)}
	}
	return k, nil
}

// CreateTenantKey stores k as the tenant's KEK unless the tenant has one (of
// any version), and returns the newest one stored: k, or the one that won a
// race. One round trip.
// Errors: EERASED if the tenant was shredded.
func (db *DB) CreateTenantKey(ctx context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "postgres.CreateTenantKey"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var stored eventvault.WrappedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(lockTenantSQL, tenant)
		b.Queue(insertTenantKeySQL, tenant, int64(k.Version), k.ID, k.Ciphertext, nullTime(k.CreatedAt))
		// A statement of its own, so that at READ COMMITTED it sees a key
		// that a concurrent creator committed first.
		b.Queue(newestTenantKeySQL, tenant).QueryRow(scanTenantKey(&stored, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("create tenant key of %s: %w", tenant, err)
	}
	if !found {
		return eventvault.WrappedKey{}, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: "the tenant key was not stored"}
	}
	return stored, nil
}

// StreamKey returns the stream's wrapped data key.
// Errors: ENOTFOUND if the stream has no key yet; EERASED if it was
// shredded, wrapping ErrTenantShredded if its tenant was.
func (db *DB) StreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.WrappedKey, error) {
	const op = "postgres.StreamKey"
	if err := validateStreamKey(tenant, stream); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k storedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(streamKeySQL, tenant, stream).QueryRow(scanStreamKey(&k, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("stream key of %s: %w", stream, err)
	}
	wk, err := streamKeyResult(op, stream, k, found)
	if eventvault.ErrorCode(err) == eventvault.EERASED {
		// Shredded (rare): alone, or with its tenant, which a caller
		// must not be told to work around with another stream.
		if shredded, terr := db.tenantShredded(ctx, tenant); terr != nil {
			return eventvault.WrappedKey{}, terr
		} else if shredded {
			return eventvault.WrappedKey{}, eventvault.TenantShreddedError(op, tenant, err)
		}
	}
	return wk, err
}

const tenantShreddedSQL = `SELECT shredded_at IS NOT NULL FROM tenants WHERE tenant_id = $1`

// tenantShredded reports whether tenant was shredded (false for a tenant
// without a row).
func (db *DB) tenantShredded(ctx context.Context, tenant eventvault.TenantID) (bool, error) {
	var shredded bool
	err := db.run(ctx, txSpec{op: "postgres.tenantShredded", scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(tenantShreddedSQL, tenant).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&shredded)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return false, fmt.Errorf("shred state of tenant %s: %w", tenant, err)
	}
	return shredded, nil
}

// CreateStreamKey stores k as the stream's key unless the stream has one,
// creating the stream's row at version -1, and returns the key stored: k, or
// the one that won a race. One round trip. A shredded stream, or any stream
// of a shredded tenant, never gets a key again.
// Errors: EERASED if the stream or its tenant was shredded.
func (db *DB) CreateStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "postgres.CreateStreamKey"
	if err := validateStreamKey(tenant, stream); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var stored storedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(ensureTenantSQL, tenant)
		b.Queue(insertStreamKeySQL, tenant, stream, k.ID, int64(k.Version), int64(k.KEKVersion), k.Ciphertext, nullTime(k.CreatedAt))
		b.Queue(streamKeySQL, tenant, stream).QueryRow(scanStreamKey(&stored, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("create stream key of %s: %w", stream, err)
	}
	return streamKeyResult(op, stream, stored, found)
}

func validateStreamKey(tenant eventvault.TenantID, stream eventvault.StreamName) error {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	return eventvault.ValidateStream(stream)
}

func scanTenantKey(k *eventvault.WrappedKey, found *bool) func(pgx.Row) error {
	return func(r pgx.Row) error {
		var version int64
		err := r.Scan(&version, &k.ID, &k.Ciphertext, &k.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		k.Version = uint32(version)
		*found = true
		return nil
	}
}

func scanStreamKey(k *storedKey, found *bool) func(pgx.Row) error {
	return func(r pgx.Row) error {
		err := r.Scan(&k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		*found = err == nil
		return err
	}
}

func streamKeyResult(op string, stream eventvault.StreamName, k storedKey, found bool) (eventvault.WrappedKey, error) {
	if !found {
		return eventvault.WrappedKey{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s has no key yet", stream)}
	}
	wk, ok := k.wrappedKey()
	if !ok {
		return eventvault.WrappedKey{}, &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: fmt.Sprintf("stream %s was shredded", stream)}
	}
	return wk, nil
}

// nullTime is nil for the zero time, so that the database stamps it.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
