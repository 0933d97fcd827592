// Package pseudonym turns data subject ids into pseudonyms: keyed hashes
// that find a subject's streams, holds and erasure requests, and stand for
// the subject in audit records and certificates, without the id.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/internal/keyfile"
)

// label is the first field of what a pseudonym is computed over.
const label = "eventvault/v1/subject"

// Key makes pseudonyms: HMAC-SHA256 under a deployment-wide key, over the
// length-prefixed label, tenant and subject id, in hex. The key lives in a
// key file like the root key's; it is deliberately not wrapped by a tenant
// KEK, because a KEK rotates and its old versions are destroyed to bound
// how long erased data survives in backups, and pseudonyms must stay the
// same for the life of the deployment. Losing the file loses the link
// between subject ids and their pseudonyms: back it up with the database.
// A Key prints no key bytes.
type Key struct {
	path string
	// key is behind a pointer so that no formatting of a copy of the
	// struct, with or without the methods below, reaches the bytes.
	key *[keyfile.Size]byte
}

// OpenKey reads the key file at path, creating it (0600) with 32 random
// bytes when missing, under the same rules as the local root key's file.
// Errors: EINVALID for a file it refuses; EUNAVAILABLE if the file cannot
// be read or created.
func OpenKey(path string) (*Key, error) {
	b, err := keyfile.Open("pseudonym.OpenKey", "pseudonym key", path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k := &Key{path: path, key: new([keyfile.Size]byte)}
	copy(k.key[:], b)
	return k, nil
}

// NewKey returns the Key of the 32 bytes key (a deployment key, unwrapped);
// source names where it came from in String. It copies key; the caller
// zeroes its own copy. Errors: EINVALID for a key that is not 32 bytes.
func NewKey(source string, key []byte) (*Key, error) {
	if len(key) != keyfile.Size {
		return nil, eventvault.Errorf(eventvault.EINVALID, "a pseudonym key is %d bytes, not %d", keyfile.Size, len(key))
	}
	k := &Key{path: source, key: new([keyfile.Size]byte)}
	copy(k.key[:], key)
	return k, nil
}

// Pseudonym returns the pseudonym of subject within tenant. The same
// subject id in two tenants has two unrelated pseudonyms.
func (k *Key) Pseudonym(tenant eventvault.TenantID, subject string) eventvault.Pseudonym {
	m := hmac.New(sha256.New, k.key[:])
	m.Write(field(field(field(nil, label), string(tenant)), subject))
	return eventvault.Pseudonym(hex.EncodeToString(m.Sum(nil)))
}

// Length is the length of a pseudonym: the lower-case hex of an
// HMAC-SHA256, 64 characters.
const Length = 2 * sha256.Size

// Valid reports whether s has the form of a pseudonym: Length lower-case
// hex digits. It tells a pseudonym from a subject id given in its place;
// it says nothing of whether any subject has it.
func Valid(s string) bool {
	if len(s) != Length {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// field appends uint32 big-endian len(f) || f, so that no two lists of
// fields give the same bytes (the encoding of crypto's AAD).
func field(b []byte, f string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
	return append(b, f...)
}

// String names the key's source; it prints no key bytes.
func (k Key) String() string { return fmt.Sprintf("pseudonym.Key(%s)", k.path) }

// GoString is String, so that %#v prints no key bytes either.
func (k Key) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches the key.
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }
