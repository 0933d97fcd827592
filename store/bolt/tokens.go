package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// Tokens are global, not per tenant: authentication looks a token up by
// hash before any tenant is known.

// CreateToken stores t. Errors: ECONFLICT if its id or hash exists;
// EINVALID for an empty id or hash; EERASED wrapping ErrTenantShredded for
// a tenant's token of a shredded tenant.
func (db *DB) CreateToken(ctx context.Context, t eventvault.Token) error {
	const op = "bolt.CreateToken"
	if t.ID == "" || len(t.Hash) == 0 {
		return eventvault.Errorf(eventvault.EINVALID, "a token needs an id and a hash")
	}
	v, err := encodeToken(t)
	if err != nil {
		return internal(op, err)
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		if !t.Root {
			// A shredded tenant takes no new token (root tokens stay).
			if err := checkTenantLive(tx, op, t.Tenant); err != nil {
				return err
			}
		}
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		if tokens.Get(t.Hash) != nil || ids.Get([]byte(t.ID)) != nil {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("a token with id %s or the same hash exists", t.ID)}
		}
		if err := tokens.Put(clone(t.Hash), v); err != nil {
			return fmt.Errorf("put token %s: %w", t.ID, err)
		}
		return ids.Put([]byte(t.ID), clone(t.Hash))
	})
}

// TokenByHash returns the token with this hash. Errors: ENOTFOUND.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (eventvault.Token, error) {
	const op = "bolt.TokenByHash"
	notFound := &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no such token"}
	if len(hash) == 0 {
		return eventvault.Token{}, notFound
	}
	var t eventvault.Token
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(hash)
		if v == nil {
			return notFound
		}
		var err error
		t, err = decodeToken(hash, v)
		return err
	})
	if err != nil {
		return eventvault.Token{}, err
	}
	return t, nil
}

// DeleteRootTokens removes every root token and returns how many it
// removed.
func (db *DB) DeleteRootTokens(ctx context.Context) (int, error) {
	const op = "bolt.DeleteRootTokens"
	var n int
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		n = 0 // a retried transaction counts again
		tokens, ids := tx.Bucket(bucketTokens), tx.Bucket(bucketTokenIDs)
		var roots []eventvault.Token
		err := tokens.ForEach(func(k, v []byte) error {
			t, err := decodeToken(k, v)
			if err != nil {
				return err
			}
			if t.Root {
				roots = append(roots, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// bbolt forbids deleting while iterating, hence two passes.
		for _, t := range roots {
			if err := tokens.Delete(t.Hash); err != nil {
				return fmt.Errorf("delete token %s: %w", t.ID, err)
			}
			if h := ids.Get([]byte(t.ID)); h != nil && bytes.Equal(h, t.Hash) {
				if err := ids.Delete([]byte(t.ID)); err != nil {
					return fmt.Errorf("delete token id %s: %w", t.ID, err)
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
