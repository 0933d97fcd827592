package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/hashicorp/vault/api"
)

// ErrRootVersionRetired is the cause of the error for a key wrapped by a
// Transit key version below the key's min_decryption_version: retired on
// purpose (RetireRootVersionsBefore): what it protected is unreadable
// (eventvault.EKEYRETIRED), which is not an erasure a subject asked for.
// Lowering min_decryption_version in Vault again brings it back, until the
// key is trimmed.
var ErrRootVersionRetired = errors.New("the root key version was retired")

// unavailableMessage is what a client of EventVault learns about a Vault
// outage; the details (address, path, Vault's words) go to the log.
const unavailableMessage = "the root key (Vault Transit) is unavailable; retry later"

// deniedMessage is what a client learns when Vault refuses the server's
// token (HTTP 403): not "retry later", since it does not heal by itself.
// The log, and a command's error, name the policy, the path and the
// capability. A 403 is also what Vault answers a revoked or expired token,
// so the message names both causes.
const deniedMessage = "the root key (Vault Transit) refused this server's request: its Vault token may have been revoked or expired, or its Vault policy lacks a capability; an operator must give the server a valid token (a new one written to its token file is used without a restart) or fix the policy (the server log names the policy and the path)"

func invalid(op string, err error) *eventvault.Error {
	return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: err.Error()}
}

func unavailable(op string, err error) *eventvault.Error {
	return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: unavailableMessage, Err: err}
}

func internal(op, msg string, err error) *eventvault.Error {
	return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: msg, Err: err}
}

func authError(op, msg string) *eventvault.Error {
	return &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: msg, Err: evcrypto.ErrAuthentication}
}

// vaultErrors joins the messages of Vault's error answer.
func vaultErrors(re *api.ResponseError) string {
	if len(re.Errors) == 0 {
		return fmt.Sprintf("HTTP %d", re.StatusCode)
	}
	return strings.Join(re.Errors, "; ")
}

func hasVaultError(re *api.ResponseError, substr string) bool {
	for _, e := range re.Errors {
		if strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

// explain says, for an operator, why a request to path failed, and whether
// it is an outage (EUNAVAILABLE: unreachable, sealed, 5xx, refused by
// policy, mount or key missing) or something else (EINTERNAL).
// capability is what the token's policy needs on path.
func (t *Transit) explain(path, capability string, err error) (code eventvault.Code, detail string) {
	at := "Vault at " + t.cfg.Address
	var re *api.ResponseError
	if !errors.As(err, &re) {
		var cve *tls.CertificateVerificationError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return eventvault.EUNAVAILABLE, fmt.Sprintf("%s did not answer %s in time", at, path)
		case errors.As(err, &cve):
			return eventvault.EUNAVAILABLE, fmt.Sprintf("%s is unreachable: its TLS certificate does not verify (%v); set -vault-cacert to the CA that signed it, or -vault-tls-server-name to the name it holds", at, cve.Err)
		case strings.Contains(err.Error(), "tls:"):
			return eventvault.EUNAVAILABLE, at + " is unreachable: the TLS handshake failed (does Vault want a client certificate? -vault-client-cert, -vault-client-key)"
		}
		return eventvault.EUNAVAILABLE, at + " is unreachable"
	}
	switch {
	case re.StatusCode == http.StatusForbidden:
		detail := fmt.Sprintf("%s: permission denied for %s: the token may have been revoked or expired, or its policy lacks the %q capability on %s (Vault policy %s in docs/operations.md)",
			at, path, capability, path, t.policyFor(path))
		if t.ofKey(path) {
			// A policy grants one key by name: a misspelt key name is
			// denied as a missing capability is, never "not found".
			detail += fmt.Sprintf("; or -vault-transit-key (%s) is not the key the policy names: check its spelling", t.cfg.key())
		}
		if t.cfg.TokenFile != "" && !t.cfg.usesAppRole() {
			detail += fmt.Sprintf("; the token file %s was read again and held no other token: a new token written there is used at the next request", t.cfg.TokenFile)
		}
		return eventvault.EUNAVAILABLE, detail
	case hasVaultError(re, "no handler for route"):
		return eventvault.EUNAVAILABLE, fmt.Sprintf("%s: no transit mount at '%s/' (enable it: vault secrets enable -path=%s transit)", at, t.cfg.mount(), t.cfg.mount())
	case hasVaultError(re, "encryption key not found"):
		return eventvault.EUNAVAILABLE, t.keyMissing()
	case hasVaultError(re, "Vault is sealed"):
		return eventvault.EUNAVAILABLE, at + " is sealed (unseal it: vault operator unseal)"
	case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusPreconditionFailed:
		return eventvault.EUNAVAILABLE, fmt.Sprintf("%s answered %s with HTTP %d: %s", at, path, re.StatusCode, vaultErrors(re))
	}
	return eventvault.EINTERNAL, fmt.Sprintf("%s refused %s with HTTP %d: %s", at, path, re.StatusCode, vaultErrors(re))
}

// ofKey reports whether path is one of the root key's own: its key, its
// encrypt, decrypt and rewrap endpoints, and those below its key (rotate,
// config).
func (t *Transit) ofKey(path string) bool {
	switch path {
	case t.keyPath, t.encryptPath, t.decryptPath, t.rewrapPath:
		return true
	}
	return strings.HasPrefix(path, t.keyPath+"/")
}

func (t *Transit) keyMissing() string {
	return fmt.Sprintf("Vault at %s: transit key '%s' not found (create it: vault write -f %s/keys/%s type=aes256-gcm96 derived=true)",
		t.cfg.Address, t.cfg.key(), t.cfg.mount(), t.cfg.key())
}

// fail turns a failed request into an *eventvault.Error: the client sees a
// short message, the log the detail and Vault's own error.
func (t *Transit) fail(op, path, capability string, err error) error {
	var e *eventvault.Error
	if errors.As(err, &e) {
		return err // already ours (a failed re-login)
	}
	code, detail := t.explain(path, capability, err)
	cause := &vaultFailure{detail: detail, err: err}
	if isStatus(err, http.StatusForbidden) {
		// A permission problem is reported as one, never as "retry later".
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: deniedMessage, Err: cause}
	}
	if code == eventvault.EUNAVAILABLE {
		return unavailable(op, cause)
	}
	return internal(op, "Vault refused a request for the root key", cause)
}

// failOpen is fail for decrypt and rewrap, where Vault's 400 answers are
// about the ciphertext: it did not authenticate, or its version is retired.
// Vault's words for them name no byte of the ciphertext.
func (t *Transit) failOpen(op, path string, version int, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && !hasVaultError(re, "encryption key not found") {
		if hasVaultError(re, "too old") {
			return &eventvault.Error{
				Code:    eventvault.EKEYRETIRED,
				Op:      op,
				Message: fmt.Sprintf("the key was wrapped by version %d of the root key, which has been retired (a crypto-period ended after this copy of the data was taken, as when a backup from before it is restored): what it protected cannot be read here, though no erasure of it was requested", version),
				Err:     fmt.Errorf("%w (Vault: %s)", ErrRootVersionRetired, vaultErrors(re)),
			}
		}
		return &eventvault.Error{
			Code:    eventvault.EINTERNAL,
			Op:      op,
			Message: "a key wrapped by Vault Transit failed authentication: it was altered or moved, or another Transit key wrapped it",
			Err:     fmt.Errorf("%w (Vault: %s)", evcrypto.ErrAuthentication, vaultErrors(re)),
		}
	}
	return t.fail(op, path, "update", err)
}

// isNotFound reports a 404 that is about the item, not about a path no
// mount serves.
func isNotFound(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound && !hasVaultError(re, "no handler for route")
}

// vaultFailure is a failed Vault request: detail says, for an operator,
// what went wrong and how to fix it; err is what the Vault client returned.
type vaultFailure struct {
	detail string
	err    error
}

func (f *vaultFailure) Error() string { return f.detail + ": " + f.err.Error() }

func (f *vaultFailure) Unwrap() error { return f.err }
