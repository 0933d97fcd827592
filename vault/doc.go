// Package vault is the production root key of EventVault: a HashiCorp Vault
// Transit key that wraps and unwraps tenant KEKs (level 1) without ever
// leaving Vault. Transit implements crypto.RootKeyProvider, and
// crypto.RootRewrapper and crypto.RootRotator for root rotation. It is the
// only package that imports github.com/hashicorp/vault/api.
//
// # Binding a wrapped KEK to its tenant
//
// The keyring passes an aad that names the KEK's tenant, id and version; a
// KEK wrapped for one aad must not unwrap for another. Transit offers two
// ways to bind a ciphertext: associated_data on encrypt and decrypt (AEAD
// key types), and the context of a derived key (derived=true: a key derived
// per context, HKDF-SHA256). Vault 1.21's transit/rewrap does not take
// associated_data (builtin/logical/transit/path_rewrap.go decrypts and
// encrypts again with the context and nonce only), so a ciphertext bound by
// associated_data could not be rewrapped at root rotation. EventVault
// therefore uses a derived key and sends, as context, the SHA-256 of the
// aad: the same binding on encrypt, decrypt and rewrap, a fixed length, and
// no tenant id in Vault's request logs. The key must be aes256-gcm96 or
// chacha20-poly1305, derived, and not convergent; Check refuses any other.
//
// A wrapped key is Transit's ciphertext as is, "vault:vN:<base64>", N being
// the Transit key version. The provider accepts only that canonical
// spelling before it asks Vault (Vault reads "v0" as version 1 and ignores
// some base64 slack, which would let an altered ciphertext open).
//
// # Errors
//
//   - Vault unreachable, timed out, sealed, answering 5xx or 429:
//     EUNAVAILABLE, which the API answers with 503 and Retry-After.
//   - Permission denied (a policy without the capability, an expired or
//     revoked token), mount or key missing: also EUNAVAILABLE. Nothing is
//     wrong with the request or the data, EventVault cannot reach its root
//     key until an operator acts, and an outage must never be taken for
//     tampering. The error (logged, not shown to clients) names the path
//     and the capability the policy lacks.
//   - A ciphertext Vault refuses to decrypt (altered, moved, wrapped for
//     another aad or by another key): EINTERNAL wrapping
//     crypto.ErrAuthentication, as for the local root key.
//   - A ciphertext under a version below min_decryption_version:
//     EKEYRETIRED (HTTP 503 key_retired) wrapping ErrRootVersionRetired; retiring versions is how old backups
//     are made unreadable.
//
// Clients see "the root key (Vault Transit) is unavailable; retry later",
// or, for a permission denied, that the server's token may have been
// revoked or expired or its Vault policy lacks a capability (never "retry
// later"); the log gets Vault's address, the path and Vault's own words.
// No error or log line holds a token, a secret id, a key, a plaintext or a
// ciphertext.
//
// # Start-up check and key creation
//
// Check runs before the server serves: Vault answers and is unsealed, the
// token is valid, the mount is Transit, the key exists with the right
// settings, and a test key wraps and unwraps. Each failure says what is
// missing and the command that fixes it. Check creates a missing key only
// when Config.CreateKey is set (-vault-create-key): by default a wrong key
// name must fail rather than silently start a new root of trust.
//
// # Authentication
//
// A token or AppRole. An inline token (Config.Token) is kept as given. A
// token file (Config.TokenFile) is read at New and again whenever Vault
// answers 403: if it then holds another token (revoked and re-issued, as
// a restart of `make vault-dev` does, or renewed by Vault Agent), the
// provider uses it from then on, logs that (the file's path, never the
// token) and repeats the request once. With AppRole the provider logs in
// at New and, on a 403 (the token expired), logs in once more and repeats
// the request; the secret id file is read at each login, so it may be
// replaced. Concurrent refusals renew once. No goroutine runs in the
// background.
//
// # Retries
//
// Requests are retried (Config.MaxRetries, linear back-off with jitter)
// after a connection error, a 5xx or a 429, within Config.Timeout for the
// whole operation. Encrypt, decrypt and rewrap are safe to repeat; a
// repeated rotate adds one more key version, which is harmless.
package vault
