// Package deploykeys keeps the keys every node of a deployment shares
// besides the root: the pseudonym key (crypto/pseudonym), the seed of the
// key that signs erasure certificates (crypto/dsse) and the key that binds
// API token verifiers (auth). Each is 32 bytes from crypto/rand, created
// once per deployment by Init (`eventvault init`, or a dev-mode start),
// stored wrapped by the root key (eventvault.DeploymentKeyStore) and loaded
// by every node with Load. A production node only loads: a node that made
// its own pseudonym key would erase other subjects than its peers.
//
// The wrapping is RootKeyProvider.WrapKey(key, aad) with
//
//	aad = uint32(len(label)) || label || uint32(len(name)) || name || uint32 version
//	label = "eventvault/v1/deployment-key"
//
// so that a wrapped key moved to another name or version does not unwrap.
// No type here prints key bytes, and no error holds any.
package deploykeys

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/internal/keyfile"
	"github.com/eventvault/eventvault/crypto/pseudonym"
)

// The names of the deployment keys.
const (
	Pseudonym     = "pseudonym"
	Signing       = "signing"
	TokenVerifier = "token-verifier"
)

// Names lists every deployment key, in the order Init creates them.
var Names = []string{Pseudonym, Signing, TokenVerifier}

// Size is the length of every deployment key.
const Size = 32

// version is the version of every key Init creates; there is no rotation
// of deployment keys yet.
const version = 1

// AAD returns the associated data that binds a wrapped deployment key to
// its name and version (crypto.DeploymentKeyAAD, which the root's rotation
// re-wraps with).
func AAD(name string, version uint32) []byte { return evcrypto.DeploymentKeyAAD(name, version) }

// Keys are a deployment's keys, unwrapped. They print no key bytes.
type Keys struct {
	Pseudonyms    *pseudonym.Key
	Signer        *dsse.SigningKey
	TokenVerifier *TokenKey
}

// String names the keys; it prints no key bytes.
func (k Keys) String() string {
	id := "none"
	if k.Signer != nil {
		id = k.Signer.KeyID()
	}
	return fmt.Sprintf("deploykeys.Keys(%s, %s %s, %s)", Pseudonym, Signing, id, TokenVerifier)
}

// GoString is String, so that %#v prints no key bytes either.
func (k Keys) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches a key.
func (k Keys) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// TokenKey is the token-verifier key: it computes the verifiers the store
// keeps of API tokens (auth.VerifierKey). It prints no key bytes.
type TokenKey struct {
	// key is behind a pointer so that no formatting of a copy of the
	// struct reaches the bytes.
	key *[Size]byte
}

// NewTokenKey returns the TokenKey of the 32 bytes key; it copies key.
// Errors: EINVALID for a key that is not 32 bytes.
func NewTokenKey(key []byte) (*TokenKey, error) {
	if len(key) != Size {
		return nil, eventvault.Errorf(eventvault.EINVALID, "a token-verifier key is %d bytes, not %d", Size, len(key))
	}
	k := &TokenKey{key: new([Size]byte)}
	copy(k.key[:], key)
	return k, nil
}

// TokenVerifier returns HMAC-SHA256(key, secret).
func (k *TokenKey) TokenVerifier(secret string) [sha256.Size]byte {
	m := hmac.New(sha256.New, k.key[:])
	m.Write([]byte(secret))
	var v [sha256.Size]byte
	m.Sum(v[:0])
	return v
}

// String names the key; it prints no key bytes.
func (k TokenKey) String() string { return "deploykeys.TokenKey(" + TokenVerifier + ")" }

// GoString is String, so that %#v prints no key bytes either.
func (k TokenKey) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches the key.
func (k TokenKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k TokenKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ErrMissing is wrapped by Load's error when a deployment key has not been
// created: run `eventvault init`.
var ErrMissing = eventvault.Errorf(eventvault.ENOTFOUND, "deployment keys missing")

// Load reads, unwraps and returns every deployment key. It never creates
// one. Errors: ENOTFOUND wrapping ErrMissing, naming the missing keys; the
// root provider's errors (EINTERNAL wrapping crypto.ErrAuthentication for a
// wrapped key that does not open under this root, name and version;
// EUNAVAILABLE); the store's.
func Load(ctx context.Context, root evcrypto.RootKeyProvider, store eventvault.DeploymentKeyStore) (*Keys, error) {
	raw := make(map[string][]byte, len(Names))
	defer func() {
		for _, b := range raw {
			clear(b)
		}
	}()
	var missing []string
	for _, name := range Names {
		k, err := store.DeploymentKey(ctx, name)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read deployment key %s: %w", name, err)
		}
		b, err := unwrap(ctx, root, k)
		if err != nil {
			return nil, err
		}
		raw[name] = b
	}
	if len(missing) > 0 {
		return nil, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: "deploykeys.Load",
			Message: fmt.Sprintf("the deployment keys %s are missing from the database; "+
				"create them once per deployment with 'eventvault init' (same database and Vault flags as the server)", strings.Join(missing, ", ")),
			Err: ErrMissing}
	}
	var keys Keys
	var err error
	if keys.Pseudonyms, err = pseudonym.NewKey("deployment key "+Pseudonym, raw[Pseudonym]); err != nil {
		return nil, fmt.Errorf("deployment key %s: %w", Pseudonym, err)
	}
	if keys.Signer, err = dsse.NewSigningKey("deployment key "+Signing, raw[Signing]); err != nil {
		return nil, fmt.Errorf("deployment key %s: %w", Signing, err)
	}
	if keys.TokenVerifier, err = NewTokenKey(raw[TokenVerifier]); err != nil {
		return nil, fmt.Errorf("deployment key %s: %w", TokenVerifier, err)
	}
	return &keys, nil
}

func unwrap(ctx context.Context, root evcrypto.RootKeyProvider, k eventvault.DeploymentKey) ([]byte, error) {
	b, err := root.UnwrapKey(ctx, k.Wrapped, AAD(k.Name, k.Version))
	if errors.Is(err, evcrypto.ErrAuthentication) {
		return nil, fmt.Errorf("unwrap deployment key %s version %d (was it created under another root key, or moved from another row?): %w", k.Name, k.Version, err)
	}
	if err != nil {
		return nil, fmt.Errorf("unwrap deployment key %s version %d: %w", k.Name, k.Version, err)
	}
	if len(b) != Size {
		clear(b)
		return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: "deploykeys.Load", Message: fmt.Sprintf("deployment key %s version %d unwraps to %d bytes, not %d", k.Name, k.Version, len(b), Size)}
	}
	return b, nil
}

// Outcome says what Init did with one key.
type Outcome string

const (
	Created  Outcome = "created"
	Imported Outcome = "imported"
	// Present: the key was there already and was left alone (with an
	// import: it holds the imported bytes).
	Present Outcome = "already present"
)

// Result is what Init did with one key. It holds no key bytes.
type Result struct {
	Name    string
	Version uint32
	Outcome Outcome
	// KeyID is the signing key's public key id, for the signing key.
	KeyID string
}

// Init creates every missing deployment key, from imports[name] when given
// (32 bytes: an existing key file's, so that existing pseudonyms and
// published signatures stay valid), else from rand (crypto/rand when nil),
// wraps it by root and stores it. A key that exists is never replaced; an
// import that differs from it is refused. Several nodes may run Init at
// once: each gets the key that won. It returns what it did for each key, in
// Names order. Init does not keep or zero imports.
// Errors: EINVALID for an import of a wrong size or unknown name, or one
// that differs from the stored key (ECONFLICT); the root provider's and the
// store's.
func Init(ctx context.Context, root evcrypto.RootKeyProvider, store eventvault.DeploymentKeyStore, imports map[string][]byte, rand io.Reader) ([]Result, error) {
	if rand == nil {
		rand = crand.Reader
	}
	for name, b := range imports {
		if !known(name) {
			return nil, eventvault.Errorf(eventvault.EINVALID, "there is no deployment key %q to import; the keys are %s", name, strings.Join(Names, ", "))
		}
		if len(b) != Size {
			return nil, eventvault.Errorf(eventvault.EINVALID, "the imported %s key is %d bytes, not %d", name, len(b), Size)
		}
	}
	var results []Result
	for _, name := range Names {
		r, err := initOne(ctx, root, store, name, imports[name], rand)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

func initOne(ctx context.Context, root evcrypto.RootKeyProvider, store eventvault.DeploymentKeyStore, name string, imported []byte, rand io.Reader) (Result, error) {
	stored, err := store.DeploymentKey(ctx, name)
	switch {
	case err == nil:
		return checkPresent(ctx, root, stored, imported)
	case eventvault.ErrorCode(err) != eventvault.ENOTFOUND:
		return Result{}, fmt.Errorf("read deployment key %s: %w", name, err)
	}
	key := make([]byte, Size)
	defer clear(key)
	outcome := Created
	if imported != nil {
		copy(key, imported)
		outcome = Imported
	} else if _, err := io.ReadFull(rand, key); err != nil {
		return Result{}, fmt.Errorf("generate deployment key %s: %w", name, err)
	}
	wrapped, err := root.WrapKey(ctx, key, AAD(name, version))
	if err != nil {
		return Result{}, fmt.Errorf("wrap deployment key %s: %w", name, err)
	}
	k := eventvault.DeploymentKey{Name: name, Version: version, Wrapped: wrapped, CreatedAt: time.Now().UTC()}
	got, err := store.CreateDeploymentKey(ctx, k)
	if err != nil {
		return Result{}, fmt.Errorf("store deployment key %s: %w", name, err)
	}
	if subtle.ConstantTimeCompare(got.Wrapped, wrapped) != 1 {
		// Another node created it first: report that one.
		return checkPresent(ctx, root, got, imported)
	}
	return result(name, version, outcome, key)
}

func checkPresent(ctx context.Context, root evcrypto.RootKeyProvider, stored eventvault.DeploymentKey, imported []byte) (Result, error) {
	b, err := unwrap(ctx, root, stored)
	if err != nil {
		return Result{}, err
	}
	defer clear(b)
	if imported != nil && subtle.ConstantTimeCompare(b, imported) != 1 {
		return Result{}, &eventvault.Error{Code: eventvault.ECONFLICT, Op: "deploykeys.Init",
			Message: fmt.Sprintf("the deployment key %s exists already and differs from the one to import; it is not replaced "+
				"(a changed key would break pseudonyms or published signatures)", stored.Name)}
	}
	return result(stored.Name, stored.Version, Present, b)
}

func result(name string, version uint32, o Outcome, key []byte) (Result, error) {
	r := Result{Name: name, Version: version, Outcome: o}
	if name == Signing {
		s, err := dsse.NewSigningKey("deployment key "+Signing, key)
		if err != nil {
			return Result{}, fmt.Errorf("deployment key %s: %w", Signing, err)
		}
		r.KeyID = s.KeyID()
	}
	return r, nil
}

func known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// ReadKeyFile reads a key file of the kind servers used before deployment
// keys (32 raw bytes, readable by its owner only), to import it as the
// named key. It never creates the file. The caller zeroes the bytes.
// Errors: EINVALID for a file it refuses; ENOTFOUND; EUNAVAILABLE.
func ReadKeyFile(name, path string) ([]byte, error) {
	return keyfile.Read("deploykeys.ReadKeyFile", name+" key", path)
}
