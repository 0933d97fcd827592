package crypto

import (
	"context"
	"fmt"

	"github.com/eventvault/eventvault"
)

// CryptoPeriod is what EndCryptoPeriod did.
type CryptoPeriod struct {
	Tenants        int // tenants whose KEK rotated
	StreamKeys     int // stream keys re-wrapped under the new KEK versions
	DestroyedKEKs  int // old KEK versions destroyed
	RootVersion    int // the new root key version
	RewrappedKEKs  int // KEK versions re-wrapped under it
	RetiredBefore  int // root key versions before this one can no longer unwrap
	SkippedTenants int // tenants without a live KEK (never used, or shredded)
}

// EndCryptoPeriod is how erasure reaches backups. A shredded key is gone
// from the live database at once, but a backup taken before the shred still
// holds the wrapped key, and the tenant KEK and the root key that unwrap it
// live on. Ending a crypto-period takes those away, for every backup taken
// before it began:
//
//  1. every live tenant gets a new KEK version, and its stream keys are
//     re-wrapped under it;
//  2. the older KEK versions are destroyed;
//  3. the root key gets a new version, every (now newest-only) KEK is
//     re-wrapped under it, and older root versions are retired.
//
// A backup from before step 1 then holds only stream keys wrapped by
// destroyed KEK versions, and KEK rows wrapped by retired root versions:
// nothing in it can be decrypted, erased or not. Run it on a schedule; its
// interval is the bound on how long erased data stays readable in backups,
// and also how long a backup stays restorable. Every step is safe to
// repeat, so an interrupted run is finished by running it again.
//
// Errors: EINVALID if the root key provider cannot rotate (the local root
// key); EFORBIDDEN, before any step, if the root key provider's
// credentials lack a permission a step needs (RootPermissionChecker); the
// codes of the steps, wrapped with what was done.
func (m *KeyManager) EndCryptoPeriod(ctx context.Context, progress func(step string, done int)) (CryptoPeriod, error) {
	var out CryptoPeriod
	if _, err := m.rootRotator("end a crypto period"); err != nil {
		return out, err
	}
	// Every permission the steps need, before the first one destroys
	// anything: a token without the rotate policy must not get as far as
	// destroying the old KEK versions.
	if err := m.CheckRootPermissions(ctx, RootWrap, RootUnwrap, RootRewrap, RootRotate, RootRetire); err != nil {
		return out, fmt.Errorf("crypto-period: nothing done: %w", err)
	}
	if progress == nil {
		progress = func(string, int) {}
	}
	tenants, err := m.keys.Tenants(ctx)
	if err != nil {
		return out, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		if _, err := m.keys.TenantKey(ctx, t); err != nil {
			switch eventvault.ErrorCode(err) {
			case eventvault.ENOTFOUND, eventvault.EERASED:
				out.SkippedTenants++
				continue
			}
			return out, fmt.Errorf("key of tenant %s: %w", t, err)
		}
		if _, err := m.RotateTenantKEK(ctx, t); err != nil {
			return out, fmt.Errorf("crypto-period: rotate the KEK of tenant %s: %w", t, err)
		}
		n, err := m.RewrapStreamKeys(ctx, t, nil)
		out.StreamKeys += n
		if err != nil {
			return out, fmt.Errorf("crypto-period: re-wrap the stream keys of tenant %s: %w", t, err)
		}
		d, err := m.DestroyOldKEKs(ctx, t)
		out.DestroyedKEKs += d
		if err != nil {
			return out, fmt.Errorf("crypto-period: destroy old KEK versions of tenant %s: %w", t, err)
		}
		out.Tenants++
		progress("tenants", out.Tenants)
	}
	if out.RootVersion, err = m.RotateRoot(ctx); err != nil {
		return out, fmt.Errorf("crypto-period: rotate the root key: %w", err)
	}
	if out.RewrappedKEKs, err = m.RewrapRootWrapped(ctx, func(n int) { progress("tenant KEKs", n) }); err != nil {
		return out, fmt.Errorf("crypto-period: re-wrap tenant KEKs under root version %d: %w", out.RootVersion, err)
	}
	if err := m.RetireRootVersionsBefore(ctx, out.RootVersion); err != nil {
		return out, fmt.Errorf("crypto-period: retire root versions before %d: %w", out.RootVersion, err)
	}
	out.RetiredBefore = out.RootVersion
	return out, nil
}
