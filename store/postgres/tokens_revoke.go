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

// listTokensSQL and deleteTokenSQL run in the tenant's scope, like
// deleteTenantTokensSQL: they never see a root token.
const listTokensSQL = `SELECT id, token_hash, tenant_id, name, root, rules, created_at, expires_at, policies FROM api_tokens
	WHERE tenant_id = $1 AND NOT root ORDER BY created_at, id`

const deleteTokenSQL = `WITH d AS (
		DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2 AND NOT root RETURNING 1
	) SELECT count(*) FROM d`

// ListTokens returns the tenant's tokens that are not root tokens, oldest
// first, in the tenant's scope. Errors: EINVALID for a malformed tenant.
func (db *DB) ListTokens(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Token, error) {
	const op = "postgres.ListTokens"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.Token
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = []eventvault.Token{}
		b := &pgx.Batch{}
		b.Queue(listTokensSQL, string(tenant)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				tok, err := scanToken(rows)
				if err != nil {
					return err
				}
				out = append(out, tok)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// DeleteToken removes the tenant's non-root token with this id, in the
// tenant's scope. Errors: ENOTFOUND, with nothing written (the audit
// record of ctx neither: the transaction is rolled back, as the embedded
// store's is); EINVALID for a malformed tenant.
func (db *DB) DeleteToken(ctx context.Context, tenant eventvault.TenantID, id string) error {
	const op = "postgres.DeleteToken"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	var n int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		n = 0
		b := &pgx.Batch{}
		b.Queue(deleteTokenSQL, string(tenant), id).QueryRow(func(r pgx.Row) error {
			return r.Scan(&n)
		})
		if err := t.send(ctx, b, false); err != nil {
			return err
		}
		if n == 0 {
			// Rolled back, with the revocation's audit record: the id of
			// a token that does not exist (which may be anything a
			// caller typed, a subject id too) is never recorded.
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no token %s", tenant, eventvault.Truncate(id, 40))}
		}
		return nil
	})
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return err
	}
	if err != nil {
		return fmt.Errorf("revoke token %s of tenant %s: %w", eventvault.Truncate(id, 40), tenant, err)
	}
	return nil
}
