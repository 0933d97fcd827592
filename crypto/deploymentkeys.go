package crypto

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/eventvault/eventvault"
)

// labelDeploymentKey is the first field of a deployment key's associated
// data (crypto/deploykeys).
const labelDeploymentKey = "eventvault/v1/deployment-key"

// DeploymentKeyAAD returns the associated data that binds a deployment key
// wrapped by the root to its name and version:
//
//	uint32(len(label)) || label || uint32(len(name)) || name || uint32 version
//	label = "eventvault/v1/deployment-key"
//
// crypto/deploykeys wraps with it; the root's rotation re-wraps with it.
func DeploymentKeyAAD(name string, version uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(labelDeploymentKey)))
	b = append(b, labelDeploymentKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return binary.BigEndian.AppendUint32(b, version)
}

// deploymentKeys is the store's deployment keys when it keeps them (both
// stores do; a bare KeyStore need not).
func (m *KeyManager) deploymentKeys() (eventvault.DeploymentKeyStore, bool) {
	ds, ok := m.keys.(eventvault.DeploymentKeyStore)
	return ds, ok
}

// rewrapDeploymentKeys re-wraps every deployment key under the root key's
// newest version, by compare-and-swap, so that retiring older root
// versions leaves every node able to load them. The keys never leave the
// provider in clear.
func (m *KeyManager) rewrapDeploymentKeys(ctx context.Context, rw RootRewrapper) error {
	ds, ok := m.deploymentKeys()
	if !ok {
		return nil
	}
	keys, err := ds.DeploymentKeys(ctx)
	if err != nil {
		return fmt.Errorf("list deployment keys: %w", err)
	}
	for _, k := range keys {
		if err := m.rewrapDeploymentKey(ctx, ds, rw, k); err != nil {
			return err
		}
	}
	return nil
}

func (m *KeyManager) rewrapDeploymentKey(ctx context.Context, ds eventvault.DeploymentKeyStore, rw RootRewrapper, k eventvault.DeploymentKey) error {
	for range casAttempts {
		out, err := rw.RewrapKey(ctx, k.Wrapped, DeploymentKeyAAD(k.Name, k.Version))
		if err != nil {
			return fmt.Errorf("rewrap deployment key %s version %d: %w", k.Name, k.Version, err)
		}
		err = ds.RewrapDeploymentKey(ctx, k, out)
		switch eventvault.ErrorCode(err) {
		case "":
			return nil
		case eventvault.ECONFLICT:
		default:
			return fmt.Errorf("store the re-wrapped deployment key %s version %d: %w", k.Name, k.Version, err)
		}
		name := k.Name
		if k, err = ds.DeploymentKey(ctx, name); err != nil {
			return fmt.Errorf("read deployment key %s: %w", name, err)
		}
	}
	return &eventvault.Error{Code: eventvault.ECONFLICT, Op: "crypto.KeyManager.RewrapRootWrapped", Message: fmt.Sprintf("deployment key %s kept changing while it was re-wrapped; run the re-wrap again", k.Name)}
}

// deploymentKeysBefore counts the deployment keys wrapped under a root
// version older than version, and the oldest such version.
func (m *KeyManager) deploymentKeysBefore(ctx context.Context, rr RootRotator, version int) (n, oldest int, err error) {
	ds, ok := m.deploymentKeys()
	if !ok {
		return 0, 0, nil
	}
	keys, err := ds.DeploymentKeys(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list deployment keys: %w", err)
	}
	for _, k := range keys {
		v, err := rr.RootVersionOf(k.Wrapped)
		if err != nil {
			return 0, 0, fmt.Errorf("root key version of deployment key %s version %d: %w", k.Name, k.Version, err)
		}
		if v < version {
			if n == 0 || v < oldest {
				oldest = v
			}
			n++
		}
	}
	return n, oldest, nil
}
