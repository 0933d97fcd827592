package crypto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
)

// How the Keyring gets unwrapped tenant KEKs: the newest, to wrap new
// stream keys, and any version a stream key row names, to unwrap it.

// tenantKEK returns the tenant's unwrapped KEK from the cache or the store,
// creating it if create is set and the tenant has none.
func (k *Keyring) tenantKEK(ctx context.Context, tenant eventvault.TenantID, create bool) (*tenantKEK, error) {
	ck := cacheKey{kind: cacheTenantKEK, tenant: tenant}
	if e, ok := k.cacheGet(ck); ok {
		return e.kek, nil
	}
	flightKey := "open\x00" + string(tenant)
	if create {
		flightKey = "create\x00" + string(tenant)
	}
	return k.kekLoads.do(ctx, flightKey, func() (*tenantKEK, error) {
		if e, ok := k.cacheGet(ck); ok {
			return e.kek, nil
		}
		gen := k.generation()
		kek, err := k.loadTenantKEK(ctx, tenant, create)
		if err != nil {
			return nil, err
		}
		k.fillKEK(gen, kek, true)
		return kek, nil
	})
}

func (k *Keyring) loadTenantKEK(ctx context.Context, tenant eventvault.TenantID, create bool) (*tenantKEK, error) {
	const op = "crypto.Keyring.tenantKEK"
	wk, err := k.keys.TenantKey(ctx, tenant)
	switch {
	case err == nil:
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND && create:
		return k.createTenantKEK(ctx, tenant)
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
		// A stream key exists but the KEK that wrapped it does not.
		return nil, tenantErasedError(op, tenant, err)
	default:
		return nil, fmt.Errorf("read key of tenant %s: %w", tenant, err)
	}
	// A read may have unwrapped this version already.
	if e, ok := k.cacheGet(cacheKey{kind: cacheKEKVersion, tenant: tenant, version: wk.Version}); ok && e.kek.id == wk.ID {
		return e.kek, nil
	}
	return k.unwrapTenantKEK(ctx, tenant, wk)
}

func (k *Keyring) createTenantKEK(ctx context.Context, tenant eventvault.TenantID) (*tenantKEK, error) {
	const op = "crypto.Keyring.tenantKEK"
	key := make([]byte, keySize)
	defer clear(key)
	if _, err := io.ReadFull(k.rand, key); err != nil {
		return nil, internalError(op, err, "could not read random bytes for the key of tenant %s", tenant)
	}
	id, err := uuid.NewRandomFromReader(k.rand)
	if err != nil {
		return nil, internalError(op, err, "could not read random bytes for the key id of tenant %s", tenant)
	}
	h := header{kind: kindTenantKEK, keyID: id, keyVersion: 1}
	wrapped, err := k.root.WrapKey(ctx, key, tenantKEKAAD(h, tenant))
	if err != nil {
		return nil, fmt.Errorf("wrap key %s of tenant %s: %w", id, tenant, err)
	}
	ct := append(h.appendTo(make([]byte, 0, headerSize+len(wrapped))), wrapped...)
	stored, err := k.keys.CreateTenantKey(ctx, tenant, eventvault.WrappedKey{
		ID:         id,
		Version:    h.keyVersion,
		Ciphertext: ct,
		CreatedAt:  time.Now().UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("store key of tenant %s: %w", tenant, err)
	}
	if stored.ID != id || !bytes.Equal(stored.Ciphertext, ct) {
		// Another node won the race: use its key.
		return k.unwrapTenantKEK(ctx, tenant, stored)
	}
	kek, err := newTenantKEK(tenant, id, h.keyVersion, key)
	if err != nil {
		return nil, internalError(op, err, "could not use the key of tenant %s", tenant)
	}
	return kek, nil
}

func (k *Keyring) unwrapTenantKEK(ctx context.Context, tenant eventvault.TenantID, wk eventvault.WrappedKey) (*tenantKEK, error) {
	const op = "crypto.Keyring.tenantKEK"
	if len(wk.Ciphertext) == 0 {
		return nil, tenantErasedError(op, tenant, nil)
	}
	h, err := kekHeader(op, tenant, wk)
	if err != nil {
		return nil, err
	}
	key, err := k.root.UnwrapKey(ctx, wk.Ciphertext[headerSize:], tenantKEKAAD(h, tenant))
	if err != nil {
		if errors.Is(err, ErrAuthentication) {
			return nil, &eventvault.Error{
				Code:    eventvault.EINTERNAL,
				Op:      op,
				Message: fmt.Sprintf("the key %s of tenant %s failed authentication under the root key: the key row was altered or moved, or the root key is not the one it was wrapped with", h.keyID, tenant),
				Err:     err,
			}
		}
		return nil, fmt.Errorf("unwrap key %s of tenant %s: %w", h.keyID, tenant, err)
	}
	defer clear(key)
	if len(key) != keySize {
		return nil, authError(op, "the key %s of tenant %s unwrapped to %d bytes, not %d", h.keyID, tenant, len(key), keySize)
	}
	kek, err := newTenantKEK(tenant, h.keyID, h.keyVersion, key)
	if err != nil {
		return nil, internalError(op, err, "could not use the key of tenant %s", tenant)
	}
	return kek, nil
}

// kekVersion returns one version of the tenant's unwrapped KEK, from the
// cache or the store: the version a stream key row names. After a KEK
// rotation, rows not yet re-wrapped name the older version, which stays
// readable. A version newer than the cached newest KEK replaces it, so a
// node learns of a rotation made elsewhere from the first row it reads.
func (k *Keyring) kekVersion(ctx context.Context, tenant eventvault.TenantID, version uint32) (*tenantKEK, error) {
	const op = "crypto.Keyring.kekVersion"
	ck := cacheKey{kind: cacheKEKVersion, tenant: tenant, version: version}
	if e, ok := k.cacheGet(ck); ok {
		return e.kek, nil
	}
	if e, ok := k.cacheGet(cacheKey{kind: cacheTenantKEK, tenant: tenant}); ok && e.kek.version == version {
		return e.kek, nil
	}
	flightKey := "version\x00" + string(tenant) + "\x00" + strconv.FormatUint(uint64(version), 10)
	return k.kekLoads.do(ctx, flightKey, func() (*tenantKEK, error) {
		if e, ok := k.cacheGet(ck); ok {
			return e.kek, nil
		}
		gen := k.generation()
		wk, err := k.keys.TenantKeyVersion(ctx, tenant, version)
		switch {
		case err == nil:
		case eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
			// A stream key row names a KEK version the store does not hold.
			return nil, &eventvault.Error{
				Code:    eventvault.EERASED,
				Op:      op,
				Message: fmt.Sprintf("version %d of the key of tenant %s was destroyed; the streams it protects can no longer be read", version, tenant),
				Err:     err,
			}
		default:
			return nil, fmt.Errorf("read key version %d of tenant %s: %w", version, tenant, err)
		}
		if wk.Version != version {
			return nil, authError(op, "the store returned version %d of the key of tenant %s when asked for version %d", wk.Version, tenant, version)
		}
		kek, err := k.unwrapTenantKEK(ctx, tenant, wk)
		if err != nil {
			return nil, err
		}
		k.fillKEK(gen, kek, false)
		return kek, nil
	})
}

// kekHeader checks a KEK row's envelope header against the row.
func kekHeader(op string, tenant eventvault.TenantID, wk eventvault.WrappedKey) (header, error) {
	h, err := parseHeader(wk.Ciphertext)
	switch {
	case err != nil:
		return header{}, authError(op, "the key row of tenant %s failed authentication: %s", tenant, describeHeaderError(err))
	case h.kind != kindTenantKEK:
		return header{}, authError(op, "the key row of tenant %s holds a %s, not a tenant key", tenant, h.kind)
	case h.keyID != wk.ID || h.keyVersion != wk.Version:
		return header{}, authError(op, "the key row of tenant %s names key %s v%d but its envelope holds key %s v%d", tenant, wk.ID, wk.Version, h.keyID, h.keyVersion)
	case len(wk.Ciphertext) == headerSize:
		return header{}, authError(op, "the key row of tenant %s is truncated", tenant)
	}
	return h, nil
}
