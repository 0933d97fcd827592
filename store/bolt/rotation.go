package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// TenantKeyVersion returns one version of the tenant's wrapped KEK.
// Errors: ENOTFOUND if the tenant has no such version; EINVALID for a
// malformed tenant or version 0.
func (db *DB) TenantKeyVersion(ctx context.Context, tenant eventvault.TenantID, version uint32) (eventvault.WrappedKey, error) {
	const op = "bolt.TenantKeyVersion"
	if err := eventvault.ValidateKEKVersion(tenant, version); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		var v []byte
		if tb := readTenant(tx, tenant); tb != nil {
			v = tb.keks.Get(be32(version))
		}
		if v == nil {
			return eventvault.NoKEKVersionError(op, tenant, version)
		}
		var err error
		k, err = decodeKey(v)
		return err
	})
	return k, err
}

// AddTenantKey stores k as the tenant's newest KEK version; k.Version must
// be the newest stored plus one.
// Errors: ENOTFOUND if the tenant has no KEK; ECONFLICT if k.Version is not
// the newest plus one; EINVALID for a malformed tenant, version or key.
func (db *DB) AddTenantKey(ctx context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) error {
	const op = "bolt.AddTenantKey"
	if err := eventvault.ValidateKEKVersion(tenant, k.Version); err != nil {
		return err
	}
	if len(k.Ciphertext) == 0 {
		return eventvault.Errorf(eventvault.EINVALID, "a tenant key needs a ciphertext")
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		if err := checkTenantLive(tx, op, tenant); err != nil {
			return err // the erasure fence: a shredded tenant never gets a KEK again
		}
		tb := readTenant(tx, tenant)
		if tb == nil {
			return noTenantKEK(op, tenant)
		}
		newest, found, err := newestKEK(tb)
		if err != nil {
			return err
		}
		if !found {
			return noTenantKEK(op, tenant)
		}
		if k.Version != newest.Version+1 {
			return kekVersionTaken(op, tenant, k.Version, newest.Version)
		}
		v, err := encodeKey(k)
		if err != nil {
			return err
		}
		return tb.keks.Put(be32(k.Version), v)
	})
}

// RewrapTenantKey replaces the ciphertext of one KEK version if the stored
// row still equals old. The row keeps its time.
// Errors: ECONFLICT if the row changed; ENOTFOUND if the version is gone;
// EINVALID if next changes the id or version.
func (db *DB) RewrapTenantKey(ctx context.Context, tenant eventvault.TenantID, old, next eventvault.WrappedKey) error {
	const op = "bolt.RewrapTenantKey"
	if err := eventvault.ValidateKEKVersion(tenant, old.Version); err != nil {
		return err
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		var v []byte
		tb := readTenant(tx, tenant)
		if tb != nil {
			v = tb.keks.Get(be32(old.Version))
		}
		if v == nil {
			return eventvault.NoKEKVersionError(op, tenant, old.Version)
		}
		stored, err := decodeKey(v)
		if err != nil {
			return err
		}
		if !eventvault.SameKeyRow(stored, old) {
			return eventvault.RowChangedError(op, fmt.Sprintf("version %d of the key of tenant %s", old.Version, tenant))
		}
		next.KEKVersion = 0
		next.CreatedAt = stored.CreatedAt
		if v, err = encodeKey(next); err != nil {
			return err
		}
		return tb.keks.Put(be32(old.Version), v)
	})
}

// Tenants returns every tenant that has written anything, in name order.
func (db *DB) Tenants(ctx context.Context) ([]eventvault.TenantID, error) {
	var out []eventvault.TenantID
	err := db.view(ctx, "bolt.Tenants", func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTenants).ForEachBucket(func(name []byte) error {
			out = append(out, eventvault.TenantID(name))
			return nil
		})
	})
	return out, err
}

// StreamKeysBefore returns up to limit live stream keys of the tenant
// wrapped under a KEK version below kekVersion, of streams named after
// after, in name order.
// Errors: EINVALID for a malformed tenant or a limit that is not positive.
func (db *DB) StreamKeysBefore(ctx context.Context, tenant eventvault.TenantID, kekVersion uint32, after eventvault.StreamName, limit int) ([]eventvault.StreamKeyRow, error) {
	const op = "bolt.StreamKeysBefore"
	if err := validateTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, eventvault.Errorf(eventvault.EINVALID, "limit must be positive, not %d", limit)
	}
	var out []eventvault.StreamKeyRow
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		tb := readTenant(tx, tenant)
		if tb == nil {
			return nil
		}
		c := tb.streams.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && bytes.Equal(k, []byte(after)) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			rec, err := decodeStream(v)
			if err != nil {
				return fmt.Errorf("stream %s: %w", k, err)
			}
			if len(rec.Key.Ciphertext) == 0 || rec.Key.KEKVersion >= kekVersion {
				continue
			}
			out = append(out, eventvault.StreamKeyRow{Stream: eventvault.StreamName(k), Key: rec.Key.wrappedKey()})
		}
		return nil
	})
	return out, err
}

// RewrapStreamKey replaces a stream's wrapped key if the stored row still
// equals old. The row keeps its time.
// Errors: ECONFLICT if the row changed; ENOTFOUND if the stream has no key;
// EERASED if it was shredded; EINVALID if next changes the id or version,
// or is not under a newer KEK version.
func (db *DB) RewrapStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, old, next eventvault.WrappedKey) error {
	const op = "bolt.RewrapStreamKey"
	if err := validateStream(tenant, stream); err != nil {
		return err
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	if next.KEKVersion <= old.KEKVersion {
		return eventvault.Errorf(eventvault.EINVALID, "the key of stream %s can only be re-wrapped under a newer KEK version than %d, not %d", stream, old.KEKVersion, next.KEKVersion)
	}
	return db.update(ctx, op, func(tx *bbolt.Tx) error {
		tb, rec, err := existingStream(tx, op, tenant, stream, noStreamKey)
		if err != nil {
			return err
		}
		if len(rec.Key.Ciphertext) == 0 {
			return &eventvault.Error{Code: eventvault.EERASED, Op: op, Message: fmt.Sprintf("stream %s was shredded", stream)}
		}
		if !eventvault.SameKeyRow(rec.Key.wrappedKey(), old) {
			return eventvault.RowChangedError(op, "the key of stream "+string(stream))
		}
		next.CreatedAt = rec.Key.CreatedAt
		rec.Key = toKeyRecord(next)
		return tb.putStream(stream, rec)
	})
}

func noTenantKEK(op string, tenant eventvault.TenantID) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet", tenant)}
}

func kekVersionTaken(op string, tenant eventvault.TenantID, version, newest uint32) error {
	return &eventvault.Error{
		Code: eventvault.ECONFLICT, Op: op,
		Message: fmt.Sprintf("cannot add version %d of the key of tenant %s: its newest version is %d (another rotation ran meanwhile)", version, tenant, newest),
		Fields:  map[string]any{"newest_version": newest},
	}
}
