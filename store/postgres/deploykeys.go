package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// Deployment keys belong to no tenant (migration 0005): the table has no
// row-level security, and eventvault_app may only SELECT and INSERT.

const deploymentKeySQL = `SELECT name, version, wrapped_key, created_at FROM deployment_keys
	WHERE name = $1 ORDER BY version DESC LIMIT 1`

// The insert leaves an existing key of that name alone; the select that
// follows in the same transaction returns whichever is stored.
const insertDeploymentKeySQL = `INSERT INTO deployment_keys (name, version, wrapped_key, created_at)
	SELECT $1, $2, $3, coalesce($4, now())
	WHERE NOT EXISTS (SELECT 1 FROM deployment_keys WHERE name = $1)
	ON CONFLICT DO NOTHING`

// DeploymentKey returns the newest version of the named key.
// Errors: ENOTFOUND; EINVALID for an empty name.
func (db *DB) DeploymentKey(ctx context.Context, name string) (eventvault.DeploymentKey, error) {
	const op = "postgres.DeploymentKey"
	if name == "" {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a deployment key needs a name"}
	}
	var k eventvault.DeploymentKey
	var found bool
	err := db.run(ctx, txSpec{op: op, readOnly: true}, func(ctx context.Context, t *txn) error {
		found = false
		b := &pgx.Batch{}
		b.Queue(deploymentKeySQL, name).QueryRow(func(r pgx.Row) error {
			var err error
			found, err = scanDeploymentKey(r, &k)
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.DeploymentKey{}, fmt.Errorf("read deployment key %s: %w", name, err)
	}
	if !found {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("no deployment key %s", name)}
	}
	return k, nil
}

// CreateDeploymentKey stores k unless a key of its name exists, and returns
// the stored one. Errors: EINVALID for an empty name, a zero version or no
// wrapped key.
func (db *DB) CreateDeploymentKey(ctx context.Context, k eventvault.DeploymentKey) (eventvault.DeploymentKey, error) {
	const op = "postgres.CreateDeploymentKey"
	if k.Name == "" || k.Version == 0 || len(k.Wrapped) == 0 {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a deployment key needs a name, a version and a wrapped key"}
	}
	var got eventvault.DeploymentKey
	var found bool
	err := db.run(ctx, txSpec{op: op, retryUnique: true}, func(ctx context.Context, t *txn) error {
		found = false
		b := &pgx.Batch{}
		b.Queue(insertDeploymentKeySQL, k.Name, int64(k.Version), k.Wrapped, nullTime(k.CreatedAt))
		b.Queue(deploymentKeySQL, k.Name).QueryRow(func(r pgx.Row) error {
			var err error
			found, err = scanDeploymentKey(r, &got)
			return err
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.DeploymentKey{}, fmt.Errorf("create deployment key %s: %w", k.Name, err)
	}
	if !found {
		return eventvault.DeploymentKey{}, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("deployment key %s was neither stored nor found", k.Name)}
	}
	return got, nil
}

func scanDeploymentKey(r pgx.Row, k *eventvault.DeploymentKey) (bool, error) {
	var version int64
	err := r.Scan(&k.Name, &version, &k.Wrapped, &k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if version <= 0 || version > int64(^uint32(0)) {
		return false, fmt.Errorf("deployment key %s has version %d, out of range", k.Name, version)
	}
	k.Version = uint32(version)
	return true, nil
}

const allDeploymentKeysSQL = `SELECT name, version, wrapped_key, created_at FROM deployment_keys ORDER BY name, version`

const rewrapDeploymentKeySQL = `UPDATE deployment_keys SET wrapped_key = $4
	WHERE name = $1 AND version = $2 AND wrapped_key = $3 RETURNING 1`

const deploymentKeyExistsSQL = `SELECT EXISTS (SELECT 1 FROM deployment_keys WHERE name = $1 AND version = $2)`

// DeploymentKeys returns every version of every deployment key.
func (db *DB) DeploymentKeys(ctx context.Context) ([]eventvault.DeploymentKey, error) {
	const op = "postgres.DeploymentKeys"
	var keys []eventvault.DeploymentKey
	err := db.run(ctx, txSpec{op: op, readOnly: true}, func(ctx context.Context, t *txn) error {
		keys = nil
		b := &pgx.Batch{}
		b.Queue(allDeploymentKeysSQL).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k eventvault.DeploymentKey
				if _, err := scanDeploymentKey(rows, &k); err != nil {
					return err
				}
				keys = append(keys, k)
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("list deployment keys: %w", err)
	}
	return keys, nil
}

// RewrapDeploymentKey swaps old's wrapped bytes for wrapped.
// Errors: ECONFLICT; ENOTFOUND; EINVALID.
func (db *DB) RewrapDeploymentKey(ctx context.Context, old eventvault.DeploymentKey, wrapped []byte) error {
	const op = "postgres.RewrapDeploymentKey"
	if old.Name == "" || old.Version == 0 || len(wrapped) == 0 {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a re-wrap needs a name, a version and a wrapped key"}
	}
	var swapped, exists bool
	err := db.run(ctx, txSpec{op: op}, func(ctx context.Context, t *txn) error {
		swapped, exists = false, false
		b := &pgx.Batch{}
		b.Queue(rewrapDeploymentKeySQL, old.Name, int64(old.Version), old.Wrapped, wrapped).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				swapped = true
			}
			return rows.Err()
		})
		b.Queue(deploymentKeyExistsSQL, old.Name, int64(old.Version)).QueryRow(func(r pgx.Row) error {
			return r.Scan(&exists)
		})
		return t.send(ctx, b, true)
	})
	switch {
	case err != nil:
		return fmt.Errorf("re-wrap deployment key %s version %d: %w", old.Name, old.Version, err)
	case swapped:
		return nil
	case !exists:
		return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("no deployment key %s version %d", old.Name, old.Version)}
	}
	return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("deployment key %s version %d changed since it was read", old.Name, old.Version)}
}
