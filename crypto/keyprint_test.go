package crypto

import (
	"bytes"
	crand "crypto/rand"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/crypto/internal/secrettest"
)

// TestNoKeyTypePrintsKeyBytes formats every type of this package that
// holds key bytes, by value and by pointer where both exist, with every
// fmt verb and through slog, and checks that no key byte shows (raw, hex,
// base64, decimal). dsse, pseudonym and deploykeys test their key types the
// same way.
func TestNoKeyTypePrintsKeyBytes(t *testing.T) {
	key := randomBytes(t, keySize)
	cipher := newTestCipher(t, testRef.Tenant, testRef.Stream, uuid.New(), key)
	kek, err := newTenantKEK("acme", uuid.New(), 1, key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := newLocalRootKey("root.key", key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	// A keyring whose every key, key id and nonce comes from random, so
	// that all of it can be looked for, with its cache filled.
	random := randomBytes(t, 4096)
	ring := NewKeyring(root, newMemKeyStore(), KeyringOptions{Rand: bytes.NewReader(random)})
	if _, err := ring.StreamCipher(t.Context(), "acme", "order-1"); err != nil {
		t.Fatal(err)
	}
	cached, ok := ring.cache.Get(cacheKey{kind: cacheTenantKEK, tenant: "acme"})
	if !ok {
		t.Fatal("the keyring cached no KEK")
	}
	ringSecrets := [][]byte{key}
	for chunk := range slices.Chunk(random, keySize) {
		ringSecrets = append(ringSecrets, chunk)
	}

	for _, tc := range []struct {
		name    string
		v       any
		secrets [][]byte
	}{
		{"*StreamCipher", cipher, [][]byte{key, cipher.macKey[:]}},
		{"StreamCipher", *cipher, [][]byte{key, cipher.macKey[:]}},
		{"*tenantKEK", kek, [][]byte{key}},
		{"tenantKEK", *kek, [][]byte{key}},
		{"*LocalRootKey", root, [][]byte{key}},
		{"LocalRootKey", *root, [][]byte{key}},
		{"cacheEntry of a KEK", cacheEntry{kek: kek}, [][]byte{key}},
		{"cacheEntry of a cipher", cacheEntry{cipher: cipher}, [][]byte{key, cipher.macKey[:]}},
		{"cacheEntry from a keyring", cached, ringSecrets},
		{"*Keyring", ring, ringSecrets},
		{"*KeyManager", NewKeyManager(ring), ringSecrets},
		{"KeyManager", *NewKeyManager(ring), ringSecrets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrettest.CheckPrintsNoSecret(t, tc.v, tc.secrets...)
		})
	}
}
