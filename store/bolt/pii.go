package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

var _ eventvault.PIIStore = (*DB)(nil)

var (
	bucketPII          = []byte("pii")
	bucketSubjectKeys  = []byte("subject_keys")
	bucketPIIValues    = []byte("values")
	bucketPIIBySubject = []byte("by_subject")
	bucketRestrictions = []byte("restrictions")
)

// subjectKeyRecord is a subject's key; once erased, Key is the zero record
// and ErasedKeyID and ErasedAt remain: the erasure fence.
type subjectKeyRecord struct {
	Key         keyRecord  `json:"key"`
	Generation  int64      `json:"generation,omitempty"`
	ErasedKeyID uuid.UUID  `json:"erased_key_id,omitempty"`
	ErasedAt    *time.Time `json:"erased_at,omitempty"`
}

// piiRecord is one version of a value, without its token and version
// (they are its key).
type piiRecord struct {
	Subject    eventvault.Pseudonym `json:"subject"`
	Stream     string               `json:"stream"`
	EventID    uuid.UUID            `json:"event_id"`
	Pointer    string               `json:"pointer"`
	Class      string               `json:"class,omitempty"`
	KeyID      uuid.UUID            `json:"key_id"`
	Ciphertext []byte               `json:"ciphertext"`
	CreatedAt  time.Time            `json:"created_at"`
}

type piiBuckets struct {
	keys, values, bySubject, restrictions *bbolt.Bucket
}

func readPII(tx *bbolt.Tx, tenant eventvault.TenantID) *piiBuckets {
	b := tx.Bucket(bucketPII).Bucket([]byte(tenant))
	if b == nil {
		return nil
	}
	return &piiBuckets{keys: b.Bucket(bucketSubjectKeys), values: b.Bucket(bucketPIIValues), bySubject: b.Bucket(bucketPIIBySubject), restrictions: b.Bucket(bucketRestrictions)}
}

func writePII(tx *bbolt.Tx, tenant eventvault.TenantID) (*piiBuckets, error) {
	b, err := tx.Bucket(bucketPII).CreateBucketIfNotExists([]byte(tenant))
	if err != nil {
		return nil, fmt.Errorf("create pii bucket of tenant %s: %w", tenant, err)
	}
	var bs [4]*bbolt.Bucket
	for i, name := range [][]byte{bucketSubjectKeys, bucketPIIValues, bucketPIIBySubject, bucketRestrictions} {
		if bs[i], err = b.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("create bucket %s of tenant %s: %w", name, tenant, err)
		}
	}
	return &piiBuckets{keys: bs[0], values: bs[1], bySubject: bs[2], restrictions: bs[3]}, nil
}

func (pb *piiBuckets) subjectKey(subject eventvault.Pseudonym) (subjectKeyRecord, bool, error) {
	if pb == nil {
		return subjectKeyRecord{}, false, nil
	}
	v := pb.keys.Get([]byte(subject))
	if v == nil {
		return subjectKeyRecord{}, false, nil
	}
	var r subjectKeyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return subjectKeyRecord{}, false, fmt.Errorf("corrupt subject key record: %w", err)
	}
	return r, true, nil
}

func subjectErased(op string) error { return eventvault.SubjectErasedError(op) }

// SubjectKey implements eventvault.PIIStore.
func (db *DB) SubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (eventvault.WrappedKey, error) {
	const op = "bolt.SubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		r, ok, err := readPII(tx, tenant).subjectKey(subject)
		switch {
		case err != nil:
			return err
		case !ok:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the data subject has no key yet"}
		case r.ErasedAt != nil:
			return subjectErased(op)
		}
		k = r.Key.wrappedKey()
		return nil
	})
	return k, err
}

// CreateSubjectKey implements eventvault.PIIStore.
func (db *DB) CreateSubjectKey(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "bolt.CreateSubjectKey"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return eventvault.WrappedKey{}, err
	}
	if k.ID == uuid.Nil || len(k.Ciphertext) == 0 {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.EINVALID, "a subject key needs an id and a ciphertext")
	}
	var out eventvault.WrappedKey
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		if err := checkTenantLive(tx, op, tenant); err != nil {
			return err
		}
		pb, err := writePII(tx, tenant)
		if err != nil {
			return err
		}
		r, ok, err := pb.subjectKey(subject)
		switch {
		case err != nil:
			return err
		case ok && r.ErasedAt != nil:
			return subjectErased(op)
		case ok:
			out = r.Key.wrappedKey()
			return nil
		}
		if err := checkKEKLive(tx, op, tenant, k.KEKVersion); err != nil {
			return err
		}
		k.CreatedAt = db.stamp(k.CreatedAt)
		v, err := json.Marshal(subjectKeyRecord{Key: toKeyRecord(k)})
		if err != nil {
			return err
		}
		out = k
		return pb.keys.Put([]byte(subject), v)
	})
	return out, err
}

// valueKey is token || 0 || version.
func valueKey(token string, version int64) []byte {
	return append(append([]byte(token), 0), be64(version)...)
}

// latest returns the newest version of token's value.
func (pb *piiBuckets) latest(token string) (eventvault.PIIValue, bool, error) {
	if pb == nil {
		return eventvault.PIIValue{}, false, nil
	}
	prefix := append([]byte(token), 0)
	c := pb.values.Cursor()
	// The key after the token's last version, then one back.
	var k, v []byte
	if next, _ := c.Seek(append(clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)); next == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+8 {
		return eventvault.PIIValue{}, false, nil
	}
	pv, err := decodePII(token, int64(u64(k[len(prefix):])), v)
	return pv, err == nil, err
}

func decodePII(token string, version int64, v []byte) (eventvault.PIIValue, error) {
	var r piiRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return eventvault.PIIValue{}, fmt.Errorf("corrupt personal value record: %w", err)
	}
	return eventvault.PIIValue{Token: token, Subject: r.Subject, Stream: eventvault.StreamName(r.Stream), EventID: r.EventID, Pointer: r.Pointer,
		Class: eventvault.PIIClass(r.Class), Version: version, KeyID: r.KeyID, Ciphertext: clone(r.Ciphertext), CreatedAt: r.CreatedAt}, nil
}

// putValue writes one version of a value and indexes its token by subject.
func (db *DB) putValue(pb *piiBuckets, v eventvault.PIIValue) error {
	rec, err := json.Marshal(piiRecord{Subject: v.Subject, Stream: string(v.Stream), EventID: v.EventID, Pointer: v.Pointer, Class: string(v.Class),
		KeyID: v.KeyID, Ciphertext: v.Ciphertext, CreatedAt: db.stamp(v.CreatedAt)})
	if err != nil {
		return err
	}
	if err := pb.values.Put(valueKey(v.Token, v.Version), rec); err != nil {
		return fmt.Errorf("put a personal value: %w", err)
	}
	return pb.bySubject.Put(append(append([]byte(v.Subject), 0), v.Token...), []byte{})
}

// writeAppendPII writes an append's values, once every subject's key is
// checked to be the live key they were sealed under.
func (db *DB) writeAppendPII(tx *bbolt.Tx, op string, tenant eventvault.TenantID, stream eventvault.StreamName, values []eventvault.PIIValue) error {
	if len(values) == 0 {
		return nil
	}
	pb, err := writePII(tx, tenant)
	if err != nil {
		return err
	}
	for _, v := range values {
		r, ok, err := pb.subjectKey(v.Subject)
		if err != nil {
			return err
		}
		if !ok || r.ErasedAt != nil || r.Key.ID != v.KeyID {
			return subjectErased(op)
		}
		if pb.values.Get(valueKey(v.Token, 1)) != nil {
			return internal(op, fmt.Errorf("a personal value token was drawn twice"))
		}
		v.Stream, v.Version = stream, 1
		if err := db.putValue(pb, v); err != nil {
			return err
		}
	}
	return nil
}

// PIIValues implements eventvault.PIIStore: one read transaction.
func (db *DB) PIIValues(ctx context.Context, tenant eventvault.TenantID, tokens []string) (eventvault.PIIPage, error) {
	const op = "bolt.PIIValues"
	if err := validateTenant(tenant); err != nil {
		return eventvault.PIIPage{}, err
	}
	page := eventvault.PIIPage{Values: map[string]eventvault.PIIValue{}, Keys: map[eventvault.Pseudonym]eventvault.SubjectKeyState{}}
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		if pb == nil {
			return nil
		}
		for _, t := range tokens {
			v, ok, err := pb.latest(t)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			page.Values[t] = v
			if _, done := page.Keys[v.Subject]; done {
				continue
			}
			st, err := pb.keyState(v.Subject)
			if err != nil {
				return err
			}
			page.Keys[v.Subject] = st
		}
		return nil
	})
	return page, err
}

func (pb *piiBuckets) keyState(subject eventvault.Pseudonym) (eventvault.SubjectKeyState, error) {
	r, ok, err := pb.subjectKey(subject)
	if err != nil {
		return eventvault.SubjectKeyState{}, err
	}
	var st eventvault.SubjectKeyState
	if ok && r.ErasedAt == nil {
		st.Key, st.Generation = r.Key.wrappedKey(), r.Generation
	}
	st.Restricted = pb.restrictions.Get([]byte(subject)) != nil
	return st, nil
}

// SubjectPII implements eventvault.PIIStore.
func (db *DB) SubjectPII(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) ([]eventvault.PIIValue, eventvault.SubjectKeyState, error) {
	const op = "bolt.SubjectPII"
	if err := eventvault.ValidateTenantSubject(tenant, subject); err != nil {
		return nil, eventvault.SubjectKeyState{}, err
	}
	var out []eventvault.PIIValue
	var st eventvault.SubjectKeyState
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		r, ok, err := pb.subjectKey(subject)
		switch {
		case err != nil:
			return err
		case !ok:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no personal value is held under this subject"}
		case r.ErasedAt != nil:
			return subjectErased(op)
		}
		if st, err = pb.keyState(subject); err != nil {
			return err
		}
		prefix := append([]byte(subject), 0)
		c := pb.bySubject.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			token := string(k[len(prefix):])
			vp := append([]byte(token), 0)
			vc := pb.values.Cursor()
			for vk, vv := vc.Seek(vp); vk != nil && bytes.HasPrefix(vk, vp); vk, vv = vc.Next() {
				v, err := decodePII(token, int64(u64(vk[len(vp):])), vv)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
		}
		return nil
	})
	return out, st, err
}

// RectifyPII implements eventvault.PIIStore.
func (db *DB) RectifyPII(ctx context.Context, tenant eventvault.TenantID, v eventvault.PIIValue) error {
	const op = "bolt.RectifyPII"
	if err := eventvault.ValidatePIIValues(tenant, []eventvault.PIIValue{v}); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		pb := readPII(tx, tenant)
		cur, ok, err := pb.latest(v.Token)
		switch {
		case err != nil:
			return err
		case !ok || cur.Subject != v.Subject:
			return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "the tenant holds no value of this subject under this token"}
		case cur.Version+1 != v.Version:
			return eventvault.RowChangedError(op, "the value of token "+v.Token)
		}
		r, _, err := pb.subjectKey(v.Subject)
		if err != nil {
			return err
		}
		if r.ErasedAt != nil || r.Key.ID != v.KeyID {
			return subjectErased(op)
		}
		v.Stream, v.EventID, v.Pointer, v.Class = cur.Stream, cur.EventID, cur.Pointer, cur.Class
		if err := db.putValue(pb, v); err != nil {
			return err
		}
		r.Generation++
		rec, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return pb.keys.Put([]byte(v.Subject), rec)
	})
}

// piiGeneration is a read transaction's PII generation (PIIStore
// SubjectStates): the id of the last write transaction committed before
// it, which moves on with every write, of subject states or not, above the
// ids of every file a scrub replaced (2^40 transactions each). Only one
// process opens the file, so no other node keeps states. It is called
// within a transaction, under db.mu.
func (db *DB) piiGeneration(tx *bbolt.Tx) int64 {
	return db.scrubs<<40 | int64(tx.ID())
}

// SubjectStates implements eventvault.PIIStore: one read transaction.
func (db *DB) SubjectStates(ctx context.Context, tenant eventvault.TenantID, subjects []eventvault.Pseudonym) (map[eventvault.Pseudonym]eventvault.SubjectKeyState, int64, error) {
	const op = "bolt.SubjectStates"
	if err := validateTenant(tenant); err != nil {
		return nil, 0, err
	}
	var gen int64
	out := make(map[eventvault.Pseudonym]eventvault.SubjectKeyState, len(subjects))
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		gen = db.piiGeneration(tx)
		pb := readPII(tx, tenant)
		if pb == nil {
			return nil
		}
		for _, s := range subjects {
			if _, ok, err := pb.subjectKey(s); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			st, err := pb.keyState(s)
			if err != nil {
				return err
			}
			out[s] = st
		}
		return nil
	})
	return out, gen, err
}
