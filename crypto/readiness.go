package crypto

import (
	"context"
	"fmt"

	"github.com/eventvault/eventvault"
)

// RootStatus is what a root key provider says of itself when probed.
type RootStatus struct {
	// LatestVersion is the root key's newest version.
	LatestVersion int
	// MinDecryptionVersion is its oldest version that still unwraps:
	// older ones were retired.
	MinDecryptionVersion int
}

// RootProber is a root key provider that can tell, with one cheap request
// that changes nothing, whether it answers and which of its versions still
// unwrap. Readiness (/readyz) asks it.
type RootProber interface {
	// ProbeRoot errors: EUNAVAILABLE if the root key cannot be reached or
	// refuses (with what to fix in the cause).
	ProbeRoot(ctx context.Context) (RootStatus, error)
}

// ProbeRoot probes the root key provider. ok is false for a provider that
// cannot be probed (the local root key, which is a file already read).
func (m *KeyManager) ProbeRoot(ctx context.Context) (s RootStatus, ok bool, err error) {
	p, ok := RootAs[RootProber](m.root)
	if !ok {
		return RootStatus{}, false, nil
	}
	s, err = p.ProbeRoot(ctx)
	return s, true, err
}

// KEKsUnderRetiredRoot counts the tenants whose newest KEK version is
// wrapped by a root key version below minVersion, which the root no longer
// unwraps, and the tenants with a live KEK (total). It reads each tenant's
// newest KEK row and the root version in its ciphertext's prefix; it calls
// no root key provider. A database restored from a backup taken before the
// last crypto-period has every tenant under retired versions. A provider
// without versions (the local root key) has none: 0, 0.
func (m *KeyManager) KEKsUnderRetiredRoot(ctx context.Context, minVersion int) (retired, total int, err error) {
	const op = "crypto.KeyManager.KEKsUnderRetiredRoot"
	rr, ok := RootAs[RootRotator](m.root)
	if !ok {
		return 0, 0, nil
	}
	tenants, err := m.keys.Tenants(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range tenants {
		wk, err := m.keys.TenantKey(ctx, t)
		switch eventvault.ErrorCode(err) {
		case "":
		case eventvault.ENOTFOUND, eventvault.EERASED:
			continue
		default:
			return 0, 0, fmt.Errorf("read key of tenant %s: %w", t, err)
		}
		if _, err := kekHeader(op, t, wk); err != nil {
			return 0, 0, err
		}
		v, err := rr.RootVersionOf(wk.Ciphertext[headerSize:])
		if err != nil {
			return 0, 0, err
		}
		total++
		if v < minVersion {
			retired++
		}
	}
	return retired, total, nil
}
