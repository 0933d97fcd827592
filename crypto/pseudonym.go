package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/eventvault/eventvault"
)

// Pseudonymizer turns data subject ids into pseudonyms: HMAC-SHA256 under a
// deployment-wide key, over the length-prefixed tenant and subject id, in
// hex. The key lives in a key file like the root key's; it is deliberately
// not wrapped by a tenant KEK, because a KEK rotates and its old versions
// are destroyed to bound how long erased data survives in backups, and
// pseudonyms must stay the same for the life of the deployment (they find a
// subject's streams, holds and erasure requests). Losing the file loses the
// link between subject ids and their pseudonyms: back it up with the
// database.
type Pseudonymizer struct {
	path string
	key  []byte
}

// OpenPseudonymizer reads the key file at path, creating it (0600) with 32
// random bytes when missing, under the same rules as OpenLocalRootKey.
func OpenPseudonymizer(path string) (*Pseudonymizer, error) {
	const op = "crypto.OpenPseudonymizer"
	key, err := openKeyFile(op, "pseudonym key", path)
	if err != nil {
		return nil, err
	}
	return &Pseudonymizer{path: path, key: key}, nil
}

// Pseudonym returns the pseudonym of subject within tenant. The same subject
// id in two tenants has two unrelated pseudonyms.
func (p *Pseudonymizer) Pseudonym(tenant eventvault.TenantID, subject string) eventvault.Pseudonym {
	m := hmac.New(sha256.New, p.key)
	m.Write(associatedData(nil).string("eventvault/v1/subject").string(string(tenant)).string(subject))
	return eventvault.Pseudonym(hex.EncodeToString(m.Sum(nil)))
}

// String names the key file; it prints no key bytes.
func (p *Pseudonymizer) String() string { return fmt.Sprintf("Pseudonymizer(%s)", p.path) }

// GoString is String, so that %#v prints no key bytes either.
func (p *Pseudonymizer) GoString() string { return p.String() }
