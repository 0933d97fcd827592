package crypto

import (
	"context"
	"crypto/cipher"
	crand "crypto/rand"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault/crypto/internal/keyfile"
	"golang.org/x/crypto/chacha20poly1305"
)

// LocalRootKey is the dev-mode root key: 32 random bytes in a file readable
// by its owner only. It wraps a key as nonce (24 bytes) || XChaCha20-Poly1305
// of the key, with the aad as associated data. Anyone who can read the file
// can read every tenant's data: in production the root key stays in Vault.
type LocalRootKey struct {
	path string
	aead cipher.AEAD
	rand io.Reader
}

// OpenLocalRootKey reads the root key file at path, creating it (mode 0600,
// its directory 0700 if missing) with 32 bytes from crypto/rand when it does
// not exist. It refuses a file that group or others may read or write, and a
// file that is not exactly 32 bytes. It never prints key bytes.
// Errors: EINVALID for a file it refuses; EUNAVAILABLE if the file cannot be
// read or created.
func OpenLocalRootKey(path string) (*LocalRootKey, error) {
	const op = "crypto.OpenLocalRootKey"
	key, err := keyfile.Open(op, "root key", path)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	k, err := newLocalRootKey(path, key, crand.Reader)
	if err != nil {
		return nil, internalError(op, err, "could not use the root key in %s", path)
	}
	return k, nil
}

// newLocalRootKey returns the root key of key. The caller keeps and zeroes key.
func newLocalRootKey(path string, key []byte, rand io.Reader) (*LocalRootKey, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &LocalRootKey{path: path, aead: aead, rand: rand}, nil
}

// String names the key file; it prints no key bytes.
func (k LocalRootKey) String() string { return fmt.Sprintf("LocalRootKey(%s)", k.path) }

// GoString is String.
func (k LocalRootKey) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches the key.
func (k LocalRootKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k LocalRootKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// WrapKey returns nonce || XChaCha20-Poly1305(root key, nonce, key, aad).
// Errors: EINTERNAL if the random source fails.
func (k *LocalRootKey) WrapKey(_ context.Context, key, aad []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(key)+tagSize)
	if _, err := io.ReadFull(k.rand, out); err != nil {
		return nil, internalError("crypto.LocalRootKey.WrapKey", err, "could not read a random nonce")
	}
	return k.aead.Seal(out, out, key, aad), nil
}

// UnwrapKey opens what WrapKey returned for the same aad.
// Errors: EINTERNAL wrapping ErrAuthentication if wrapped or aad was altered
// or wrapped comes from another root key.
func (k *LocalRootKey) UnwrapKey(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	const op = "crypto.LocalRootKey.UnwrapKey"
	if len(wrapped) < nonceSize+tagSize {
		return nil, authError(op, "a key wrapped by the local root key is truncated")
	}
	key, err := k.aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, authError(op, "a key wrapped by the local root key failed authentication: it was altered or moved, or another root key wrapped it")
	}
	return key, nil
}
