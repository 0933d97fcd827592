package vault_test

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/cryptotest"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// The provider satisfies the interfaces the keyring and rotation use.
var (
	_ evcrypto.RootKeyProvider = (*vault.Transit)(nil)
	_ evcrypto.RootRewrapper   = (*vault.Transit)(nil)
	_ evcrypto.RootRotator     = (*vault.Transit)(nil)
)

func open(t *testing.T, cfg vault.Config) *vault.Transit {
	t.Helper()
	p, err := vault.New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	return p
}

func openChecked(t *testing.T, cfg vault.Config) *vault.Transit {
	t.Helper()
	p := open(t, cfg)
	if err := p.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return p
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := crand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func wrap(t *testing.T, p *vault.Transit, key, aad []byte) []byte {
	t.Helper()
	w, err := p.WrapKey(t.Context(), key, aad)
	if err != nil {
		t.Fatalf("WrapKey: %v", err)
	}
	return w
}

func unwrapEquals(t *testing.T, p *vault.Transit, wrapped, aad, want []byte) {
	t.Helper()
	got, err := p.UnwrapKey(t.Context(), wrapped, aad)
	if err != nil {
		t.Fatalf("UnwrapKey: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("UnwrapKey returned another key")
	}
}

func TestTransitPassesTheRootKeyProviderSuite(t *testing.T) {
	s := vaulttest.Start(t)
	cryptotest.RunRootKeyProvider(t, openChecked(t, s.Config()))
}

func TestTransitWrapsAsVaultCiphertextOfTheNewestVersion(t *testing.T) {
	s := vaulttest.Start(t)
	p := openChecked(t, s.Config())
	w := wrap(t, p, randomKey(t), []byte("aad"))
	if !bytes.HasPrefix(w, []byte("vault:v1:")) {
		t.Fatalf("wrapped key does not start with vault:v1: (%d bytes)", len(w))
	}
	if v, err := p.RootVersionOf(w); err != nil || v != 1 {
		t.Fatalf("RootVersionOf = %d, %v; want 1", v, err)
	}
	// Vault reads "v0" as version 1; the provider must not, or an altered
	// ciphertext would open.
	for _, bad := range []string{"vault:v0:" + string(w[len("vault:v1:"):]), "vault:v01:" + string(w[len("vault:v1:"):]), "vault:v1:" + string(w[len("vault:v1:"):]) + "\n"} {
		_, err := p.UnwrapKey(t.Context(), []byte(bad), []byte("aad"))
		if !errors.Is(err, evcrypto.ErrAuthentication) {
			t.Errorf("UnwrapKey of a respelled ciphertext: %v; want an authentication failure", err)
		}
		if _, err := p.RootVersionOf([]byte(bad)); !errors.Is(err, evcrypto.ErrAuthentication) {
			t.Errorf("RootVersionOf of a respelled ciphertext: %v; want an authentication failure", err)
		}
	}
}

// An attacker who copies tenant A's wrapped KEK into tenant B's place must
// not get A's key back under B's name: not by unwrap, and not by having
// Vault rewrap it for B.
func TestTenantKEKWrappedForOneTenantDoesNotUnwrapForAnother(t *testing.T) {
	s := vaulttest.Start(t)
	p := openChecked(t, s.Config())
	aadA := []byte("eventvault/tenant-kek\x00tenant-a\x00key-1\x00v1")
	aadB := []byte("eventvault/tenant-kek\x00tenant-b\x00key-1\x00v1")
	key := randomKey(t)
	wrappedA := wrap(t, p, key, aadA)

	_, err := p.UnwrapKey(t.Context(), wrappedA, aadB)
	if !errors.Is(err, evcrypto.ErrAuthentication) || eventvault.ErrorCode(err) != eventvault.EINTERNAL {
		t.Fatalf("UnwrapKey of A's KEK as B's: %v; want EINTERNAL wrapping ErrAuthentication", err)
	}
	if _, err := p.RewrapKey(t.Context(), wrappedA, aadB); !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("RewrapKey of A's KEK as B's: %v; want an authentication failure", err)
	}
	unwrapEquals(t, p, wrappedA, aadA, key)

	// Another Transit key, with tenant A's own aad, does not open it either.
	s.Write(vaulttest.Mount+"/keys/other-root", map[string]any{"type": "aes256-gcm96", "derived": true})
	cfg := s.Config()
	cfg.Key = "other-root"
	other := openChecked(t, cfg)
	if _, err := other.UnwrapKey(t.Context(), wrappedA, aadA); !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("UnwrapKey with another Transit key: %v; want an authentication failure", err)
	}
}

func TestWrapAndUnwrapAcrossRootRotationAndRetirement(t *testing.T) {
	s := vaulttest.Start(t)
	p := openChecked(t, s.Config())
	ctx := t.Context()
	aad := []byte("eventvault/tenant-kek\x00acme\x00v1")
	kept, rewrapped := randomKey(t), randomKey(t)
	w1 := wrap(t, p, kept, aad)
	w1r := wrap(t, p, rewrapped, aad)

	v, err := p.RotateRoot(ctx)
	if err != nil || v != 2 {
		t.Fatalf("RotateRoot = %d, %v; want 2", v, err)
	}
	fresh := randomKey(t)
	w2 := wrap(t, p, fresh, aad)
	if v, _ := p.RootVersionOf(w2); v != 2 {
		t.Fatalf("a key wrapped after rotation is under version %d, want 2", v)
	}
	unwrapEquals(t, p, w1, aad, kept) // old versions still unwrap

	rw, err := p.RewrapKey(ctx, w1r, aad)
	if err != nil {
		t.Fatalf("RewrapKey: %v", err)
	}
	if v, _ := p.RootVersionOf(rw); v != 2 {
		t.Fatalf("RewrapKey gave version %d, want 2", v)
	}
	unwrapEquals(t, p, rw, aad, rewrapped)
	again, err := p.RewrapKey(ctx, rw, aad) // rewrapping the newest is harmless
	if err != nil {
		t.Fatalf("RewrapKey of a key under the newest version: %v", err)
	}
	unwrapEquals(t, p, again, aad, rewrapped)

	if err := p.RetireRootVersionsBefore(ctx, 2); err != nil {
		t.Fatalf("RetireRootVersionsBefore(2): %v", err)
	}
	_, err = p.UnwrapKey(ctx, w1, aad)
	if !errors.Is(err, vault.ErrRootVersionRetired) || eventvault.ErrorCode(err) != eventvault.EKEYRETIRED {
		t.Fatalf("UnwrapKey of a key under a retired version: %v; want EKEYRETIRED wrapping ErrRootVersionRetired", err)
	}
	if _, err := p.RewrapKey(ctx, w1, aad); eventvault.ErrorCode(err) != eventvault.EKEYRETIRED {
		t.Fatalf("RewrapKey of a key under a retired version: %v; want EKEYRETIRED", err)
	}
	unwrapEquals(t, p, rw, aad, rewrapped)
	unwrapEquals(t, p, w2, aad, fresh)

	// Never lowered; never past the newest version.
	if err := p.RetireRootVersionsBefore(ctx, 1); err != nil {
		t.Fatalf("RetireRootVersionsBefore(1) after 2: %v", err)
	}
	if got := s.Read(vaulttest.Mount + "/keys/" + vaulttest.Key)["min_decryption_version"]; got != float64(2) {
		t.Fatalf("min_decryption_version = %v after asking for 1, want it kept at 2", got)
	}
	for _, bad := range []int{0, 3} {
		if err := p.RetireRootVersionsBefore(ctx, bad); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("RetireRootVersionsBefore(%d): %v; want EINVALID", bad, err)
		}
	}
}

func TestOperationsFailUnavailableWhileVaultIsSealedOrDown(t *testing.T) {
	s := vaulttest.Start(t)
	p := openChecked(t, s.Config())
	aad := []byte("aad")
	key := randomKey(t)
	w := wrap(t, p, key, aad)

	s.Seal()
	for name, err := range map[string]error{
		"wrap":   errOf(p.WrapKey(t.Context(), key, aad)),
		"unwrap": errOf(p.UnwrapKey(t.Context(), w, aad)),
	} {
		if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(err.Error(), "is sealed") {
			t.Errorf("%s while sealed: %v; want EUNAVAILABLE saying Vault is sealed", name, err)
		}
		if errors.Is(err, evcrypto.ErrAuthentication) {
			t.Errorf("%s while sealed is taken for tampering: %v", name, err)
		}
	}
	s.Unseal()
	unwrapEquals(t, p, w, aad, key)

	s.Stop()
	_, err := p.UnwrapKey(t.Context(), w, aad)
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(err.Error(), "is unreachable") {
		t.Fatalf("unwrap while Vault is down: %v; want EUNAVAILABLE saying Vault is unreachable", err)
	}
	if msg := eventvault.ErrorMessage(err); strings.Contains(msg, s.Addr) {
		t.Errorf("the client-facing message names Vault's address: %q", msg)
	}
	s.Restart()
	unwrapEquals(t, p, w, aad, key)
}

func errOf[T any](_ T, err error) error { return err }

// The same attack through the real keyring and store: tenant A's wrapped
// KEK row copied into tenant B's place does not give B a key.
func TestKeyringRefusesATenantKeyRowCopiedFromAnotherTenant(t *testing.T) {
	s := vaulttest.Start(t)
	p := openChecked(t, s.Config())
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if _, err := evcrypto.NewKeyring(p, store, evcrypto.KeyringOptions{}).StreamCipher(ctx, "tenant-a", "order-1"); err != nil {
		t.Fatalf("StreamCipher for tenant A: %v", err)
	}
	row, err := store.TenantKey(ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTenantKey(ctx, "tenant-b", row); err != nil {
		t.Fatal(err)
	}
	_, err = evcrypto.NewKeyring(p, store, evcrypto.KeyringOptions{}).StreamCipher(ctx, "tenant-b", "order-1")
	if !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("StreamCipher for tenant B over A's KEK row: %v; want an authentication failure", err)
	}
}
