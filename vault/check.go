package vault

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/eventvault/eventvault"
	"github.com/hashicorp/vault/api"
)

// keyTypes are the Transit key types EventVault accepts: AEADs with 256-bit
// keys, which support derivation.
var keyTypes = []string{"aes256-gcm96", "chacha20-poly1305"}

// Check verifies, before the server serves, that the provider can work:
// Vault answers and is unsealed, the token is valid, the mount is a Transit
// engine, the key exists with derived=true, an accepted type and no
// convergent encryption (creating it when Config.CreateKey is set), and a
// test key wraps and unwraps. Each error names what is missing and how to
// fix it, with Vault's address; none holds a token.
// Errors: EUNAVAILABLE if Vault is unreachable or sealed; EINVALID for
// everything an operator must fix (token, policy, mount, key).
func (t *Transit) Check(ctx context.Context) error {
	const op = "vault.Transit.Check"
	at := "Vault at " + t.cfg.Address
	fail := func(code eventvault.Code, detail string, cause error) error {
		return &eventvault.Error{Code: code, Op: op, Message: detail, Err: cause}
	}
	lift := func(err error) error { return lift(op, err) }

	health, err := t.client.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		return lift(t.fail(op, "sys/health", "read", err))
	case !health.Initialized:
		return fail(eventvault.EUNAVAILABLE, at+" is not initialized (vault operator init)", nil)
	case health.Sealed:
		return fail(eventvault.EUNAVAILABLE, at+" is sealed (unseal it: vault operator unseal)", nil)
	}

	if _, err := t.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		if isStatus(err, http.StatusForbidden) {
			return fail(eventvault.EINVALID, fmt.Sprintf("%s rejected the token (permission denied for auth/token/lookup-self): it is wrong, expired or revoked, or its policies lack Vault's default policy", at), err)
		}
		return lift(t.fail(op, "auth/token/lookup-self", "read", err))
	}

	if err := t.checkMount(ctx); err != nil {
		return err
	}

	k, err := t.keyInfo(ctx, op)
	if err != nil && t.cfg.CreateKey && isKeyMissing(err) {
		if err := t.createKey(ctx); err != nil {
			return lift(t.fail(op, t.keyPath, "create", err))
		}
		k, err = t.keyInfo(ctx, op)
	}
	if err != nil {
		if isKeyMissing(err) {
			return fail(eventvault.EINVALID, t.keyMissing(), nil)
		}
		return lift(err)
	}
	if problem := t.keyProblem(k); problem != "" {
		return fail(eventvault.EINVALID, problem, nil)
	}

	probe := make([]byte, 32)
	if _, err := crand.Read(probe); err != nil {
		return fail(eventvault.EINTERNAL, "could not read random bytes for the Vault check", err)
	}
	aad := []byte("eventvault/vault-check")
	wrapped, err := t.WrapKey(ctx, probe, aad)
	if err != nil {
		return lift(err)
	}
	got, err := t.UnwrapKey(ctx, wrapped, aad)
	if err != nil {
		return lift(err)
	}
	if !bytes.Equal(got, probe) {
		return fail(eventvault.EINVALID, fmt.Sprintf("%s: the transit key '%s' decrypted a test key to other bytes", at, t.cfg.key()), nil)
	}
	t.logger.Info("Vault Transit root key ready", "vault_addr", t.cfg.Address, "key", t.keyPath,
		"type", k.Type, "latest_version", k.LatestVersion, "min_decryption_version", k.MinDecryptionVersion)
	return nil
}

// checkMount confirms the mount is a Transit engine when Vault says what it
// is; a token without access to the mount learns nothing here (Vault does
// not tell apart a missing mount and a forbidden one), and the key read
// that follows names the problem.
func (t *Transit) checkMount(ctx context.Context) error {
	mount := t.cfg.mount() + "/"
	s, err := t.read(ctx, "sys/internal/ui/mounts/"+t.cfg.mount())
	if err != nil || s == nil {
		return nil
	}
	typ, _ := s.Data["type"].(string)
	path, _ := s.Data["path"].(string)
	if path != "" && strings.TrimSuffix(path, "/")+"/" != mount {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: "vault.Transit.Check",
			Message: fmt.Sprintf("Vault at %s: no transit mount at '%s': that path belongs to the %s mount at '%s' (enable transit: vault secrets enable -path=%s transit)", t.cfg.Address, mount, typ, path, t.cfg.mount())}
	}
	if typ != "" && typ != "transit" {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: "vault.Transit.Check",
			Message: fmt.Sprintf("Vault at %s: the mount at '%s' is a %s engine, not transit (enable transit elsewhere and set -vault-transit-mount, or: vault secrets enable -path=%s transit)", t.cfg.Address, mount, typ, t.cfg.mount())}
	}
	return nil
}

// keyProblem says what makes k unfit for EventVault, or "".
func (t *Transit) keyProblem(k keyInfo) string {
	create := fmt.Sprintf("vault write -f %s type=aes256-gcm96 derived=true", t.keyPath)
	switch {
	case !contains(keyTypes, k.Type):
		return fmt.Sprintf("Vault at %s: transit key '%s' is of type %s; EventVault needs one of %s (%s, under another name, and set -vault-transit-key)",
			t.cfg.Address, t.cfg.key(), k.Type, strings.Join(keyTypes, ", "), strings.Replace(create, t.cfg.key(), "<name>", 1))
	case !k.Derived:
		return fmt.Sprintf("Vault at %s: transit key '%s' is not derived: EventVault binds each wrapped tenant key to its tenant through the derivation context, and derivation cannot be switched on later (create a new key: %s, under another name, and set -vault-transit-key)",
			t.cfg.Address, t.cfg.key(), strings.Replace(create, t.cfg.key(), "<name>", 1))
	case k.Convergent:
		return fmt.Sprintf("Vault at %s: transit key '%s' uses convergent encryption, which makes equal keys wrap to equal ciphertexts; use a key without it", t.cfg.Address, t.cfg.key())
	case k.LatestVersion < 1:
		return fmt.Sprintf("Vault at %s: transit key '%s' has no version", t.cfg.Address, t.cfg.key())
	}
	return ""
}

// createKey creates the Transit key: aes256-gcm96, derived.
func (t *Transit) createKey(ctx context.Context) error {
	if _, err := t.write(ctx, t.keyPath, map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
		return err
	}
	t.logger.Warn("created the Vault Transit root key, as -vault-create-key allows", "vault_addr", t.cfg.Address, "key", t.keyPath)
	return nil
}

func isKeyMissing(err error) bool {
	var f *vaultFailure
	return errors.As(err, &f) && isNotFound(f.err)
}

func isStatus(err error, status int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// isOutage reports an error that may heal by itself: no answer, a 5xx, a
// 429. A refusal (403, 404, 400) needs an operator.
func isOutage(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return true
	}
	return re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lift makes the detail of a failed request the message of a start-up
// error, which an operator reads: EUNAVAILABLE for an outage that may heal,
// EINVALID for what an operator must fix.
func lift(op string, err error) error {
	var f *vaultFailure
	if !errors.As(err, &f) {
		return err
	}
	code := eventvault.EINVALID
	if isOutage(f.err) {
		code = eventvault.EUNAVAILABLE
	}
	return &eventvault.Error{Code: code, Op: op, Message: f.detail, Err: f.err}
}
