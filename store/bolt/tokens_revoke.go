package bolt

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

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

// ListTokens returns the tenant's tokens that are not root tokens, oldest
// first. Errors: EINVALID for a malformed tenant.
func (db *DB) ListTokens(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.Token, error) {
	const op = "bolt.ListTokens"
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	out := []eventvault.Token{}
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			t, err := decodeToken(k, v)
			if err != nil {
				return err
			}
			if !t.Root && t.Tenant == tenant {
				out = append(out, t)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortTokens(out)
	return out, nil
}

func sortTokens(ts []eventvault.Token) {
	slices.SortFunc(ts, func(a, b eventvault.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// DeleteToken removes the tenant's non-root token with this id.
// Errors: ENOTFOUND; EINVALID for a malformed tenant.
func (db *DB) DeleteToken(ctx context.Context, tenant eventvault.TenantID, id string) error {
	const op = "bolt.DeleteToken"
	if err := validateTenant(tenant); err != nil {
		return err
	}
	notFound := &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no token %s", tenant, eventvault.Truncate(id, 40))}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		if id == "" {
			return notFound
		}
		h := ids.Get([]byte(id))
		if h == nil {
			return notFound
		}
		v := tokens.Get(h)
		if v == nil {
			return notFound
		}
		t, err := decodeToken(h, v)
		if err != nil {
			return err
		}
		if t.Root || t.Tenant != tenant || t.ID != id {
			return notFound
		}
		if err := tokens.Delete(t.Hash); err != nil {
			return fmt.Errorf("delete token %s: %w", t.ID, err)
		}
		return ids.Delete([]byte(id))
	})
}
