package bolt

import (
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// TenantKey returns the newest version of the tenant's wrapped KEK.
// Errors: ENOTFOUND if the tenant has none yet; EINVALID for a malformed
// tenant.
func (db *DB) TenantKey(ctx context.Context, tenant eventvault.TenantID) (eventvault.WrappedKey, error) {
	const op = "bolt.TenantKey"
	if err := validateTenant(tenant); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		var found bool
		var err error
		if tb := readTenant(tx, tenant); tb != nil {
			k, found, err = newestKEK(tb)
		}
		if err == nil && !found {
			err = &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet", tenant)}
		}
		return err
	})
	return k, err
}

// CreateTenantKey stores k as the tenant's KEK unless one exists, and
// returns the one that is stored. Errors: EERASED if the tenant was
// shredded; EINVALID for a malformed tenant.
func (db *DB) CreateTenantKey(ctx context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "bolt.CreateTenantKey"
	if err := validateTenant(tenant); err != nil {
		return eventvault.WrappedKey{}, err
	}
	stored := k
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		if err := checkTenantLive(tx, op, tenant); err != nil {
			return err
		}
		tb, err := writeTenant(tx, tenant)
		if err != nil {
			return err
		}
		existing, found, err := newestKEK(tb)
		if err != nil || found {
			stored = existing
			return err
		}
		v, err := encodeKey(k)
		if err != nil {
			return err
		}
		return tb.keks.Put(be32(k.Version), v)
	})
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	return stored, nil
}

// newestKEK returns the tenant's KEK with the highest version.
func newestKEK(tb *tenantBuckets) (eventvault.WrappedKey, bool, error) {
	_, v := tb.keks.Cursor().Last()
	if v == nil {
		return eventvault.WrappedKey{}, false, nil
	}
	k, err := decodeKey(v)
	if err != nil {
		return eventvault.WrappedKey{}, false, fmt.Errorf("tenant KEK: %w", err)
	}
	return k, true, nil
}

// StreamKey returns the stream's wrapped data key.
// Errors: ENOTFOUND if the stream has no key yet; EERASED if it was
// shredded; EINVALID for a malformed tenant or stream name.
func (db *DB) StreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.WrappedKey, error) {
	const op = "bolt.StreamKey"
	if err := validateStream(tenant, stream); err != nil {
		return eventvault.WrappedKey{}, err
	}
	var k eventvault.WrappedKey
	err := db.view(ctx, op, func(tx *bbolt.Tx) error {
		_, rec, err := existingStream(tx, op, tenant, stream, noStreamKey)
		if err != nil {
			return err
		}
		if rec.Shred != nil {
			return streamShredded(tx, op, tenant, stream)
		}
		k = rec.Key.wrappedKey()
		return nil
	})
	return k, err
}

// CreateStreamKey stores k as the stream's key unless one exists, and
// returns the one that is stored. A shredded stream, or any stream of a
// shredded tenant, never gets a key again.
// Errors: EERASED if the stream or its tenant was shredded; ECONFLICT if
// k is wrapped under a KEK version DestroyTenantKeysBefore destroyed;
// EINVALID for a malformed tenant or stream name.
func (db *DB) CreateStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "bolt.CreateStreamKey"
	if err := validateStream(tenant, stream); err != nil {
		return eventvault.WrappedKey{}, err
	}
	stored := k
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		if err := checkTenantLive(tx, op, tenant); err != nil {
			return err
		}
		if err := checkKEKLive(tx, op, tenant, k.KEKVersion); err != nil {
			return err
		}
		tb, err := writeTenant(tx, tenant)
		if err != nil {
			return err
		}
		rec, found, err := tb.stream(stream)
		if err != nil {
			return err
		}
		if found && rec.Shred != nil {
			return streamShredded(tx, op, tenant, stream)
		}
		if found {
			stored = rec.Key.wrappedKey()
			return nil
		}
		return tb.putStream(stream, streamRecord{Version: eventvault.NoStream, Key: toKeyRecord(k)})
	})
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	return stored, nil
}

func noStreamKey(op string, stream eventvault.StreamName) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("stream %s has no key yet", stream)}
}
