package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// deleteTenantTokensSQL runs in the tenant's scope, whose row-level
// security policy on api_tokens (migration 0001) sees the tenant's tokens
// but never a root token; NOT root says so again.
const deleteTenantTokensSQL = `WITH d AS (
		DELETE FROM api_tokens WHERE tenant_id = $1 AND NOT root RETURNING 1
	) SELECT count(*) FROM d`

// DeleteTenantTokens removes every token of the tenant that is not a root
// token, in the tenant's scope, and returns how many it removed.
// Errors: EINVALID for a malformed tenant.
func (db *DB) DeleteTenantTokens(ctx context.Context, tenant eventvault.TenantID) (int, error) {
	const op = "postgres.DeleteTenantTokens"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	var n int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		n = 0
		b := &pgx.Batch{}
		b.Queue(deleteTenantTokensSQL, string(tenant)).QueryRow(func(r pgx.Row) error {
			return r.Scan(&n)
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, fmt.Errorf("delete tokens of tenant %s: %w", tenant, err)
	}
	return int(n), nil
}
