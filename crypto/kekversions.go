package crypto

import (
	"context"
	"fmt"
	"strconv"

	"github.com/eventvault/eventvault"
)

// kekVersion returns one version of the tenant's unwrapped KEK, from the
// cache or the store: the version a stream key row names. After a KEK
// rotation, rows not yet re-wrapped name the older version, which stays
// readable. A version newer than the cached newest KEK replaces it, so a
// node learns of a rotation made elsewhere from the first row it reads.
func (k *Keyring) kekVersion(ctx context.Context, tenant eventvault.TenantID, version uint32) (*tenantKEK, error) {
	const op = "crypto.Keyring.kekVersion"
	ck := cacheKey{kind: cacheKEKVersion, tenant: tenant, version: version}
	if e, ok := k.cache.Get(ck); ok {
		return e.kek, nil
	}
	if e, ok := k.cache.Get(cacheKey{kind: cacheTenantKEK, tenant: tenant}); ok && e.kek.version == version {
		return e.kek, nil
	}
	flightKey := "version\x00" + string(tenant) + "\x00" + strconv.FormatUint(uint64(version), 10)
	return k.kekLoads.do(ctx, flightKey, func() (*tenantKEK, error) {
		if e, ok := k.cache.Get(ck); ok {
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

// fillKEK caches kek under its version, unless an eviction happened since
// the load began at gen. It also caches kek as the tenant's newest KEK if
// newest is set (kek came from TenantKey or a rotation) and no newer one is
// cached, or if a cached newest KEK is older than kek (another node rotated).
// A version loaded for a read never becomes the newest on its own: it may
// be an old one.
func (k *Keyring) fillKEK(gen uint64, kek *tenantKEK, newest bool) {
	nk := cacheKey{kind: cacheTenantKEK, tenant: kek.tenant}
	k.evictMu.Lock()
	defer k.evictMu.Unlock()
	if k.gen != gen {
		return
	}
	k.cache.Add(cacheKey{kind: cacheKEKVersion, tenant: kek.tenant, version: kek.version}, cacheEntry{kek: kek})
	e, ok := k.cache.Peek(nk)
	if (newest && (!ok || e.kek.version <= kek.version)) || (ok && e.kek.version < kek.version) {
		k.cache.Add(nk, cacheEntry{kek: kek})
	}
}
