package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// insertPolicySQL inserts version $3 only if it follows the latest: it is
// 1, or version $3-1 exists. Versions have no gaps.
const insertPolicySQL = `INSERT INTO policies (tenant_id, name, version, body, deleted, created_by, created_at)
	SELECT $1::text, $2::text, $3::bigint, $4::text, $5::boolean, $6::text, $7::timestamptz
	WHERE $3::bigint = 1 OR EXISTS (SELECT 1 FROM policies WHERE tenant_id = $1::text AND name = $2::text AND version = $3::bigint - 1)`

const policyColumns = `tenant_id, name, version, coalesce(body, ''), deleted, created_by, created_at`

const latestPolicySQL = `SELECT ` + policyColumns + ` FROM policies
	WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1`

const policyVersionSQL = `SELECT ` + policyColumns + ` FROM policies
	WHERE tenant_id = $1 AND name = $2 AND version = $3`

const listPoliciesSQL = `SELECT ` + policyColumns + ` FROM (
		SELECT DISTINCT ON (name) * FROM policies WHERE tenant_id = $1 ORDER BY name, version DESC
	) latest WHERE NOT deleted ORDER BY name`

// AddPolicyVersion stores v, one more than the name's latest version.
// Errors: ECONFLICT if that version exists or the previous one does not
// (a concurrent write won); EINVALID for a malformed tenant; EERASED
// wrapping ErrTenantShredded for a shredded tenant.
func (db *DB) AddPolicyVersion(ctx context.Context, v eventvault.PolicyVersion) error {
	const op = "postgres.AddPolicyVersion"
	if err := eventvault.ValidateTenant(v.Tenant); err != nil {
		return err
	}
	if v.Version < 1 || v.Deleted != (v.Body == "") {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a policy version is 1 or more, and has a body unless it is a deletion"}
	}
	var body any = v.Body
	if v.Deleted {
		body = nil
	}
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: v.Tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(tenantLiveSQL, string(v.Tenant))
		// One statement, so that nothing is written when the previous
		// version is missing: a check in its own statement of the batch
		// would fail only after the batch's COMMIT had run.
		b.Queue(insertPolicySQL, string(v.Tenant), v.Name, v.Version, body, v.Deleted, v.CreatedBy, v.CreatedAt).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != 1 {
				return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("policy %s has no version %d to follow", v.Name, v.Version-1)}
			}
			return nil
		})
		return t.send(ctx, b, true)
	})
	if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
		return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("version %d of policy %s exists already", v.Version, v.Name), Err: err}
	}
	if errors.Is(err, eventvault.ErrTenantShredded) {
		return eventvault.TenantShreddedError(op, v.Tenant, err)
	}
	if err != nil {
		return fmt.Errorf("add version %d of policy %s: %w", v.Version, v.Name, err)
	}
	return nil
}

// LatestPolicyVersion returns the name's latest version, perhaps a
// deletion. Errors: ENOTFOUND if the name never existed.
func (db *DB) LatestPolicyVersion(ctx context.Context, tenant eventvault.TenantID, name string) (eventvault.PolicyVersion, error) {
	return db.onePolicy(ctx, "postgres.LatestPolicyVersion", tenant, name, latestPolicySQL, string(tenant), name)
}

// PolicyVersion returns one version of a document. Errors: ENOTFOUND.
func (db *DB) PolicyVersion(ctx context.Context, tenant eventvault.TenantID, name string, version int64) (eventvault.PolicyVersion, error) {
	return db.onePolicy(ctx, "postgres.PolicyVersion", tenant, name, policyVersionSQL, string(tenant), name, version)
}

func (db *DB) onePolicy(ctx context.Context, op string, tenant eventvault.TenantID, name, sql string, args ...any) (eventvault.PolicyVersion, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	var v eventvault.PolicyVersion
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		found = false
		b := &pgx.Batch{}
		b.Queue(sql, args...).QueryRow(func(r pgx.Row) error {
			var err error
			v, err = scanPolicy(r)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.PolicyVersion{}, fmt.Errorf("load policy %s: %w", name, err)
	}
	if !found {
		return eventvault.PolicyVersion{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no policy %s", tenant, name)}
	}
	return v, nil
}

// ListPolicies returns the latest version of each of the tenant's names
// that is not deleted, by name.
func (db *DB) ListPolicies(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.PolicyVersion, error) {
	const op = "postgres.ListPolicies"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.PolicyVersion
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = nil
		b := &pgx.Batch{}
		b.Queue(listPoliciesSQL, string(tenant)).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				v, err := scanPolicy(rows)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

func scanPolicy(r pgx.Row) (eventvault.PolicyVersion, error) {
	var v eventvault.PolicyVersion
	var tenant string
	if err := r.Scan(&tenant, &v.Name, &v.Version, &v.Body, &v.Deleted, &v.CreatedBy, &v.CreatedAt); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	v.Tenant = eventvault.TenantID(tenant)
	return v, nil
}
