package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// auditDeployment names the deployment's own log in bucketAudit: no tenant
// id starts with '_'.
const auditDeployment = "_deployment"

var (
	auditRecords     = []byte("records")
	auditHashes      = []byte("hashes")
	auditCheckpoints = []byte("checkpoints")
)

func auditName(tenant eventvault.TenantID) []byte {
	if tenant == eventvault.DeploymentLog {
		return []byte(auditDeployment)
	}
	return []byte(tenant)
}

func validateAuditTenant(tenant eventvault.TenantID) error {
	if tenant == eventvault.DeploymentLog {
		return nil
	}
	return eventvault.ValidateTenant(tenant)
}

func auditIndex(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// auditLog returns the log's bucket, creating it in a write transaction;
// nil in a read one when it has never been written.
func auditLog(tx *bbolt.Tx, tenant eventvault.TenantID) (*bbolt.Bucket, error) {
	root := tx.Bucket(bucketAudit)
	if !tx.Writable() {
		return root.Bucket(auditName(tenant)), nil
	}
	b, err := root.CreateBucketIfNotExists(auditName(tenant))
	if err != nil {
		return nil, fmt.Errorf("create audit log: %w", err)
	}
	for _, name := range [][]byte{auditRecords, auditHashes, auditCheckpoints} {
		if _, err := b.CreateBucketIfNotExists(name); err != nil {
			return nil, fmt.Errorf("create audit bucket %s: %w", name, err)
		}
	}
	return b, nil
}

// appendAudit writes lines at the log's next indexes in tx.
func appendAudit(tx *bbolt.Tx, tenant eventvault.TenantID, lines [][]byte) (int64, error) {
	log, err := auditLog(tx, tenant)
	if err != nil {
		return 0, err
	}
	records := log.Bucket(auditRecords)
	var first int64
	if k, _ := records.Cursor().Last(); k != nil {
		first = int64(binary.BigEndian.Uint64(k)) + 1
	}
	for i, line := range lines {
		if err := records.Put(auditIndex(first+int64(i)), eventvault.AuditLineAt(line, first+int64(i))); err != nil {
			return 0, fmt.Errorf("write audit record: %w", err)
		}
	}
	return first, nil
}

// AppendAudit writes lines at the next indexes of tenant's log.
func (db *DB) AppendAudit(ctx context.Context, tenant eventvault.TenantID, lines [][]byte) (int64, error) {
	const op = "bolt.AppendAudit"
	if err := validateAuditTenant(tenant); err != nil {
		return 0, err
	}
	if len(lines) == 0 {
		return 0, eventvault.Errorf(eventvault.EINVALID, "no audit record to append")
	}
	var first int64
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		var err error
		first, err = appendAudit(tx, tenant, lines)
		return err
	})
	return first, err
}

// AuditSize is the number of records in tenant's log.
func (db *DB) AuditSize(ctx context.Context, tenant eventvault.TenantID) (int64, error) {
	if err := validateAuditTenant(tenant); err != nil {
		return 0, err
	}
	var size int64
	err := db.view(ctx, "bolt.AuditSize", func(tx *bbolt.Tx) error {
		log, _ := auditLog(tx, tenant)
		if log == nil {
			return nil
		}
		if k, _ := log.Bucket(auditRecords).Cursor().Last(); k != nil {
			size = int64(binary.BigEndian.Uint64(k)) + 1
		}
		return nil
	})
	return size, err
}

// AuditRecords returns the records at [from, to).
func (db *DB) AuditRecords(ctx context.Context, tenant eventvault.TenantID, from, to int64) ([][]byte, error) {
	if err := validateAuditTenant(tenant); err != nil {
		return nil, err
	}
	if from < 0 || to < from {
		return nil, eventvault.Errorf(eventvault.EINVALID, "audit range [%d, %d) is not a range of indexes", from, to)
	}
	out := make([][]byte, 0, to-from)
	err := db.view(ctx, "bolt.AuditRecords", func(tx *bbolt.Tx) error {
		log, _ := auditLog(tx, tenant)
		if log == nil {
			return nil
		}
		c := log.Bucket(auditRecords).Cursor()
		for k, v := c.Seek(auditIndex(from)); k != nil && int64(binary.BigEndian.Uint64(k)) < to; k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != to-from {
		return nil, eventvault.Errorf(eventvault.EINVALID, "the audit log of %q holds records up to %d, not %d", tenant, from+int64(len(out)), to)
	}
	return out, nil
}

// AuditHashes returns the stored hashes at indexes.
func (db *DB) AuditHashes(ctx context.Context, tenant eventvault.TenantID, indexes []int64) ([][]byte, error) {
	const op = "bolt.AuditHashes"
	if err := validateAuditTenant(tenant); err != nil {
		return nil, err
	}
	out := make([][]byte, len(indexes))
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		log, _ := auditLog(tx, tenant)
		for i, idx := range indexes {
			var h []byte
			if log != nil {
				h = log.Bucket(auditHashes).Get(auditIndex(idx))
			}
			if h == nil {
				return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("audit hash %d of %q is not stored", idx, tenant)}
			}
			out[i] = bytes.Clone(h)
		}
		return nil
	})
	return out, err
}

// AddAuditHashes stores hashes at from, from+1, ...
func (db *DB) AddAuditHashes(ctx context.Context, tenant eventvault.TenantID, from int64, hashes [][]byte) error {
	const op = "bolt.AddAuditHashes"
	if err := validateAuditTenant(tenant); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		log, err := auditLog(tx, tenant)
		if err != nil {
			return err
		}
		b := log.Bucket(auditHashes)
		for i, h := range hashes {
			k := auditIndex(from + int64(i))
			if b.Get(k) != nil {
				return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("audit hash %d of %q is stored already", from+int64(i), tenant)}
			}
			if err := b.Put(k, bytes.Clone(h)); err != nil {
				return fmt.Errorf("store audit hash: %w", err)
			}
		}
		return nil
	})
}

// AddAuditCheckpoint stores a signed checkpoint.
func (db *DB) AddAuditCheckpoint(ctx context.Context, tenant eventvault.TenantID, size int64, note []byte) error {
	const op = "bolt.AddAuditCheckpoint"
	if err := validateAuditTenant(tenant); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		log, err := auditLog(tx, tenant)
		if err != nil {
			return err
		}
		b := log.Bucket(auditCheckpoints)
		if b.Get(auditIndex(size)) != nil {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("a checkpoint of size %d of %q exists", size, tenant)}
		}
		return b.Put(auditIndex(size), bytes.Clone(note))
	})
}

// LatestAuditCheckpoint returns the largest checkpoint.
func (db *DB) LatestAuditCheckpoint(ctx context.Context, tenant eventvault.TenantID) (int64, []byte, error) {
	const op = "bolt.LatestAuditCheckpoint"
	if err := validateAuditTenant(tenant); err != nil {
		return 0, nil, err
	}
	var size int64
	var note []byte
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		log, _ := auditLog(tx, tenant)
		if log != nil {
			if k, v := log.Bucket(auditCheckpoints).Cursor().Last(); k != nil {
				size, note = int64(binary.BigEndian.Uint64(k)), bytes.Clone(v)
				return nil
			}
		}
		return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("the audit log of %q has no checkpoint yet", tenant)}
	})
	return size, note, err
}

// AuditTenants lists the logs that hold records.
func (db *DB) AuditTenants(ctx context.Context) ([]eventvault.TenantID, error) {
	var out []eventvault.TenantID
	err := db.view(ctx, "bolt.AuditTenants", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEachBucket(func(name []byte) error {
			if k, _ := tx.Bucket(bucketAudit).Bucket(name).Bucket(auditRecords).Cursor().First(); k == nil {
				return nil
			}
			if string(name) == auditDeployment {
				out = append(out, eventvault.DeploymentLog)
			} else {
				out = append(out, eventvault.TenantID(name))
			}
			return nil
		})
	})
	return out, err
}
