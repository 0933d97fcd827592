package crypto

import (
	"context"
	"fmt"
	"io"

	"github.com/eventvault/eventvault"
)

// labelRootProbe is the aad of the throwaway key NewestRootVersion wraps:
// no tenant KEK is ever bound to it.
const labelRootProbe = "eventvault/v1/root-version-probe"

// RotateRoot adds a version of the root key through the provider (Vault
// Transit's rotate) and returns its number. New tenant KEKs are wrapped by
// it at once; existing ones move to it with RewrapRootWrapped.
// Errors: EINVALID if the provider cannot rotate (the local root key); the
// provider's codes (EUNAVAILABLE, …) wrapped with context.
func (m *KeyManager) RotateRoot(ctx context.Context) (int, error) {
	rr, err := m.rootRotator("rotate")
	if err != nil {
		return 0, err
	}
	v, err := rr.RotateRoot(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate the root key: %w", err)
	}
	return v, nil
}

// RewrapRootWrapped re-wraps every version of every tenant's KEK, then
// every deployment key (when the store keeps them), under the root key's
// newest version, through the provider's RootRewrapper, so that
// the KEK never leaves the provider in clear, and stores each by
// compare-and-swap (a lost swap is read again and retried). The KEK bytes do
// not change: stream keys, events and cached keys stay valid. It is
// idempotent and resumable: running it again re-wraps under the newest
// version whatever an interrupted run left. It returns how many KEK
// versions it stored and calls progress, if not nil, after each one.
// Errors: EINVALID if the provider cannot rewrap; EINTERNAL wrapping
// ErrAuthentication for a KEK row that is not what it claims; the codes of
// the store and the provider, wrapped with context.
func (m *KeyManager) RewrapRootWrapped(ctx context.Context, progress func(done int)) (int, error) {
	rw, ok := RootAs[RootRewrapper](m.root)
	if !ok {
		return 0, cannotRotate("rewrap")
	}
	done := 0
	err := m.forEachKEK(ctx, func(tenant eventvault.TenantID, wk eventvault.WrappedKey) error {
		stored, err := m.rewrapKEK(ctx, rw, tenant, wk)
		if err != nil || !stored {
			return err
		}
		done++
		if progress != nil {
			progress(done)
		}
		return nil
	})
	if err != nil {
		return done, err
	}
	// The deployment keys too (not counted: done counts KEK versions).
	return done, m.rewrapDeploymentKeys(ctx, rw)
}

// rewrapKEK re-wraps one KEK version by compare-and-swap. It returns false
// if the version is gone.
func (m *KeyManager) rewrapKEK(ctx context.Context, rw RootRewrapper, tenant eventvault.TenantID, wk eventvault.WrappedKey) (bool, error) {
	const op = "crypto.KeyManager.RewrapRootWrapped"
	for range casAttempts {
		h, err := kekHeader(op, tenant, wk)
		if err != nil {
			return false, err
		}
		out, err := rw.RewrapKey(ctx, wk.Ciphertext[headerSize:], tenantKEKAAD(h, tenant))
		if err != nil {
			return false, fmt.Errorf("rewrap version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
		}
		next := wk
		next.Ciphertext = append(h.appendTo(make([]byte, 0, headerSize+len(out))), out...)
		err = m.keys.RewrapTenantKey(ctx, tenant, wk, next)
		switch eventvault.ErrorCode(err) {
		case "":
			return true, nil
		case eventvault.ENOTFOUND:
			return false, nil
		case eventvault.ECONFLICT:
		default:
			return false, fmt.Errorf("store the re-wrapped version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
		}
		wk, err = m.keys.TenantKeyVersion(ctx, tenant, h.keyVersion)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
		}
	}
	return false, &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("a key of tenant %s kept changing while it was re-wrapped; run the re-wrap again", tenant)}
}

// RetireRootVersionsBefore makes the provider refuse, from now on, what
// root key versions older than version wrapped (Vault Transit's
// min_decryption_version), so that KEK rows in old backups no longer
// unwrap. It first checks every KEK version and deployment key in the
// store and refuses while any is still wrapped under an older root version,
// since retiring then would make that tenant's data unreadable, or leave
// no node able to load the deployment keys.
// Errors: EINVALID if the provider cannot rotate, or for a version that is
// not positive or newer than the newest; ECONFLICT while a KEK is still
// wrapped under an older version (Fields: remaining_keks,
// oldest_root_version): run RewrapRootWrapped first; the codes of the store
// and the provider.
func (m *KeyManager) RetireRootVersionsBefore(ctx context.Context, version int) error {
	const op = "crypto.KeyManager.RetireRootVersionsBefore"
	rr, err := m.rootRotator("retire old versions")
	if err != nil {
		return err
	}
	if version < 1 {
		return eventvault.Errorf(eventvault.EINVALID, "before_version must be a root key version, 1 or more, not %d", version)
	}
	newest, err := m.NewestRootVersion(ctx)
	if err != nil {
		return err
	}
	if version > newest {
		return eventvault.Errorf(eventvault.EINVALID, "cannot retire root key versions before %d: the root key's versions are 1 to %d", version, newest)
	}
	// Nothing may still need a version about to be retired: a tenant's KEK
	// (its data would become unreadable) or a deployment key (no node
	// could start).
	for _, c := range []struct {
		count       func(context.Context, RootRotator, int) (int, int, error)
		what, field string
		consequence string
	}{
		{m.kekRowsBefore, "tenant key versions", "remaining_keks", "would make them unreadable"},
		{m.deploymentKeysBefore, "deployment keys", "remaining_deployment_keys", "would leave no node able to start"},
	} {
		remaining, oldest, err := c.count(ctx, rr, version)
		if err != nil {
			return err
		}
		if remaining > 0 {
			return &eventvault.Error{
				Code: eventvault.ECONFLICT,
				Op:   op,
				Message: fmt.Sprintf("%d %s are still wrapped under root key versions older than %d (the oldest under version %d); retiring now %s: re-wrap them first (eventvault rotate root, or POST /v1/admin/root/rotate)",
					remaining, c.what, version, oldest, c.consequence),
				Fields: map[string]any{c.field: remaining, "oldest_root_version": oldest},
			}
		}
	}
	if err := rr.RetireRootVersionsBefore(ctx, version); err != nil {
		return fmt.Errorf("retire root key versions before %d: %w", version, err)
	}
	return nil
}

// NewestRootVersion returns the root key's newest version: the one that
// wraps a throwaway random key, bound to a label that nothing unwraps. It
// costs one call to the provider.
// Errors: EINVALID if the provider has no versions; the provider's codes.
func (m *KeyManager) NewestRootVersion(ctx context.Context) (int, error) {
	rr, err := m.rootRotator("tell its versions")
	if err != nil {
		return 0, err
	}
	probe := make([]byte, keySize)
	defer clear(probe)
	if _, err := io.ReadFull(m.rand, probe); err != nil {
		return 0, internalError("crypto.KeyManager.NewestRootVersion", err, "could not read random bytes")
	}
	wrapped, err := m.root.WrapKey(ctx, probe, []byte(labelRootProbe))
	if err != nil {
		return 0, fmt.Errorf("wrap a probe under the newest root key version: %w", err)
	}
	v, err := rr.RootVersionOf(wrapped)
	if err != nil {
		return 0, fmt.Errorf("root key version of a probe: %w", err)
	}
	return v, nil
}

// RootVersions returns the oldest and newest root key versions that wrap a
// KEK in the store, and how many KEK versions there are; zeros for a store
// without KEKs.
// Errors: EINVALID if the provider has no versions; the codes of the store
// and the provider.
func (m *KeyManager) RootVersions(ctx context.Context) (oldest, newest, keks int, err error) {
	rr, err := m.rootRotator("tell its versions")
	if err != nil {
		return 0, 0, 0, err
	}
	err = m.forEachKEK(ctx, func(tenant eventvault.TenantID, wk eventvault.WrappedKey) error {
		v, err := rootVersionOf(rr, tenant, wk)
		if err != nil {
			return err
		}
		if keks == 0 || v < oldest {
			oldest = v
		}
		newest = max(newest, v)
		keks++
		return nil
	})
	return oldest, newest, keks, err
}

// kekRowsBefore counts the KEK versions wrapped under a root version older
// than version, and returns the oldest root version found.
func (m *KeyManager) kekRowsBefore(ctx context.Context, rr RootRotator, version int) (n, oldest int, err error) {
	err = m.forEachKEK(ctx, func(tenant eventvault.TenantID, wk eventvault.WrappedKey) error {
		v, err := rootVersionOf(rr, tenant, wk)
		if err != nil {
			return err
		}
		if v < version {
			if n == 0 || v < oldest {
				oldest = v
			}
			n++
		}
		return nil
	})
	return n, oldest, err
}

func rootVersionOf(rr RootRotator, tenant eventvault.TenantID, wk eventvault.WrappedKey) (int, error) {
	const op = "crypto.KeyManager.RootVersions"
	h, err := kekHeader(op, tenant, wk)
	if err != nil {
		return 0, err
	}
	v, err := rr.RootVersionOf(wk.Ciphertext[headerSize:])
	if err != nil {
		return 0, fmt.Errorf("root key version of version %d of the key of tenant %s: %w", h.keyVersion, tenant, err)
	}
	return v, nil
}

// forEachKEK calls fn with every version of every tenant's KEK in the store.
func (m *KeyManager) forEachKEK(ctx context.Context, fn func(eventvault.TenantID, eventvault.WrappedKey) error) error {
	tenants, err := m.keys.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	for _, tenant := range tenants {
		newest, err := m.keys.TenantKey(ctx, tenant)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			continue // a tenant without a KEK, or a shredded one
		}
		if err != nil {
			return fmt.Errorf("read key of tenant %s: %w", tenant, err)
		}
		for v := uint32(1); v <= newest.Version; v++ {
			wk := newest
			if v < newest.Version {
				wk, err = m.keys.TenantKeyVersion(ctx, tenant, v)
				if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
					continue
				}
				if err != nil {
					return fmt.Errorf("read version %d of the key of tenant %s: %w", v, tenant, err)
				}
			}
			if err := fn(tenant, wk); err != nil {
				return err
			}
		}
	}
	return nil
}

// rootRotator returns the provider as a RootRotator, or cannotRotate(what)
// for one without versions: what names the operation the caller asked for
// ("retire old versions"), so that a refused retire does not speak of a
// rotation.
func (m *KeyManager) rootRotator(what string) (RootRotator, error) {
	rr, ok := RootAs[RootRotator](m.root)
	if !ok {
		return nil, cannotRotate(what)
	}
	return rr, nil
}

// cannotRotate is the error for a root provider without versions, asked
// to what ("rotate", "retire old versions", "rewrap").
func cannotRotate(what string) *eventvault.Error {
	return eventvault.Errorf(eventvault.EINVALID, "the root key provider cannot %s (the local root key has a single version: it cannot rotate, rewrap or retire; use Vault Transit)", what)
}
