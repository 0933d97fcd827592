package crypto

import (
	"context"
	"fmt"

	"github.com/eventvault/eventvault"
)

// DestroyOldKEKs destroys every version of the tenant's KEK older than its
// newest, for good, and returns how many it destroyed (0 when none is
// left). It is the step of a crypto-period that makes a key row copied
// before the re-wrap (in a backup, a WAL archive, a replica) undecryptable:
// that row names an older KEK version, and once the version is gone nothing
// unwraps it.
//
// The store refuses (ECONFLICT) while any live stream key is still wrapped
// under an older version, so run RewrapStreamKeys first; it also refuses,
// from then on, a stream key wrapped under a destroyed version, which a
// node still caching one could otherwise store. On success the keyring
// drops every cached key of the tenant: the old KEK versions, and the
// stream ciphers cached from rows read before the re-wrap, which would
// otherwise still open such a row. Other nodes drop theirs when the store
// notifies them (PostgreSQL's eviction channel) or at the cache TTL.
//
// Errors: EINVALID for a malformed tenant; ENOTFOUND if the tenant has no
// KEK; ECONFLICT while a stream key is under an older version; the
// store's codes, wrapped with context.
func (m *KeyManager) DestroyOldKEKs(ctx context.Context, tenant eventvault.TenantID) (int, error) {
	const op = "crypto.KeyManager.DestroyOldKEKs"
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return 0, err
	}
	newest, err := m.keys.TenantKey(ctx, tenant)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return 0, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("tenant %s has no key: there is nothing to destroy", tenant), Err: err}
	}
	if err != nil {
		return 0, fmt.Errorf("read key of tenant %s: %w", tenant, err)
	}
	n, err := m.keys.DestroyTenantKeysBefore(ctx, tenant, newest.Version)
	if err != nil {
		return 0, fmt.Errorf("destroy the key versions of tenant %s older than %d: %w", tenant, newest.Version, err)
	}
	// Evict even when this call destroyed nothing: another node may have
	// destroyed the versions this cache still holds.
	m.ring.EvictTenant(tenant)
	return n, nil
}
