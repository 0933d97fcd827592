package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// policyRecord is a version of a policy document as stored.
type policyRecord struct {
	Body      string    `json:"body,omitempty"`
	Deleted   bool      `json:"deleted,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func versionKey(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// AddPolicyVersion stores v, one more than the name's latest version.
// Errors: ECONFLICT if that version exists or the previous does not;
// EINVALID for a malformed tenant; EERASED wrapping ErrTenantShredded for
// a shredded tenant.
func (db *DB) AddPolicyVersion(ctx context.Context, v eventvault.PolicyVersion) error {
	const op = "bolt.AddPolicyVersion"
	if err := eventvault.ValidateTenant(v.Tenant); err != nil {
		return err
	}
	if v.Version < 1 || v.Deleted != (v.Body == "") {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "a policy version is 1 or more, and has a body unless it is a deletion"}
	}
	rec, err := json.Marshal(policyRecord{Body: v.Body, Deleted: v.Deleted, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt})
	if err != nil {
		return internal(op, err)
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		if err := checkTenantLive(tx, op, v.Tenant); err != nil {
			return err
		}
		tb, err := tx.Bucket(bucketPolicies).CreateBucketIfNotExists([]byte(v.Tenant))
		if err != nil {
			return fmt.Errorf("create policies bucket of tenant %s: %w", v.Tenant, err)
		}
		nb, err := tb.CreateBucketIfNotExists([]byte(v.Name))
		if err != nil {
			return fmt.Errorf("create bucket of policy %s: %w", v.Name, err)
		}
		var latest int64
		if k, _ := nb.Cursor().Last(); k != nil {
			latest = int64(binary.BigEndian.Uint64(k))
		}
		if latest != v.Version-1 {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("policy %s is at version %d; version %d cannot be added", v.Name, latest, v.Version)}
		}
		return nb.Put(versionKey(v.Version), rec)
	})
}

// LatestPolicyVersion returns the name's latest version, perhaps a
// deletion. Errors: ENOTFOUND if the name never existed.
func (db *DB) LatestPolicyVersion(ctx context.Context, tenant eventvault.TenantID, name string) (eventvault.PolicyVersion, error) {
	return db.onePolicy(ctx, "bolt.LatestPolicyVersion", tenant, name, 0)
}

// PolicyVersion returns one version of a document. Errors: ENOTFOUND.
func (db *DB) PolicyVersion(ctx context.Context, tenant eventvault.TenantID, name string, version int64) (eventvault.PolicyVersion, error) {
	if version < 1 {
		return eventvault.PolicyVersion{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: "bolt.PolicyVersion", Message: fmt.Sprintf("policy %s has no version %d", name, version)}
	}
	return db.onePolicy(ctx, "bolt.PolicyVersion", tenant, name, version)
}

// onePolicy reads version of name, the latest for 0.
func (db *DB) onePolicy(ctx context.Context, op string, tenant eventvault.TenantID, name string, version int64) (eventvault.PolicyVersion, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	notFound := &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no policy %s", tenant, name)}
	var out eventvault.PolicyVersion
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketPolicies).Bucket([]byte(tenant))
		if tb == nil {
			return notFound
		}
		nb := tb.Bucket([]byte(name))
		if nb == nil {
			return notFound
		}
		var k, v []byte
		if version == 0 {
			k, v = nb.Cursor().Last()
		} else {
			k, v = versionKey(version), nb.Get(versionKey(version))
		}
		if v == nil {
			return notFound
		}
		var err error
		out, err = decodePolicy(tenant, name, k, v)
		return err
	})
	return out, err
}

// ListPolicies returns the latest version of each of the tenant's names
// that is not deleted, by name.
func (db *DB) ListPolicies(ctx context.Context, tenant eventvault.TenantID) ([]eventvault.PolicyVersion, error) {
	const op = "bolt.ListPolicies"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	var out []eventvault.PolicyVersion
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		tb := tx.Bucket(bucketPolicies).Bucket([]byte(tenant))
		if tb == nil {
			return nil
		}
		return tb.ForEachBucket(func(name []byte) error {
			k, v := tb.Bucket(name).Cursor().Last()
			if v == nil {
				return nil
			}
			p, err := decodePolicy(tenant, string(name), k, v)
			if err != nil {
				return err
			}
			if !p.Deleted {
				out = append(out, p)
			}
			return nil
		})
	})
	return out, err
}

func decodePolicy(tenant eventvault.TenantID, name string, k, v []byte) (eventvault.PolicyVersion, error) {
	var r policyRecord
	if err := json.Unmarshal(v, &r); err != nil || len(k) != 8 {
		return eventvault.PolicyVersion{}, internal("bolt.decodePolicy", fmt.Errorf("corrupt version of policy %s: %v", name, err))
	}
	return eventvault.PolicyVersion{
		Tenant: tenant, Name: name, Version: int64(binary.BigEndian.Uint64(k)),
		Body: r.Body, Deleted: r.Deleted, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
	}, nil
}
