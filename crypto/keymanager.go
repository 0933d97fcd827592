package crypto

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault"
)

// KeyManager rotates, re-wraps and destroys the keys a Keyring uses, as
// Tink's keyset.Manager manages what a keyset.Handle only uses: it adds
// tenant KEK versions and moves stream keys to them, destroys old KEK
// versions, rotates and retires root key versions, and ends crypto-periods.
// The Keyring keeps the hot path (sealing and opening); the manager shares
// its cache, so a rotation here is seen at once by appends and reads on
// this node, and on other nodes within the cache TTL or on their eviction.
// It is safe for concurrent use.
type KeyManager struct {
	ring *Keyring
	root RootKeyProvider
	keys eventvault.KeyStore
	rand io.Reader
}

// NewKeyManager returns the manager of the keyring's keys.
func NewKeyManager(ring *Keyring) *KeyManager {
	return &KeyManager{ring: ring, root: ring.root, keys: ring.keys, rand: ring.rand}
}

// String names the manager; it holds unwrapped keys (through its keyring's
// cache) and prints none of them.
func (m KeyManager) String() string { return "crypto.KeyManager" }

// GoString is String, so that %#v prints no key bytes either.
func (m KeyManager) GoString() string { return m.String() }

// Format prints String whatever the verb, so that no verb reaches a key.
func (m KeyManager) Format(f fmt.State, _ rune) { io.WriteString(f, m.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (m KeyManager) LogValue() slog.Value { return slog.StringValue(m.String()) }

// RootRewrapper is a root key provider that can re-encrypt a wrapped key
// under its newest root key version without the key ever leaving the
// provider in clear (Vault Transit's rewrap). Root rotation re-wraps every
// tenant KEK through it. Re-wrapping a key already under the newest version
// is harmless, which makes an interrupted rotation safe to run again.
type RootRewrapper interface {
	RewrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}

// RootRotator is a root key provider whose key has versions: it can add a
// version, and retire the versions older than a given one so that what they
// wrapped (including copies in old backups) can no longer be unwrapped.
type RootRotator interface {
	// RotateRoot adds a root key version and returns its number.
	RotateRoot(ctx context.Context) (int, error)
	// RetireRootVersionsBefore refuses, from now on, to unwrap anything
	// wrapped by a version older than version (Vault Transit's
	// min_decryption_version). Errors: EINVALID if version is newer than the
	// newest version.
	RetireRootVersionsBefore(ctx context.Context, version int) error
	// RootVersionOf returns the root key version that produced wrapped.
	RootVersionOf(wrapped []byte) (int, error)
}
