package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// destroyKEKsBeforeSQL calls the SECURITY DEFINER function of migration
// 0004 (the app role cannot delete tenant keys). It acts on the tenant set
// for the transaction and answers NULL if that tenant has no KEK version
// >= $1.
const destroyKEKsBeforeSQL = `SELECT eventvault_destroy_tenant_keys_before($1::bigint)`

// DestroyTenantKeysBefore deletes every version of the tenant's KEK older
// than version and returns how many it deleted, through
// eventvault_destroy_tenant_keys_before (migration 0004). That function
// locks the tenant's row, refuses while a live stream key is wrapped under
// an older version, and raises the tenant's fence (kek_retired_before) so
// that no stream key is stored under a destroyed version afterwards, even
// by a CreateStreamKey that raced it. When it destroyed something, the
// same transaction notifies the tenant on the eviction channel, so that
// every node listening (ListenEvictions) drops its cached keys of the
// tenant as it commits. Two round trips.
//
// The deleted rows' old versions remain in the table's file until VACUUM
// reclaims them, and in WAL and backups: they are wrapped by the root key,
// so retiring the root versions that wrapped them finishes the job.
//
// Errors: ECONFLICT while a live stream key is wrapped under a version
// older than version (nothing is deleted); ENOTFOUND if the tenant has no
// KEK version >= version; EINVALID for a malformed tenant or version 0.
func (db *DB) DestroyTenantKeysBefore(ctx context.Context, tenant eventvault.TenantID, version uint32) (int, error) {
	const op = "postgres.DestroyTenantKeysBefore"
	if err := eventvault.ValidateKEKVersion(tenant, version); err != nil {
		return 0, err
	}
	var destroyed *int32
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		destroyed = nil
		b := &pgx.Batch{}
		b.Queue(destroyKEKsBeforeSQL, int64(version)).QueryRow(func(r pgx.Row) error { return r.Scan(&destroyed) })
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		if destroyed == nil || *destroyed == 0 {
			return nil
		}
		b = &pgx.Batch{}
		b.Queue(notifyTenantSQL, tenant)
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, fmt.Errorf("destroy the key versions of tenant %s older than %d: %w", tenant, version, err)
	}
	if destroyed == nil {
		return 0, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key version %d or newer: its newest version always stays", tenant, version)}
	}
	return int(*destroyed), nil
}
