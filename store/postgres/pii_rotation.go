package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
)

// The KEK rotation of subject keys (migration 0009 keeps
// DestroyTenantKeysBefore from destroying a version a subject key needs).

const subjectKeysBeforeSQL = `SELECT subject, key_id, key_version, kek_version, wrapped_key, created_at
	FROM subject_keys
	WHERE tenant_id = $1 AND wrapped_key IS NOT NULL AND kek_version < $2 AND subject COLLATE "C" > $3
	ORDER BY subject COLLATE "C"
	LIMIT $4`

const rewrapSubjectKeySQL = `UPDATE subject_keys SET kek_version = $7, wrapped_key = $8
	WHERE tenant_id = $1 AND subject = $2 AND key_id = $3 AND key_version = $4 AND kek_version = $5 AND wrapped_key = $6 AND erased_at IS NULL`

// SubjectKeysBefore implements eventvault.PIIStore.
func (db *DB) SubjectKeysBefore(ctx context.Context, tenant eventvault.TenantID, kekVersion uint32, after eventvault.Pseudonym, limit int) ([]eventvault.SubjectKeyRow, error) {
	const op = "postgres.SubjectKeysBefore"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, eventvault.Errorf(eventvault.EINVALID, "limit is %d; it must be positive", limit)
	}
	var out []eventvault.SubjectKeyRow
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}, readOnly: true}, func(ctx context.Context, t *txn) error {
		out = nil
		b := &pgx.Batch{}
		b.Queue(subjectKeysBeforeSQL, tenant, int64(kekVersion), string(after), limit).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var s eventvault.Pseudonym
				var k storedKey
				if err := rows.Scan(&s, &k.id, &k.version, &k.kekVersion, &k.wrapped, &k.createdAt); err != nil {
					return err
				}
				wk, _ := k.wrappedKey()
				out = append(out, eventvault.SubjectKeyRow{Subject: s, Key: wk})
			}
			return rows.Err()
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return nil, fmt.Errorf("subject keys to re-wrap: %w", err)
	}
	return out, nil
}

// RewrapSubjectKey implements eventvault.PIIStore: a compare-and-swap.
func (db *DB) RewrapSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, old, next eventvault.WrappedKey) error {
	const op = "postgres.RewrapSubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	if err := eventvault.CheckSubjectRewrap(old, next); err != nil {
		return err
	}
	var n int64
	err := db.run(ctx, txSpec{op: op, scope: scope{tenant: tenant}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(rewrapSubjectKeySQL, tenant, string(subject), old.ID, int64(old.Version), int64(old.KEKVersion), old.Ciphertext, int64(next.KEKVersion), next.Ciphertext).Exec(rowsAffected(&n))
		return t.send(ctx, b, true)
	})
	if err != nil {
		return fmt.Errorf("re-wrap a subject key: %w", mapError(op, err))
	}
	if n == 1 {
		return nil
	}
	_, err = db.SubjectKey(ctx, tenant, subject)
	switch {
	case errors.Is(err, eventvault.ErrSubjectErased), eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
		return err
	case err != nil:
		return fmt.Errorf("re-wrap a subject key: %w", err)
	}
	return eventvault.RowChangedError(op, "the key of a data subject")
}
