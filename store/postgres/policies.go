package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

const insertPolicySQL = `INSERT INTO policies (tenant_id, name, version, body, deleted, created_by, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7)`

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
// (a concurrent write won); EINVALID for a malformed tenant.
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
		if v.Version > 1 {
			// The previous version must be there: versions have no gaps.
			b.Queue(`SELECT 1 FROM policies WHERE tenant_id = $1 AND name = $2 AND version = $3`, string(v.Tenant), v.Name, v.Version-1).QueryRow(func(r pgx.Row) error {
				var one int
				if err := r.Scan(&one); errors.Is(err, pgx.ErrNoRows) {
					return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("policy %s has no version %d to follow", v.Name, v.Version-1)}
				} else if err != nil {
					return err
				}
				return nil
			})
		}
		b.Queue(insertPolicySQL, string(v.Tenant), v.Name, v.Version, body, v.Deleted, v.CreatedBy, v.CreatedAt)
		return t.send(ctx, b, true)
	})
	if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
		return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("version %d of policy %s exists already", v.Version, v.Name), Err: err}
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
