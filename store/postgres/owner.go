package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

var _ eventvault.StreamOwners = (*DB)(nil)

// streamOwnerSQL reads the owner the first append that named one stored
// on the stream's row (migration 0003); the empty string for none.
const streamOwnerSQL = `SELECT coalesce(subject, '') FROM streams
	WHERE tenant_id = $1 AND name = $2`

// StreamOwner returns the pseudonym of the stream's owner, or an empty
// pseudonym if it has none, in the tenant's scope. A shredded or purged
// stream keeps its row, and so its owner.
// Errors: ENOTFOUND for a stream that never existed; EINVALID for a
// malformed tenant or stream name.
func (db *DB) StreamOwner(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.Pseudonym, error) {
	const op = "postgres.StreamOwner"
	if err := validateStreamKey(tenant, stream); err != nil {
		return "", err
	}
	var owner string
	var found bool
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		owner, found = "", false
		b := &pgx.Batch{}
		b.Queue(streamOwnerSQL, tenant, stream).QueryRow(func(r pgx.Row) error {
			err := r.Scan(&owner)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			return nil
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return "", fmt.Errorf("owner of stream %s: %w", stream, err)
	}
	if !found {
		return "", &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s does not exist", stream)}
	}
	return eventvault.Pseudonym(owner), nil
}
