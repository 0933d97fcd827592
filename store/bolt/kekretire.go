package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// keyKEKRetiredBefore in a tenant's erasure bucket holds (uint32) the
// version below which DestroyTenantKeysBefore destroyed every KEK version.
// It is a fence, as a shred record is: CreateStreamKey refuses a key
// wrapped under a version below it.
var keyKEKRetiredBefore = []byte("kek_retired_before")

// DestroyTenantKeysBefore deletes every version of the tenant's KEK older
// than version and returns how many it deleted, once no live stream key of
// the tenant is wrapped under one of them; it records version as the
// tenant's fence, so that no stream key is ever stored under a destroyed
// version; then it scrubs the file (see scrub.go), since bbolt leaves the
// deleted wrapped KEKs in free pages. All checks and the deletion run in
// the one write transaction, which serialises them with CreateStreamKey
// and RewrapStreamKey.
// Errors: ECONFLICT while a live stream key is wrapped under a version
// older than version (nothing is deleted); ENOTFOUND if the tenant has no
// KEK version >= version; EINVALID for a malformed tenant or version 0;
// EINTERNAL if the versions were destroyed but the file could not be
// scrubbed (a retry, or the next Open, scrubs again).
func (db *DB) DestroyTenantKeysBefore(ctx context.Context, tenant eventvault.TenantID, version uint32) (int, error) {
	const op = "bolt.DestroyTenantKeysBefore"
	if err := eventvault.ValidateKEKVersion(tenant, version); err != nil {
		return 0, err
	}
	var destroyed int
	err := db.update(ctx, op, func(tx *bbolt.Tx) error {
		destroyed = 0
		tb := readTenant(tx, tenant)
		if tb == nil {
			return noKEKFrom(op, tenant, version)
		}
		newest, found, err := newestKEK(tb)
		if err != nil {
			return err
		}
		if !found || newest.Version < version {
			return noKEKFrom(op, tenant, version)
		}
		n, oldest, err := tb.streamKeysUnder(version)
		if err != nil {
			return err
		}
		if n > 0 {
			return kekVersionsInUse(op, tenant, version, n, oldest)
		}
		// Subject keys too (pii_rotation.go): a destroyed version would
		// take their subjects' personal values with it.
		if n, oldest, err = subjectKeysUnder(tx, tenant, version); err != nil {
			return err
		}
		if n > 0 {
			return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op,
				Message: fmt.Sprintf("%d subject keys of tenant %s are still wrapped under key versions older than %d (the oldest under %d): re-wrap them under the newest version first", n, tenant, version, oldest),
				Fields:  map[string]any{"subject_keys": n, "oldest_kek_version": oldest}}
		}
		var old [][]byte
		c := tb.keks.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, be32(version)) < 0; k, _ = c.Next() {
			old = append(old, clone(k))
		}
		for _, k := range old {
			if err := tb.keks.Delete(k); err != nil {
				return fmt.Errorf("destroy version %d of the key of tenant %s: %w", binary.BigEndian.Uint32(k), tenant, err)
			}
		}
		if err := raiseKEKFence(tx, tenant, version); err != nil {
			return err
		}
		destroyed = len(old)
		if destroyed == 0 {
			return nil
		}
		return db.markScrub(tx)
	})
	if err != nil {
		return 0, err
	}
	if err := db.scrub(); err != nil {
		return 0, internal(op, fmt.Errorf("the key versions of tenant %s older than %d are destroyed, but the file still holds their old pages: %w", tenant, version, err))
	}
	return destroyed, nil
}

// streamKeysUnder counts the tenant's live stream keys wrapped under a KEK
// version older than version, and returns the oldest such version.
func (tb *tenantBuckets) streamKeysUnder(version uint32) (n int, oldest uint32, err error) {
	err = tb.streams.ForEach(func(k, v []byte) error {
		rec, err := decodeStream(v)
		if err != nil {
			return fmt.Errorf("stream %s: %w", k, err)
		}
		if len(rec.Key.Ciphertext) == 0 || rec.Key.KEKVersion >= version {
			return nil
		}
		if n == 0 || rec.Key.KEKVersion < oldest {
			oldest = rec.Key.KEKVersion
		}
		n++
		return nil
	})
	return n, oldest, err
}

// raiseKEKFence records that every KEK version of the tenant below version
// is destroyed. The fence only rises.
func raiseKEKFence(tx *bbolt.Tx, tenant eventvault.TenantID, version uint32) error {
	fence, err := kekFence(tx, tenant)
	if err != nil || fence >= version {
		return err
	}
	eb, err := writeErasure(tx, tenant)
	if err != nil {
		return err
	}
	if err := eb.Put(keyKEKRetiredBefore, be32(version)); err != nil {
		return fmt.Errorf("record the destroyed key versions of tenant %s: %w", tenant, err)
	}
	return nil
}

// kekFence returns the version below which the tenant's KEK versions were
// destroyed, 0 if none was.
func kekFence(tx *bbolt.Tx, tenant eventvault.TenantID) (uint32, error) {
	eb := nested(tx.Bucket(bucketErasure), []byte(tenant))
	if eb == nil {
		return 0, nil
	}
	v := eb.Get(keyKEKRetiredBefore)
	if v == nil {
		return 0, nil
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("corrupt KEK fence of tenant %s: %d bytes", tenant, len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

// checkKEKLive returns ECONFLICT if kekVersion is a destroyed version of
// the tenant's KEK: a stream key wrapped under it could never be opened. A
// node whose cache still holds such a version proposes one; it must read
// the tenant's newest KEK and wrap again.
func checkKEKLive(tx *bbolt.Tx, op string, tenant eventvault.TenantID, kekVersion uint32) error {
	fence, err := kekFence(tx, tenant)
	if err != nil {
		return err
	}
	if kekVersion < fence {
		return &eventvault.Error{
			Code: eventvault.ECONFLICT, Op: op,
			Message: fmt.Sprintf("version %d of the key of tenant %s was destroyed: a stream key cannot be wrapped under it; wrap it under the tenant's newest key version", kekVersion, tenant),
			Fields:  map[string]any{"kek_retired_before": fence},
		}
	}
	return nil
}

func noKEKFrom(op string, tenant eventvault.TenantID, version uint32) error {
	return &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key version %d or newer: its newest version always stays", tenant, version)}
}

func kekVersionsInUse(op string, tenant eventvault.TenantID, version uint32, n int, oldest uint32) error {
	return &eventvault.Error{
		Code: eventvault.ECONFLICT, Op: op,
		Message: fmt.Sprintf("%d stream keys of tenant %s are still wrapped under key versions older than %d (the oldest under %d): re-wrap them under the newest version first", n, tenant, version, oldest),
		Fields:  map[string]any{"stream_keys": n, "oldest_kek_version": oldest},
	}
}
