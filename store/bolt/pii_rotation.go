package bolt

import (
	"context"
	"encoding/json"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// The KEK rotation of subject keys: re-wraps, and the count that keeps
// DestroyTenantKeysBefore from destroying a version a subject key needs.

// SubjectKeysBefore implements eventvault.PIIStore.
func (db *DB) SubjectKeysBefore(ctx context.Context, tenant eventvault.TenantID, kekVersion uint32, after eventvault.Pseudonym, limit int) ([]eventvault.SubjectKeyRow, error) {
	const op = "bolt.SubjectKeysBefore"
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, eventvault.Errorf(eventvault.EINVALID, "limit is %d; it must be positive", limit)
	}
	var out []eventvault.SubjectKeyRow
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		if pb == nil {
			return nil
		}
		c := pb.keys.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && string(k) == string(after) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			var r subjectKeyRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return internal(op, err)
			}
			if r.ErasedAt == nil && r.Key.KEKVersion < kekVersion {
				out = append(out, eventvault.SubjectKeyRow{Subject: eventvault.Pseudonym(k), Key: r.Key.wrappedKey()})
			}
		}
		return nil
	})
	return out, err
}

// RewrapSubjectKey implements eventvault.PIIStore.
func (db *DB) RewrapSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, old, next eventvault.WrappedKey) error {
	const op = "bolt.RewrapSubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	if err := eventvault.CheckSubjectRewrap(old, next); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		r, ok, err := pb.subjectKey(subject)
		switch {
		case err != nil:
			return err
		case !ok:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the data subject has no key"}
		case r.ErasedAt != nil:
			return subjectErased(op)
		case !eventvault.SameKeyRow(r.Key.wrappedKey(), old):
			return eventvault.RowChangedError(op, "the key of a data subject")
		}
		if err := checkKEKLive(tx, op, tenant, next.KEKVersion); err != nil {
			return err
		}
		next.CreatedAt = r.Key.CreatedAt
		r.Key = toKeyRecord(next)
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return pb.keys.Put([]byte(subject), v)
	})
}

// subjectKeysUnder counts the tenant's live subject keys wrapped under a
// KEK version older than version, and the oldest such version.
func subjectKeysUnder(tx *bbolt.Tx, tenant eventvault.TenantID, version uint32) (n int, oldest uint32, err error) {
	pb := readPII(tx, tenant)
	if pb == nil {
		return 0, 0, nil
	}
	err = pb.keys.ForEach(func(_, v []byte) error {
		var r subjectKeyRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if r.ErasedAt != nil || r.Key.KEKVersion >= version {
			return nil
		}
		if n == 0 || r.Key.KEKVersion < oldest {
			oldest = r.Key.KEKVersion
		}
		n++
		return nil
	})
	return n, oldest, err
}
