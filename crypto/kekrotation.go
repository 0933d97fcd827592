package crypto

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/eventvault/eventvault"
)

// rewrapPageSize is how many stream keys RewrapStreamKeys reads at a time.
const rewrapPageSize = 256

// rewrapPasses bounds how often RewrapStreamKeys walks a tenant's streams:
// a pass after the first picks up keys created behind the first pass's
// cursor (by a node whose cache still held the previous KEK version).
const rewrapPasses = 4

// casAttempts bounds how often one key row is re-read and re-wrapped after
// losing a compare-and-swap.
const casAttempts = 8

// RotateTenantKEK adds a version of the tenant's KEK: fresh random key
// bytes under the same key id, wrapped by the root key, stored as the newest
// version. New stream keys are wrapped by it from now on (on other nodes
// once their cached KEK expires, within the cache TTL); existing stream keys
// stay readable under their older version until RewrapStreamKeys moves
// them. It returns the new version.
// Errors: EINVALID for a malformed tenant; ENOTFOUND if the tenant has no
// KEK; ECONFLICT if another rotation added the version first; the codes of
// the store and the root provider, wrapped with context.
func (m *KeyManager) RotateTenantKEK(ctx context.Context, tenant eventvault.TenantID) (uint32, error) {
	const op = "crypto.KeyManager.RotateTenantKEK"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	gen := m.ring.generation()
	current, err := m.keys.TenantKey(ctx, tenant)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return 0, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet: there is nothing to rotate", tenant), Err: err}
	}
	if err != nil {
		return 0, fmt.Errorf("read key of tenant %s: %w", tenant, err)
	}
	if current.Version == math.MaxUint32 {
		return 0, internalError(op, nil, "the key of tenant %s is at its last version", tenant)
	}
	h := header{kind: kindTenantKEK, keyID: current.ID, keyVersion: current.Version + 1}
	key := make([]byte, keySize)
	defer clear(key)
	if _, err := io.ReadFull(m.rand, key); err != nil {
		return 0, internalError(op, err, "could not read random bytes for the key of tenant %s", tenant)
	}
	wrapped, err := m.root.WrapKey(ctx, key, tenantKEKAAD(h, tenant))
	if err != nil {
		return 0, fmt.Errorf("wrap version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
	}
	err = m.keys.AddTenantKey(ctx, tenant, eventvault.WrappedKey{
		ID:         h.keyID,
		Version:    h.keyVersion,
		Ciphertext: append(h.appendTo(make([]byte, 0, headerSize+len(wrapped))), wrapped...),
		CreatedAt:  time.Now().UTC(),
	})
	if err != nil {
		return 0, fmt.Errorf("store version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
	}
	kek, err := newTenantKEK(tenant, h.keyID, h.keyVersion, key)
	if err != nil {
		return 0, internalError(op, err, "could not use the key of tenant %s", tenant)
	}
	m.ring.fillKEK(gen, kek, true)
	return h.keyVersion, nil
}

// RewrapStreamKeys re-wraps every stream key of the tenant that is wrapped
// under an older KEK version with the newest version in the store: unwrap
// with the old KEK, wrap with the new, and store by compare-and-swap, so a
// concurrent change (another rewrap, a shred) is never overwritten; a lost
// swap is read again and retried. Stream key ids and key bytes never change
// and no event is re-encrypted, so appends and reads go on meanwhile.
//
// The tenant's subject keys are re-wrapped the same way once its stream
// keys are (they are not counted in the number returned).
//
// It is resumable: it looks only for keys still under older versions, so
// running it again after an interruption finishes the job, and running it
// when nothing is left does nothing. It returns how many keys this call
// re-wrapped and calls progress, if not nil, after each one with the count
// so far.
// Errors: EINVALID for a malformed tenant; ENOTFOUND if the tenant has no
// KEK; ECONFLICT if keys under older versions keep appearing after several
// passes (a node still caching the previous KEK version: run again after
// the key cache TTL); EINTERNAL wrapping ErrAuthentication for a key row
// that does not open; the codes of the store and the root provider.
func (m *KeyManager) RewrapStreamKeys(ctx context.Context, tenant eventvault.TenantID, progress func(done int)) (int, error) {
	const op = "crypto.KeyManager.RewrapStreamKeys"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	newest, err := m.keys.TenantKey(ctx, tenant)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return 0, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key yet: there is nothing to re-wrap", tenant), Err: err}
	}
	if err != nil {
		return 0, fmt.Errorf("read key of tenant %s: %w", tenant, err)
	}
	target, err := m.ring.kekVersion(ctx, tenant, newest.Version)
	if err != nil {
		return 0, err
	}
	done := 0
	for range rewrapPasses {
		found := 0
		for after := eventvault.StreamName(""); ; {
			rows, err := m.keys.StreamKeysBefore(ctx, tenant, target.version, after, rewrapPageSize)
			if err != nil {
				return done, fmt.Errorf("list stream keys of tenant %s under KEK versions before %d: %w", tenant, target.version, err)
			}
			for _, row := range rows {
				found++
				ok, err := m.rewrapStreamKey(ctx, tenant, target, row)
				if err != nil {
					return done, err
				}
				if ok {
					done++
					if progress != nil {
						progress(done)
					}
				}
			}
			if len(rows) < rewrapPageSize {
				break
			}
			after = rows[len(rows)-1].Stream
		}
		if found == 0 {
			// The tenant's subject keys move with its stream keys, so
			// that DestroyOldKEKs finds no key under an old version.
			if _, err := m.rewrapSubjectKeys(ctx, tenant, target); err != nil {
				return done, err
			}
			return done, nil
		}
	}
	return done, &eventvault.Error{
		Code:    eventvault.ECONFLICT,
		Op:      op,
		Message: fmt.Sprintf("stream keys of tenant %s kept appearing under KEK versions older than %d; a node may still cache the previous version: run the re-wrap again once the key cache TTL has passed", tenant, target.version),
		Fields:  map[string]any{"rewrapped_streams": done},
	}
}

// rewrapStreamKey moves one stream key row to the KEK target. It returns
// false if there was nothing to do: the row is gone, shredded, or already
// under target or a newer version.
func (m *KeyManager) rewrapStreamKey(ctx context.Context, tenant eventvault.TenantID, target *tenantKEK, row eventvault.StreamKeyRow) (bool, error) {
	const op = "crypto.KeyManager.RewrapStreamKeys"
	stream, wk := row.Stream, row.Key
	for range casAttempts {
		if wk.KEKVersion >= target.version {
			return false, nil
		}
		next, err := m.rewrappedStreamKey(ctx, tenant, target, stream, wk)
		if err != nil {
			return false, err
		}
		err = m.keys.RewrapStreamKey(ctx, tenant, stream, wk, next)
		switch eventvault.ErrorCode(err) {
		case "":
			return true, nil
		case eventvault.ECONFLICT:
		case eventvault.ENOTFOUND, eventvault.EERASED:
			return false, nil
		default:
			return false, fmt.Errorf("store the re-wrapped key of stream %s: %w", stream, err)
		}
		// Lost the compare-and-swap: read the row as it is now.
		wk, err = m.keys.StreamKey(ctx, tenant, stream)
		switch eventvault.ErrorCode(err) {
		case "":
		case eventvault.ENOTFOUND, eventvault.EERASED:
			return false, nil
		default:
			return false, fmt.Errorf("read key of stream %s: %w", stream, err)
		}
	}
	return false, &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("the key of stream %s kept changing while it was re-wrapped; run the re-wrap again", stream)}
}

// rewrappedStreamKey returns wk re-wrapped under target: the same key id,
// version and time, target's KEK version and a fresh ciphertext.
func (m *KeyManager) rewrappedStreamKey(ctx context.Context, tenant eventvault.TenantID, target *tenantKEK, stream eventvault.StreamName, wk eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	const op = "crypto.KeyManager.RewrapStreamKeys"
	h, err := streamKeyHeader(op, stream, wk)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	old, err := m.ring.kekVersion(ctx, tenant, h.keyVersion)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	if old.id != h.keyID {
		return eventvault.WrappedKey{}, authError(op, "the key of stream %s is wrapped by tenant key %s, but tenant %s has key %s", stream, h.keyID, tenant, old.id)
	}
	key, err := old.unwrapStreamKey(stream, wk)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	defer clear(key)
	ct, err := target.wrapStreamKey(stream, wk.ID, key, m.rand)
	if err != nil {
		return eventvault.WrappedKey{}, internalError(op, err, "could not read a random nonce for the key of stream %s", stream)
	}
	next := wk
	next.KEKVersion = target.version
	next.Ciphertext = ct
	return next, nil
}
