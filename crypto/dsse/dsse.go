// Package dsse signs and verifies the statements EventVault issues (erasure
// certificates) as DSSE envelopes (github.com/secure-systems-lab/dsse) with
// Ed25519. The signing key's 32-byte seed lives in a key file readable by
// its owner only (crypto/internal/keyfile); the private key never leaves a
// SigningKey, which prints none of it. Verifiers need only the public key
// (GET /v1/keys/signing).
package dsse

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/internal/keyfile"
)

// SigningKey signs statements with Ed25519 under a key id derived from its
// public key.
type SigningKey struct {
	path string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// OpenSigningKey reads the signing key seed at path, creating the file
// (0600) with 32 bytes from crypto/rand when missing, under the same rules
// as the local root key's file. Errors: EINVALID for a file it refuses;
// EUNAVAILABLE if the file cannot be read or created.
func OpenSigningKey(path string) (*SigningKey, error) {
	const op = "dsse.OpenSigningKey"
	seed, err := keyfile.Open(op, "signing key", path)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &SigningKey{path: path, priv: priv, pub: pub, id: KeyID(pub)}, nil
}

// NewSigningKey returns the SigningKey of the 32-byte Ed25519 seed (a
// deployment key, unwrapped); source names where it came from in String.
// It does not keep seed; the caller zeroes it.
// Errors: EINVALID for a seed that is not 32 bytes.
func NewSigningKey(source string, seed []byte) (*SigningKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, eventvault.Errorf(eventvault.EINVALID, "a signing key seed is %d bytes, not %d", ed25519.SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &SigningKey{path: source, priv: priv, pub: pub, id: KeyID(pub)}, nil
}

// KeyID names a public key: "ed25519:" and the first 16 bytes of its
// SHA-256, base64url. It lets a verifier pick the right key after a change
// of signing key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// PublicKey returns the key that verifies this key's signatures.
func (k *SigningKey) PublicKey() ed25519.PublicKey { return k.pub }

// CryptoSigner returns the key as a crypto.Signer, for signed formats
// other than DSSE (the audit log's signed notes): it signs a message
// itself with Ed25519 (opts crypto.Hash(0)) and never hands out the
// private key.
func (k *SigningKey) CryptoSigner() crypto.Signer { return rawSigner{k} }

type rawSigner struct{ k *SigningKey }

func (r rawSigner) Public() crypto.PublicKey { return r.k.pub }

func (r rawSigner) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	return r.k.priv.Sign(nil, message, opts)
}

func (r rawSigner) String() string { return r.k.String() }

func (r rawSigner) GoString() string { return r.k.String() }

func (r rawSigner) Format(f fmt.State, _ rune) { io.WriteString(f, r.k.String()) }

// KeyID returns KeyID of the public key.
func (k *SigningKey) KeyID() string { return k.id }

// String names the key file and key id; it prints no key bytes.
func (k SigningKey) String() string { return fmt.Sprintf("SigningKey(%s, %s)", k.path, k.id) }

// GoString is String, so that %#v prints no key bytes either.
func (k SigningKey) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches the key.
func (k SigningKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k SigningKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Envelope is a signed statement in the DSSE format: the payload, its type,
// and signatures over PAE(payloadType, payload). Because the signature
// covers the exact payload bytes, a verifier never has to re-serialise JSON.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // base64 in JSON
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an Envelope.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // base64 in JSON
}

// pae is DSSE's pre-authentication encoding.
func pae(payloadType string, payload []byte) []byte {
	b := []byte("DSSEv1 " + strconv.Itoa(len(payloadType)) + " " + payloadType + " " + strconv.Itoa(len(payload)) + " ")
	return append(b, payload...)
}

// Sign returns an Envelope of payload signed by k.
func (k *SigningKey) Sign(payloadType string, payload []byte) Envelope {
	sig := ed25519.Sign(k.priv, pae(payloadType, payload))
	return Envelope{
		PayloadType: payloadType,
		Payload:     append([]byte(nil), payload...),
		Signatures:  []Signature{{KeyID: k.id, Sig: sig}},
	}
}

// ErrBadSignature is returned, wrapped, when an envelope does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks that env has payloadType and a valid signature by pub, and
// returns the payload. Errors: EINVALID wrapping ErrBadSignature for a
// wrong type, a missing or bad signature.
func Verify(pub ed25519.PublicKey, payloadType string, env Envelope) ([]byte, error) {
	bad := func(msg string) error {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: "dsse.Verify", Message: msg, Err: ErrBadSignature}
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, bad(fmt.Sprintf("the public key is %d bytes; an Ed25519 public key is %d", len(pub), ed25519.PublicKeySize))
	}
	if env.PayloadType != payloadType {
		return nil, bad(fmt.Sprintf("the envelope holds %q, not %q", env.PayloadType, payloadType))
	}
	id := KeyID(pub)
	for _, s := range env.Signatures {
		if s.KeyID == id && ed25519.Verify(pub, pae(env.PayloadType, env.Payload), s.Sig) {
			return env.Payload, nil
		}
	}
	return nil, bad(fmt.Sprintf("no valid signature by key %s: the statement was altered or signed by another key", id))
}

// Parse decodes the JSON form of an Envelope.
// Errors: EINVALID.
func Parse(b []byte) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Envelope{}, &eventvault.Error{Code: eventvault.EINVALID, Op: "dsse.Parse", Message: "not a signed envelope (DSSE JSON with payloadType, payload, signatures)", Err: err}
	}
	return env, nil
}
