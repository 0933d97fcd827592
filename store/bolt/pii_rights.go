package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// Restrictions of processing (GDPR Art. 18) and the erasure of a subject's
// key and values (Art. 17).

// PutRestriction implements eventvault.PIIStore.
func (db *DB) PutRestriction(ctx context.Context, tenant eventvault.TenantID, r eventvault.Restriction) error {
	const op = "bolt.PutRestriction"
	if err := eventvault.ValidateTenantSubject(tenant, r.Subject); err != nil {
		return err
	}
	r.PlacedAt = db.stamp(r.PlacedAt)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		pb, err := writePII(tx, tenant)
		if err != nil {
			return err
		}
		return pb.restrictions.Put([]byte(r.Subject), v)
	})
}

func noRestriction(op string) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the subject's processing is not restricted"}
}

// DeleteRestriction implements eventvault.PIIStore.
func (db *DB) DeleteRestriction(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) error {
	const op = "bolt.DeleteRestriction"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		if pb == nil || pb.restrictions.Get([]byte(subject)) == nil {
			return noRestriction(op)
		}
		return pb.restrictions.Delete([]byte(subject))
	})
}

// Restriction implements eventvault.PIIStore.
func (db *DB) Restriction(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.Restriction, error) {
	const op = "bolt.Restriction"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.Restriction{}, err
	}
	var r eventvault.Restriction
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		var v []byte
		if pb != nil {
			v = pb.restrictions.Get([]byte(subject))
		}
		if v == nil {
			return noRestriction(op)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// EraseSubjectPII implements eventvault.PIIStore, then scrubs the file so
// that the destroyed key's and values' old pages are gone (scrub.go).
func (db *DB) EraseSubjectPII(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, at time.Time) (eventvault.SubjectErasure, error) {
	const op = "bolt.EraseSubjectPII"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.SubjectErasure{}, err
	}
	at = db.stamp(at)
	var out eventvault.SubjectErasure
	err := db.updateIf(ctx, op, func(tx *bbolt.Tx) (bool, error) {
		pb, err := writePII(tx, tenant)
		if err != nil {
			return false, err
		}
		r, ok, err := pb.subjectKey(subject)
		if err != nil {
			return false, err
		}
		if ok && r.ErasedAt != nil {
			// Erased before: nothing more to destroy; the first
			// erasure's key is returned, and this one is not recorded.
			out.KeyID, out.Before = r.ErasedKeyID, true
			return false, nil
		}
		if !ok {
			// Never had a key: nothing to destroy, and no ciphertext for
			// a new key to meet, so no fence either (a request that
			// found nothing leaves the id free for data appended
			// later). Nor is the erasure recorded.
			return false, nil
		}
		out.KeyID = r.Key.ID
		prefix := append([]byte(subject), 0)
		var index, values [][]byte
		c := pb.bySubject.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			index = append(index, clone(k))
			vp := append(clone(k[len(prefix):]), 0)
			vc := pb.values.Cursor()
			for vk, _ := vc.Seek(vp); vk != nil && bytes.HasPrefix(vk, vp); vk, _ = vc.Next() {
				values = append(values, clone(vk))
			}
		}
		for _, k := range values {
			if err := pb.values.Delete(k); err != nil {
				return false, err
			}
		}
		for _, k := range index {
			if err := pb.bySubject.Delete(k); err != nil {
				return false, err
			}
		}
		out.Values = len(values)
		v, err := json.Marshal(subjectKeyRecord{ErasedKeyID: r.Key.ID, ErasedAt: &at})
		if err != nil {
			return false, err
		}
		if err := pb.keys.Put([]byte(subject), v); err != nil {
			return false, err
		}
		return true, db.markScrub(tx)
	})
	if err != nil {
		return eventvault.SubjectErasure{}, err
	}
	if err := db.scrub(); err != nil {
		return eventvault.SubjectErasure{}, internal(op, fmt.Errorf("the subject is erased, but the file still holds old pages: %w", err))
	}
	return out, nil
}
