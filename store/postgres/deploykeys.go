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
