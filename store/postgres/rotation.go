package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

const tenantKeyVersionSQL = `SELECT version, key_id, wrapped, created_at FROM tenant_keys
	WHERE tenant_id = $1 AND version = $2`

// addTenantKeySQL inserts version $2 only if the newest stored is $2 - 1.
// The caller locks the tenant's row first, so that a second rotation waits
// for the first to commit and then finds its version taken.
const addTenantKeySQL = `INSERT INTO tenant_keys (tenant_id, version, key_id, wrapped, created_at)
	SELECT $1::text, $2::bigint, $3::uuid, $4::bytea, coalesce($5::timestamptz, now())
	WHERE (SELECT max(version) FROM tenant_keys WHERE tenant_id = $1) = $2::bigint - 1
	ON CONFLICT DO NOTHING`

const newestKEKVersionSQL = `SELECT max(version) FROM tenant_keys WHERE tenant_id = $1`

const rewrapTenantKeySQL = `UPDATE tenant_keys SET wrapped = $5
	WHERE tenant_id = $1 AND version = $2 AND key_id = $3 AND wrapped = $4`

const kekVersionExistsSQL = `SELECT EXISTS (SELECT 1 FROM tenant_keys WHERE tenant_id = $1 AND version = $2)`

const tenantsSQL = `SELECT tenant_id FROM tenants ORDER BY tenant_id`

// streamKeysBeforeSQL pages through the primary key (tenant_id, name) in
// its own collation, so that each page starts where the last ended.
const streamKeysBeforeSQL = `SELECT name, ` + keyColumns + ` FROM streams
	WHERE tenant_id = $1 AND name > $2 AND wrapped_key IS NOT NULL AND kek_version < $3
	ORDER BY name
	LIMIT $4`

const rewrapStreamKeySQL = `UPDATE streams SET kek_version = $7, wrapped_key = $8
	WHERE tenant_id = $1 AND name = $2 AND key_id = $3 AND key_version = $4
	AND kek_version = $5 AND wrapped_key = $6`

// TenantKeyVersion returns one version of the tenant's wrapped KEK.
// Errors: ENOTFOUND if the tenant has no such version; EINVALID for a
// malformed tenant or version 0.
func (db *DB) TenantKeyVersion(ctx context.Context, tenant eventvault.TenantID, version uint32) (eventvault.WrappedKey, error) {
	const op = "postgres.TenantKeyVersion"
	if err := eventvault.ValidateKEKVersion(tenant, version); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(tenantKeyVersionSQL, tenant, int64(version)).QueryRow(scanTenantKey(&k, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("key version %d of tenant %s: %w", version, tenant, err)
	}
	if !found {
		return eventvault.WrappedKey{}, eventvault.NoKEKVersionError(op, tenant, version)
	}
	return k, nil
}

// AddTenantKey stores k as the tenant's newest KEK version; k.Version must
// be the newest stored plus one. One round trip.
// Errors: ENOTFOUND if the tenant has no KEK; ECONFLICT if k.Version is not
// the newest plus one; EINVALID for a malformed tenant, version or key.
func (db *DB) AddTenantKey(ctx context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) error {
	const op = "postgres.AddTenantKey"
	if err := eventvault.ValidateKEKVersion(tenant, k.Version); err != nil {
		return err
	}
	if len(k.Ciphertext) == 0 {
		return eventvault.Errorf(eventvault.EINVALID, "a tenant key needs a ciphertext")
	}
	var added int64
	var newest *int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(lockTenantSQL, tenant)
		b.Queue(addTenantKeySQL, tenant, int64(k.Version), k.ID, k.Ciphertext, nullTime(k.CreatedAt)).Exec(rowsAffected(&added))
		b.Queue(newestKEKVersionSQL, tenant).QueryRow(func(r pgx.Row) error { return r.Scan(&newest) })
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return fmt.Errorf("add key version %d of tenant %s: %w", k.Version, tenant, err)
	case added == 1:
		return nil
	case newest == nil:
		return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet", tenant)}
	default:
		return &eventvault.Error{
			Code: eventvault.ECONFLICT, Op: op,
			Message: fmt.Sprintf("cannot add version %d of the key of tenant %s: its newest version is %d (another rotation ran meanwhile)", k.Version, tenant, *newest),
			Fields:  map[string]any{"newest_version": *newest},
		}
	}
}

// RewrapTenantKey replaces the ciphertext of one KEK version if the stored
// row still equals old. One round trip.
// Errors: ECONFLICT if the row changed; ENOTFOUND if the version is gone;
// EINVALID if next changes the id or version.
func (db *DB) RewrapTenantKey(ctx context.Context, tenant eventvault.TenantID, old, next eventvault.WrappedKey) error {
	const op = "postgres.RewrapTenantKey"
	if err := eventvault.ValidateKEKVersion(tenant, old.Version); err != nil {
		return err
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	var updated int64
	var exists bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(rewrapTenantKeySQL, tenant, int64(old.Version), old.ID, old.Ciphertext, next.Ciphertext).Exec(rowsAffected(&updated))
		b.Queue(kekVersionExistsSQL, tenant, int64(old.Version)).QueryRow(func(r pgx.Row) error { return r.Scan(&exists) })
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return fmt.Errorf("rewrap key version %d of tenant %s: %w", old.Version, tenant, err)
	case updated == 1:
		return nil
	case !exists:
		return eventvault.NoKEKVersionError(op, tenant, old.Version)
	default:
		return eventvault.RowChangedError(op, fmt.Sprintf("version %d of the key of tenant %s", old.Version, tenant))
	}
}

// Tenants returns every tenant, in name order. It runs in the admin scope,
// whose row-level security policy shows the tenants table and nothing else.
func (db *DB) Tenants(ctx context.Context) ([]eventvault.TenantID, error) {
	const op = "postgres.Tenants"
	var out []eventvault.TenantID
	err := db.run(ctx, txSpec{op: op, scope: scope{admin: true}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = out[:0]
		b := &pgx.Batch{}
		b.Queue(tenantsSQL).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				out = append(out, eventvault.TenantID(id))
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// StreamKeysBefore returns up to limit live stream keys of the tenant
// wrapped under a KEK version below kekVersion, of streams named after
// after, in the order of the streams' primary key.
// Errors: EINVALID for a malformed tenant or a limit that is not positive.
func (db *DB) StreamKeysBefore(ctx context.Context, tenant eventvault.TenantID, kekVersion uint32, after eventvault.StreamName, limit int) ([]eventvault.StreamKeyRow, error) {
	const op = "postgres.StreamKeysBefore"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, eventvault.Errorf(eventvault.EINVALID, "limit must be positive, not %d", limit)
	}
	var out []eventvault.StreamKeyRow
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = out[:0]
		b := &pgx.Batch{}
		b.Queue(streamKeysBeforeSQL, tenant, string(after), int64(kekVersion), limit).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var name string
				var k storedKey
				if err := rows.Scan(&name, &k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt); err != nil {
					return err
				}
				if wk, ok := k.wrappedKey(); ok {
					out = append(out, eventvault.StreamKeyRow{Stream: eventvault.StreamName(name), Key: wk})
				}
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("stream keys of tenant %s before KEK version %d: %w", tenant, kekVersion, err)
	}
	return out, nil
}

// RewrapStreamKey replaces a stream's wrapped key if the stored row still
// equals old. One round trip. The row keeps its key id, key version and
// time; a trigger (migration 0002) refuses any update that does not move the
// key to a newer KEK version, or that would give a shredded stream a key.
// Errors: ECONFLICT if the row changed; ENOTFOUND if the stream has no key;
// EERASED if it was shredded; EINVALID if next changes the id or version,
// or does not move to a newer KEK version.
func (db *DB) RewrapStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, old, next eventvault.WrappedKey) error {
	const op = "postgres.RewrapStreamKey"
	if err := validateStreamKey(tenant, stream); err != nil {
		return err
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	if next.KEKVersion <= old.KEKVersion {
		return eventvault.Errorf(eventvault.EINVALID, "the key of stream %s can only be re-wrapped under a newer KEK version than %d, not %d", stream, old.KEKVersion, next.KEKVersion)
	}
	var updated int64
	var stored storedKey
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(rewrapStreamKeySQL, tenant, stream, old.ID, int64(old.Version), int64(old.KEKVersion), old.Ciphertext,
			int64(next.KEKVersion), next.Ciphertext).Exec(rowsAffected(&updated))
		b.Queue(streamKeySQL, tenant, stream).QueryRow(scanStreamKey(&stored, &found))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("rewrap key of stream %s: %w", stream, err)
	}
	if updated == 1 {
		return nil
	}
	if _, err := streamKeyResult(op, stream, stored, found); err != nil {
		return err
	}
	return eventvault.RowChangedError(op, "the key of stream "+string(stream))
}

func rowsAffected(n *int64) func(pgconn.CommandTag) error {
	return func(ct pgconn.CommandTag) error {
		*n = ct.RowsAffected()
		return nil
	}
}
