package audit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultLogName is the log name of a deployment that configures none. An
// operator running several deployments gives each its own (a schema-less
// URL such as "vault.example.com/audit"), so that origins stay unique.
const DefaultLogName = "eventvault/audit"

// Origin returns the origin line of the checkpoints of a tenant's log,
// "<logName>/<tenant>" (for example "eventvault/audit/acme"). The signature
// key name is the origin too, as C2SP tlog-checkpoint recommends, so a
// pinned verifier key names the one tenant log it vouches for.
func Origin(logName, tenant string) string {
	return logName + "/" + tenant
}

// Checkpoint is the head of a tenant's tree: the body of a C2SP
// tlog-checkpoint (https://c2sp.org/tlog-checkpoint), three lines:
//
//	eventvault/audit/acme
//	1000
//	0e5PTWHTi1ETn1v0JNSZiA5ps0Eqq+rGqbHpuGkZLWI=
//
// origin, tree size in decimal, RFC 6962 root hash in standard base64, each
// ending in a newline. EventVault writes no extension lines.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text returns the checkpoint body, the text a signed note signs.
func (c Checkpoint) Text() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, c.Root)
}

// Tenant returns the tenant named by the origin (its last '/' segment).
func (c Checkpoint) Tenant() string {
	return c.Origin[strings.LastIndexByte(c.Origin, '/')+1:]
}

// ErrMalformedCheckpoint is wrapped by the errors of ParseCheckpoint.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// ParseCheckpoint parses a checkpoint body (not a signed note): exactly the
// three lines Text writes. It checks no signature; use OpenCheckpoint for
// a signed note.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want three lines, each ending in a newline, and no extension lines", ErrMalformedCheckpoint)
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	i := strings.LastIndexByte(origin, '/')
	if i <= 0 || !validKeyName(origin) || !validTenant([]byte(origin[i+1:])) {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not <log name>/<tenant>", ErrMalformedCheckpoint, origin)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: tree size %q", ErrMalformedCheckpoint, sizeText)
	}
	root, err := tlog.ParseHash(rootText)
	if err != nil || root.String() != rootText {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q", ErrMalformedCheckpoint, rootText)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// validKeyName applies the signed-note rule: non-empty, UTF-8, no Unicode
// space, no '+'.
func validKeyName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.Contains(s, "+") &&
		!strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || unicode.IsSpace(r) })
}

// ErrBadSignature is wrapped by OpenCheckpoint's errors when the note is
// not signed, under its origin's name, by a pinned key: an unknown key, a
// signature that does not verify, or no signature at all.
var ErrBadSignature = errors.New("checkpoint is not signed by the pinned key")

// OpenCheckpoint verifies a signed checkpoint note (C2SP signed-note,
// https://c2sp.org/signed-note) against the pinned verifiers and returns its
// checkpoint. The note must carry a valid signature by a pinned key whose
// name is the checkpoint's origin; signatures by other keys are ignored, as
// the spec requires. Errors wrap ErrBadSignature or ErrMalformedCheckpoint.
func OpenCheckpoint(msg []byte, pinned Pinned) (Checkpoint, error) {
	n, err := note.Open(msg, pinned)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) {
			return Checkpoint{}, fmt.Errorf("%w: %s", ErrBadSignature, whyUnverified(unverified.Note, pinned))
		}
		if errors.As(err, &invalid) {
			return Checkpoint{}, fmt.Errorf("%w: the signature with the pinned key (key id %08x, named %s) does not verify: the checkpoint was changed after it was signed, or another key that claims the pinned key's id signed it", ErrBadSignature, invalid.Hash, invalid.Name)
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrMalformedCheckpoint, err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	for _, s := range n.Sigs {
		if s.Name == c.Origin {
			return c, nil
		}
	}
	return Checkpoint{}, fmt.Errorf("%w: no pinned key named %s signed it", ErrBadSignature, c.Origin)
}

// Signer signs the checkpoints of every tenant log of a deployment with one
// Ed25519 key (the deployment's signing key, the one that signs erasure
// certificates: DSSE signs "DSSEv1 …" and a note signs an origin line, which
// holds no space, so neither signature can pass for the other). It is safe
// for concurrent use, and its String shows no key bytes.
type Signer struct {
	logName string
	key     crypto.Signer
	pub     ed25519.PublicKey
}

// NewSigner returns a Signer for the log name (DefaultLogName, or the
// deployment's own) and the signing key: an ed25519.PrivateKey, or any
// crypto.Signer of an Ed25519 key (the deployment key, dsse.SigningKey,
// which never hands out its private half).
func NewSigner(logName string, key crypto.Signer) (*Signer, error) {
	if !validKeyName(logName) || strings.HasSuffix(logName, "/") {
		return nil, fmt.Errorf("audit log name %q: want a non-empty name without spaces, '+' or a trailing '/'", logName)
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit signing key: want an Ed25519 key")
	}
	return &Signer{logName: logName, key: key, pub: pub}, nil
}

// String names the signer without its key.
func (s *Signer) String() string { return "audit.Signer(" + s.logName + ")" }

// Origin returns the origin of the tenant's log under this signer's log name.
func (s *Signer) Origin(tenant string) string { return Origin(s.logName, tenant) }

// VerifierKey returns the note verifier key ("<origin>+<key id hex>+<base64>")
// an auditor of the tenant pins.
func (s *Signer) VerifierKey(tenant string) string {
	vkey, err := VerifierKey(s.Origin(tenant), s.pub)
	if err != nil {
		panic(err) // NewSigner checked the name and the key size.
	}
	return vkey
}

// Sign returns the signed note of the checkpoint: its Text, a blank line and
// one signature line "— <origin> <base64(key id || Ed25519 signature)>". The
// checkpoint's origin must be one of this signer's (Origin(tenant)).
func (s *Signer) Sign(c Checkpoint) ([]byte, error) {
	if _, err := ParseCheckpoint(c.Text()); err != nil || !strings.HasPrefix(c.Origin, s.logName+"/") || c.Size < 0 {
		return nil, fmt.Errorf("sign audit checkpoint: origin %q is not a tenant log of %s", c.Origin, s.logName)
	}
	v, err := note.NewVerifier(s.VerifierKey(c.Tenant()))
	if err != nil {
		return nil, fmt.Errorf("sign audit checkpoint: %w", err)
	}
	return note.Sign(&note.Note{Text: string(c.Text())}, noteSigner{v.Name(), v.KeyHash(), s.key})
}

// noteSigner is the note.Signer of one origin.
type noteSigner struct {
	name string
	hash uint32
	key  crypto.Signer
}

func (n noteSigner) Name() string    { return n.name }
func (n noteSigner) KeyHash() uint32 { return n.hash }

// Sign signs msg itself (Ed25519, not a digest: crypto.Hash(0)).
func (n noteSigner) Sign(msg []byte) ([]byte, error) { return n.key.Sign(nil, msg, crypto.Hash(0)) }

// VerifierKey returns the C2SP signed-note verifier key of an Ed25519 public
// key under a key name (an origin): "<name>+<8 hex digits of key id>+<base64
// of 0x01 || public key>". The server publishes it next to its certificate
// key; the auditor passes it to note.NewVerifier.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(name, pub)
}

// Pinned is the keys an auditor trusts, as the note package looks them up:
// from PinVerifierKey, PublicKeyVerifiers, or note.VerifierList.
type Pinned = note.Verifiers

// PinVerifierKey returns the Pinned of one verifier key (see VerifierKey).
// A checkpoint it does not verify is told apart by its key's name: a key
// of another tenant's log says which log it pins and which the checkpoint
// is of.
func PinVerifierKey(vkey string) (Pinned, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return pinnedKey{Verifiers: note.VerifierList(v), name: v.Name(), hash: v.KeyHash()}, nil
}

// pinnedKey is one pinned verifier key that knows its name, for the
// message when it verifies nothing.
type pinnedKey struct {
	note.Verifiers
	name string
	hash uint32
}

// whyUnverified says why no signature of a checkpoint note verified
// against pinned, naming the key ids it found against the one pinned (a
// key id is the first 4 bytes of SHA-256 over the key's name and public
// key, as a verifier key "<origin>+<key id>+<key>" shows it): the pinned
// key is of another log (another tenant's, or another deployment's log
// name), or of the same log but another key. It names logs and key ids,
// nothing secret.
func whyUnverified(n *note.Note, pinned Pinned) string {
	var (
		origin string
		sigs   []note.Signature
	)
	if n != nil {
		if c, err := ParseCheckpoint([]byte(n.Text)); err == nil {
			origin = c.Origin
		}
		sigs = slices.Concat(n.Sigs, n.UnverifiedSigs)
	}
	if origin == "" {
		// Not a checkpoint: which log it is of cannot be told, so no
		// advice on which key to pin.
		return "the checkpoint's text is not a checkpoint (C2SP tlog-checkpoint: origin, size, root hash), and no pinned key verifies it"
	}
	found := signedWith(origin, sigs)
	const anotherKey = "another deployment's key, or the log was re-signed; ask the operator, over a channel other than the export, which key signs this log"
	switch pk := pinned.(type) {
	case pinnedKey:
		if pk.name != origin {
			return fmt.Sprintf("the pinned verifier key is for log %s, but this bundle's checkpoint is of log %s (%s): pin the verifier key of log %s (eventvault audit export prints it), or the deployment's public key (GET /v1/keys/signing)", pk.name, origin, strings.TrimPrefix(found, "is "), origin)
		}
		return fmt.Sprintf("the checkpoint of log %s %s, but the pinned verifier key has key id %08x (%s+%08x): %s", origin, found, pk.hash, pk.name, pk.hash, anotherKey)
	case publicKeyVerifiers:
		if id, ok := pk.keyID(origin); ok {
			return fmt.Sprintf("the checkpoint of log %s %s, but the pinned public key signs that log with key id %08x (%s+%08x): %s", origin, found, id, origin, id, anotherKey)
		}
	}
	return fmt.Sprintf("the checkpoint of log %s %s, and no pinned key verifies it", origin, found)
}

// signedWith says which keys signed a note, by key id, for whyUnverified:
// "is signed with key id 235a6560". A signature's key name is the log's
// origin, so it is named only when it is not.
func signedWith(origin string, sigs []note.Signature) string {
	if len(sigs) == 0 {
		return "carries no signature"
	}
	var ids []string
	for _, s := range sigs {
		id := fmt.Sprintf("%08x", s.Hash)
		if s.Name != origin {
			id += " (named " + s.Name + ")"
		}
		ids = append(ids, id)
	}
	if len(ids) == 1 {
		return "is signed with key id " + ids[0]
	}
	return "is signed with key ids " + strings.Join(ids, ", ")
}

// PublicKeyVerifiers returns note.Verifiers that know one Ed25519 public key
// under every key name: for an auditor who pinned the deployment's public
// key (GET /v1/keys/signing) rather than one tenant's verifier key. Whatever
// a note's key name, only a signature by this key verifies.
func PublicKeyVerifiers(pub ed25519.PublicKey) Pinned {
	return publicKeyVerifiers{pub}
}

type publicKeyVerifiers struct{ pub ed25519.PublicKey }

// keyID is the key id of the public key under the key name, as a note
// signature by it carries; ok is false for a name no note key may have.
func (p publicKeyVerifiers) keyID(name string) (id uint32, ok bool) {
	vkey, err := VerifierKey(name, p.pub)
	if err != nil {
		return 0, false
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return 0, false
	}
	return v.KeyHash(), true
}

func (p publicKeyVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	vkey, err := VerifierKey(name, p.pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != hash {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return v, nil
}

// checkpointOfNote returns the unverified body of a signed note, for writing
// a bundle (the writer holds the note it signed itself).
func checkpointOfNote(msg []byte) (Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note", ErrMalformedCheckpoint)
	}
	return ParseCheckpoint(msg[:i+1])
}
