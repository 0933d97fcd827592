package crypto

import (
	"crypto/cipher"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// tenantKEK is an unwrapped tenant key-encrypting key. It wraps and unwraps
// the tenant's stream keys locally; the key bytes live only in its AEAD.
type tenantKEK struct {
	tenant  eventvault.TenantID
	id      uuid.UUID
	version uint32
	aead    cipher.AEAD
}

// newTenantKEK returns the KEK of key. The caller keeps and zeroes key.
func newTenantKEK(tenant eventvault.TenantID, id uuid.UUID, version uint32, key []byte) (*tenantKEK, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &tenantKEK{tenant: tenant, id: id, version: version, aead: aead}, nil
}

// String names the KEK; it prints no key bytes.
func (k tenantKEK) String() string {
	return fmt.Sprintf("tenantKEK(%s key %s v%d)", k.tenant, k.id, k.version)
}

// GoString is String.
func (k tenantKEK) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches the key.
func (k tenantKEK) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k tenantKEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

func (k *tenantKEK) header() header {
	return header{kind: kindStreamKey, keyID: k.id, keyVersion: k.version}
}

// wrapStreamKey seals a stream key for one stream of the KEK's tenant:
// header || nonce || sealed key.
func (k *tenantKEK) wrapStreamKey(stream eventvault.StreamName, streamKeyID uuid.UUID, key []byte, rand io.Reader) ([]byte, error) {
	h := k.header()
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(key)+tagSize)
	h.appendTo(out[:0])
	nonce := out[headerSize:]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, nonce, key, streamKeyAAD(h, k.tenant, stream, streamKeyID)), nil
}

// unwrapStreamKey opens a stream key row wrapped by this KEK (version
// included: the caller has checked the header names it). The caller zeroes
// the key it gets.
func (k *tenantKEK) unwrapStreamKey(stream eventvault.StreamName, wk eventvault.WrappedKey) ([]byte, error) {
	const op = "crypto.Keyring.unwrapStreamKey"
	if len(wk.Ciphertext) < sealedMin {
		return nil, authError(op, "the key row of stream %s is truncated", stream)
	}
	aad := streamKeyAAD(k.header(), k.tenant, stream, wk.ID)
	key, err := k.aead.Open(nil, wk.Ciphertext[headerSize:headerSize+nonceSize], wk.Ciphertext[headerSize+nonceSize:], aad)
	if err != nil {
		return nil, authError(op, "the key %s of stream %s failed authentication: the key row was altered or belongs to another stream or tenant", wk.ID, stream)
	}
	if len(key) != keySize {
		clear(key)
		return nil, authError(op, "the key %s of stream %s has %d bytes, not %d", wk.ID, stream, len(key), keySize)
	}
	return key, nil
}
