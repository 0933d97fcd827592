package crypto

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

func newTestSubjectCipher(t *testing.T, tenant eventvault.TenantID, subject eventvault.Pseudonym) (*SubjectCipher, []byte) {
	t.Helper()
	key := randomBytes(t, keySize)
	c, err := newSubjectCipher(tenant, subject, uuid.New(), key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestPersonalValueOpensOnlyInItsPlace seals a value for one place and
// tries to open it moved to another tenant, subject, token, pointer, class
// or version, altered, truncated, or with another subject's key: only the
// original place opens it. Two seals of one value differ.
func TestPersonalValueOpensOnlyInItsPlace(t *testing.T) {
	c, _ := newTestSubjectCipher(t, "acme", "p-alice")
	ref := PIIRef{Tenant: "acme", Subject: "p-alice", Token: "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa", Pointer: "/email", Class: eventvault.PIIEmail, Version: 1}
	value := []byte(`"jane@example.com"`)
	sealed, err := c.SealValue(ref, value)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.SealValue(ref, value)
	if bytes.Equal(sealed, again) || bytes.Contains(sealed, value) {
		t.Fatal("two seals of one value are equal, or a seal holds the value")
	}
	got, err := c.OpenValue(ref, sealed)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("OpenValue: %q, %v", got, err)
	}
	other, _ := newTestSubjectCipher(t, "acme", "p-alice")
	moves := map[string]func(PIIRef) PIIRef{
		"tenant":  func(r PIIRef) PIIRef { r.Tenant = "globex"; return r },
		"subject": func(r PIIRef) PIIRef { r.Subject = "p-bob"; return r },
		"token":   func(r PIIRef) PIIRef { r.Token = "evpii_bbbbbbbbbbbbbbbbbbbbbbbbbb"; return r },
		"pointer": func(r PIIRef) PIIRef { r.Pointer = "/phone"; return r },
		"class":   func(r PIIRef) PIIRef { r.Class = eventvault.PIIPhone; return r },
		"version": func(r PIIRef) PIIRef { r.Version = 2; return r },
	}
	for name, move := range moves {
		if _, err := c.OpenValue(move(ref), sealed); !errors.Is(err, ErrAuthentication) {
			t.Errorf("moved to another %s: %v, want ErrAuthentication", name, err)
		}
	}
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	for name, in := range map[string][]byte{"altered": altered, "truncated": sealed[:len(sealed)-1], "header only": sealed[:headerSize]} {
		if _, err := c.OpenValue(ref, in); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%s: %v, want ErrAuthentication", name, err)
		}
	}
	if _, err := other.OpenValue(ref, sealed); !errors.Is(err, ErrAuthentication) {
		t.Errorf("another subject key: %v, want ErrAuthentication", err)
	}
	if _, err := c.SealValue(moves["subject"](ref), value); err == nil {
		t.Error("the cipher of one subject sealed a value of another")
	}
	if d1, d2 := c.Digest("/email", eventvault.PIIEmail, value), other.Digest("/email", eventvault.PIIEmail, value); bytes.Equal(d1, d2) || !bytes.Equal(d1, c.Digest("/email", eventvault.PIIEmail, value)) {
		t.Error("digests are not keyed by the subject key, or not deterministic")
	}
}

// TestSubjectKeyUnwrapsOnlyForItsSubject wraps a subject key under a KEK
// and unwraps it as the subject, another subject and another tenant.
func TestSubjectKeyUnwrapsOnlyForItsSubject(t *testing.T) {
	kek, err := newTenantKEK("acme", uuid.New(), 1, randomBytes(t, keySize))
	if err != nil {
		t.Fatal(err)
	}
	key, id := randomBytes(t, keySize), uuid.New()
	ct, err := kek.wrapSubjectKey("p-alice", id, key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wk := eventvault.WrappedKey{ID: id, Version: 1, KEKVersion: 1, Ciphertext: ct}
	got, err := kek.unwrapSubjectKey("p-alice", wk)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := kek.unwrapSubjectKey("p-bob", wk); !errors.Is(err, ErrAuthentication) {
		t.Errorf("unwrapped as another subject: %v", err)
	}
	other, _ := newTenantKEK("globex", kek.id, 1, randomBytes(t, keySize))
	if _, err := other.unwrapSubjectKey("p-alice", wk); !errors.Is(err, ErrAuthentication) {
		t.Errorf("unwrapped by another tenant's KEK: %v", err)
	}
	moved := wk
	moved.ID = uuid.New()
	if _, err := kek.unwrapSubjectKey("p-alice", moved); !errors.Is(err, ErrAuthentication) {
		t.Errorf("unwrapped under another key id: %v", err)
	}
}

// TestSubjectCipherPrintsNoKey formats a SubjectCipher with every verb.
func TestSubjectCipherPrintsNoKey(t *testing.T) {
	c, key := newTestSubjectCipher(t, "acme", "p-alice")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, c) + fmt.Sprintf(verb, *c)
		if bytes.Contains([]byte(out), key[:8]) || bytes.Contains([]byte(out), []byte(fmt.Sprintf("%x", key[:8]))) {
			t.Errorf("%s prints key bytes: %s", verb, out)
		}
	}
}
