package crypto

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// PIIRef is the place of a personal value: a value sealed for one PIIRef
// opens for no other (another tenant, subject, token, pointer, class or
// version).
type PIIRef struct {
	Tenant  eventvault.TenantID
	Subject eventvault.Pseudonym
	Token   string
	Pointer string
	Class   eventvault.PIIClass
	Version int64
}

// SubjectCipher seals and opens the personal values of one data subject
// with the subject's key (level 2, wrapped by the tenant KEK). It holds the
// key only inside its AEAD and MAC state; it prints no key bytes. It keeps
// the values OpenValueAt opened, for as long as the Keyring's cache keeps
// it (subjectvalues.go). It is safe for concurrent use.
type SubjectCipher struct {
	tenant  eventvault.TenantID
	subject eventvault.Pseudonym
	keyID   uuid.UUID
	aead    cipher.AEAD
	macKey  *[32]byte
	rand    io.Reader
	// values are the values this cipher opened (subjectvalues.go).
	values *openedValues
}

// subjectKeyVersion is the version of every subject key: like stream keys,
// they are never rotated (a KEK rotation would re-wrap them).
const subjectKeyVersion = 1

func newSubjectCipher(tenant eventvault.TenantID, subject eventvault.Pseudonym, keyID uuid.UUID, key []byte, rand io.Reader) (*SubjectCipher, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	mk, err := hkdf.Key(sha256.New, key, nil, infoPIIDigest, 32)
	if err != nil {
		return nil, err
	}
	c := &SubjectCipher{tenant: tenant, subject: subject, keyID: keyID, aead: aead, macKey: new([32]byte), rand: rand}
	c.values = &openedValues{}
	copy(c.macKey[:], mk)
	clear(mk)
	return c, nil
}

// KeyID returns the id of the subject key.
func (c *SubjectCipher) KeyID() uuid.UUID { return c.keyID }

// String names the subject pseudonym and the key id; it prints no key bytes.
func (c SubjectCipher) String() string {
	return fmt.Sprintf("SubjectCipher(%s/%s key %s)", c.tenant, c.subject, c.keyID)
}

// GoString is String.
func (c SubjectCipher) GoString() string { return c.String() }

// Format prints String whatever the verb.
func (c SubjectCipher) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs String.
func (c SubjectCipher) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Digest returns HMAC-SHA256, under a key derived from the subject key, of
// pointer, class and value. The engine puts it where the value was when it
// computes an event's content MAC, so that a retried append is recognised
// without the MAC depending on the value once the subject key is destroyed.
func (c *SubjectCipher) Digest(pointer string, class eventvault.PIIClass, value []byte) []byte {
	m := hmac.New(sha256.New, c.macKey[:])
	m.Write(aadBuilder(nil).string(pointer).string(string(class)).bytes(value))
	return m.Sum(nil)
}

// SealValue encrypts a personal value (JSON) for ref.
// Errors: EINTERNAL for a ref of another tenant or subject, or a failing
// random source.
func (c *SubjectCipher) SealValue(ref PIIRef, value []byte) ([]byte, error) {
	const op = "crypto.SubjectCipher.SealValue"
	if ref.Tenant != c.tenant || ref.Subject != c.subject {
		return nil, internalError(op, nil, "the cipher of one subject cannot seal a value of another")
	}
	h := header{kind: kindPIIValue, keyID: c.keyID, keyVersion: subjectKeyVersion}
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(value)+tagSize)
	h.appendTo(out[:0])
	nonce := out[headerSize:]
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return nil, internalError(op, err, "could not read a random nonce for a personal value")
	}
	return c.aead.Seal(out, nonce, value, piiAAD(h, ref)), nil
}

// OpenValue authenticates and decrypts a value sealed for ref.
// Errors: EINTERNAL wrapping ErrAuthentication if it was altered, moved to
// another tenant, subject, token, pointer, class or version, or sealed with
// another key.
func (c *SubjectCipher) OpenValue(ref PIIRef, sealed []byte) ([]byte, error) {
	const op = "crypto.SubjectCipher.OpenValue"
	failed := func(why string) *eventvault.Error {
		return authError(op, "personal value %s failed authentication: %s", ref.Token, why)
	}
	if ref.Tenant != c.tenant || ref.Subject != c.subject {
		return nil, failed("it belongs to another subject")
	}
	h, err := parseHeader(sealed)
	switch {
	case err != nil:
		return nil, failed(describeHeaderError(err))
	case h.kind != kindPIIValue:
		return nil, failed(fmt.Sprintf("the envelope holds a %s, not a personal value", h.kind))
	case h.keyID != c.keyID:
		return nil, failed("sealed with another subject key")
	case len(sealed) < sealedMin:
		return nil, failed("truncated envelope")
	}
	v, err := c.aead.Open(nil, sealed[headerSize:headerSize+nonceSize], sealed[headerSize+nonceSize:], piiAAD(h, ref))
	if err != nil {
		return nil, failed("altered, moved or sealed with another key")
	}
	return v, nil
}

// piiAAD is what a personal value is bound to; h names the subject key.
func piiAAD(h header, ref PIIRef) []byte {
	return newAAD(h, labelPIIValue, 4*6+len(ref.Tenant)+len(ref.Subject)+len(ref.Token)+len(ref.Pointer)+len(ref.Class)+8).
		string(string(ref.Tenant)).string(string(ref.Subject)).string(ref.Token).string(ref.Pointer).string(string(ref.Class)).int64(ref.Version)
}

// subjectKeyAAD is what a subject key is bound to under the tenant KEK; h
// names the KEK.
func subjectKeyAAD(h header, tenant eventvault.TenantID, subject eventvault.Pseudonym, keyID uuid.UUID) []byte {
	return newAAD(h, labelSubjectKey, 4*4+len(tenant)+len(subject)+16+4).
		string(string(tenant)).string(string(subject)).bytes(keyID[:]).uint32(h.keyVersion)
}

// wrapSubjectKey seals a subject key under the KEK.
func (k *tenantKEK) wrapSubjectKey(subject eventvault.Pseudonym, keyID uuid.UUID, key []byte, rand io.Reader) ([]byte, error) {
	h := header{kind: kindSubjectKey, keyID: k.id, keyVersion: k.version}
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(key)+tagSize)
	h.appendTo(out[:0])
	nonce := out[headerSize:]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, nonce, key, subjectKeyAAD(h, k.tenant, subject, keyID)), nil
}

// unwrapSubjectKey opens a subject key row wrapped by this KEK. The caller
// zeroes the key.
func (k *tenantKEK) unwrapSubjectKey(subject eventvault.Pseudonym, wk eventvault.WrappedKey) ([]byte, error) {
	const op = "crypto.SubjectKeys.unwrap"
	if len(wk.Ciphertext) < sealedMin {
		return nil, authError(op, "the key row of a subject is truncated")
	}
	h := header{kind: kindSubjectKey, keyID: k.id, keyVersion: k.version}
	key, err := k.aead.Open(nil, wk.Ciphertext[headerSize:headerSize+nonceSize], wk.Ciphertext[headerSize+nonceSize:], subjectKeyAAD(h, k.tenant, subject, wk.ID))
	if err != nil || len(key) != keySize {
		clear(key)
		return nil, authError(op, "the subject key %s failed authentication: the key row was altered or belongs to another subject or tenant", wk.ID)
	}
	return key, nil
}
