package vault

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/hashicorp/vault/api"
)

// keyInfo is what EventVault reads of a Transit key (transit/keys/:name).
type keyInfo struct {
	Type                 string
	Derived              bool
	Convergent           bool
	LatestVersion        int
	MinDecryptionVersion int
}

func keyInfoOf(s *api.Secret) (keyInfo, error) {
	if s == nil || s.Data == nil {
		return keyInfo{}, fmt.Errorf("empty answer")
	}
	num := func(name string) (int, error) {
		switch v := s.Data[name].(type) {
		case json.Number:
			n, err := v.Int64()
			return int(n), err
		case float64:
			return int(v), nil
		}
		return 0, fmt.Errorf("no %s in the answer", name)
	}
	var k keyInfo
	var err error
	k.Type, _ = s.Data["type"].(string)
	k.Derived, _ = s.Data["derived"].(bool)
	k.Convergent, _ = s.Data["convergent_encryption"].(bool)
	if k.LatestVersion, err = num("latest_version"); err != nil {
		return keyInfo{}, err
	}
	if k.MinDecryptionVersion, err = num("min_decryption_version"); err != nil {
		return keyInfo{}, err
	}
	return k, nil
}

// keyInfo reads the Transit key. A missing key is EUNAVAILABLE with the
// command that creates it.
func (t *Transit) keyInfo(ctx context.Context, op string) (keyInfo, error) {
	s, err := t.read(ctx, t.keyPath)
	if err != nil {
		if isNotFound(err) {
			return keyInfo{}, unavailable(op, &vaultFailure{detail: t.keyMissing(), err: err})
		}
		return keyInfo{}, t.fail(op, t.keyPath, "read", err)
	}
	k, err := keyInfoOf(s)
	if err != nil {
		return keyInfo{}, internal(op, "Vault answered a key read without the key's versions", err)
	}
	return k, nil
}

// RotateRoot adds a version to the Transit key (transit/keys/:name/rotate)
// and returns its number. New wraps use it at once; older versions still
// unwrap until RetireRootVersionsBefore. The request is retried like any
// other, so a lost answer may add two versions, which is harmless.
// Errors: EUNAVAILABLE as for WrapKey (the policy needs "update" on
// transit/keys/:name/rotate).
func (t *Transit) RotateRoot(ctx context.Context) (int, error) {
	const op = "vault.Transit.RotateRoot"
	path := t.keyPath + "/rotate"
	s, err := t.write(ctx, path, nil)
	if err != nil {
		return 0, t.fail(op, path, "update", err)
	}
	if k, err := keyInfoOf(s); err == nil {
		t.logger.Info("rotated the Vault Transit root key", "key", t.keyPath, "version", k.LatestVersion)
		return k.LatestVersion, nil
	}
	k, err := t.keyInfo(ctx, op)
	if err != nil {
		return 0, err
	}
	t.logger.Info("rotated the Vault Transit root key", "key", t.keyPath, "version", k.LatestVersion)
	return k.LatestVersion, nil
}

// RetireRootVersionsBefore sets the Transit key's min_decryption_version to
// version, so that Vault refuses to unwrap what older versions wrapped
// (UnwrapKey then answers EKEYRETIRED). It never lowers the setting: a version
// at or below the current minimum changes nothing, so running it again is
// safe. Vault keeps the retired versions until an operator trims them
// (transit/keys/:name/trim); until then lowering min_decryption_version in
// Vault by hand undoes the retirement.
// Errors: EINVALID if version is below 1 or above the newest version;
// EUNAVAILABLE as for WrapKey (the policy needs "read" on
// transit/keys/:name and "update" on transit/keys/:name/config).
func (t *Transit) RetireRootVersionsBefore(ctx context.Context, version int) error {
	const op = "vault.Transit.RetireRootVersionsBefore"
	k, err := t.keyInfo(ctx, op)
	if err != nil {
		return err
	}
	switch {
	case version < 1 || version > k.LatestVersion:
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op,
			Message: fmt.Sprintf("cannot retire root key versions before %d: the root key's versions are 1 to %d", version, k.LatestVersion)}
	case version <= k.MinDecryptionVersion:
		return nil
	}
	path := t.keyPath + "/config"
	if _, err := t.write(ctx, path, map[string]any{"min_decryption_version": version}); err != nil {
		return t.fail(op, path, "update", err)
	}
	t.logger.Warn("retired Vault Transit root key versions: keys they wrapped can no longer be unwrapped",
		"key", t.keyPath, "min_decryption_version", version)
	return nil
}

// RootVersionOf returns the Transit key version of a wrapped key, read from
// its "vault:vN:" prefix without calling Vault.
// Errors: EINTERNAL wrapping crypto.ErrAuthentication if wrapped is not a
// Transit ciphertext.
func (t *Transit) RootVersionOf(wrapped []byte) (int, error) {
	ct, err := parseCiphertext(wrapped)
	if err != nil {
		return 0, authError("vault.Transit.RootVersionOf", err.Error())
	}
	return ct.version, nil
}

// ProbeRoot reads the Transit key (transit/keys/:name, which the server's
// policy allows): one request that proves Vault answers, is unsealed, takes
// the token and holds the key, and says which versions still unwrap. It
// implements crypto.RootProber; readiness calls it, through a cache. It
// is tried once, not retried (tryOnce): within readiness's deadline it
// says what Vault said, such as sealed.
// Errors: EUNAVAILABLE as for WrapKey.
func (t *Transit) ProbeRoot(ctx context.Context) (evcrypto.RootStatus, error) {
	k, err := t.keyInfo(tryOnce(ctx), "vault.Transit.ProbeRoot")
	if err != nil {
		return evcrypto.RootStatus{}, err
	}
	return evcrypto.RootStatus{LatestVersion: k.LatestVersion, MinDecryptionVersion: k.MinDecryptionVersion}, nil
}
