package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// DeleteTenantTokens removes every token of the tenant that is not a root
// token, and returns how many it removed.
// Errors: EINVALID for a malformed tenant.
func (db *DB) DeleteTenantTokens(ctx context.Context, tenant eventvault.TenantID) (int, error) {
	const op = "bolt.DeleteTenantTokens"
	if err := validateTenant(tenant); err != nil {
		return 0, err
	}
	var n int
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		var gone []eventvault.Token
		err := tokens.ForEach(func(k, v []byte) error {
			t, err := decodeToken(k, v)
			if err != nil {
				return err
			}
			if !t.Root && t.Tenant == tenant {
				gone = append(gone, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// bbolt forbids deleting while iterating, hence two passes.
		for _, t := range gone {
			if err := tokens.Delete(t.Hash); err != nil {
				return fmt.Errorf("delete token %s: %w", t.ID, err)
			}
			if h := ids.Get([]byte(t.ID)); h != nil && bytes.Equal(h, t.Hash) {
				if err := ids.Delete([]byte(t.ID)); err != nil {
					return fmt.Errorf("delete token id %s: %w", t.ID, err)
				}
			}
		}
		n = len(gone)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
