package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

var _ eventvault.StreamOwners = (*DB)(nil)

// StreamOwner returns the pseudonym of the stream's owner as its record
// keeps it (set by the first append that names one), or an empty pseudonym
// if it has none. A shredded or purged stream keeps its record, and so its
// owner.
// Errors: ENOTFOUND for a stream that never existed; EINVALID for a
// malformed tenant or stream name.
func (db *DB) StreamOwner(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.Pseudonym, error) {
	const op = "bolt.StreamOwner"
	if err := validateStream(tenant, stream); err != nil {
		return "", err
	}
	var owner eventvault.Pseudonym
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		_, rec, err := existingStream(tx, op, tenant, stream, noStream)
		if err != nil {
			return err
		}
		owner = rec.Subject
		return nil
	})
	if err != nil {
		return "", err
	}
	return owner, nil
}
