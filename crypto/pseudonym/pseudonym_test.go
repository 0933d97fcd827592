package pseudonym

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventvault/eventvault/crypto/internal/secrettest"
)

func TestPseudonymsAreStableKeyedAndPerTenant(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := p.Pseudonym("acme", "customer-881")
	if _, err := hex.DecodeString(string(a)); err != nil || len(a) != 64 || strings.Contains(string(a), "customer") {
		t.Fatalf("pseudonym %q: want 64 hex characters, nothing of the id", a)
	}
	if again.Pseudonym("acme", "customer-881") != a {
		t.Fatal("the same key file gives another pseudonym after a restart")
	}
	for name, q := range map[string]string{
		"other tenant":  string(p.Pseudonym("globex", "customer-881")),
		"other subject": string(p.Pseudonym("acme", "customer-882")),
		"other key":     string(other.Pseudonym("acme", "customer-881")),
		"fields moved":  string(p.Pseudonym("acmec", "ustomer-881")),
	} {
		if q == string(a) {
			t.Errorf("%s gives the same pseudonym", name)
		}
	}
	if s := fmt.Sprintf("%v %#v", p, p); strings.Contains(s, string(p.key[:])) {
		t.Fatal("pseudonymizer printed its key")
	}
}

// TestPseudonymOfAKnownKey pins the pseudonym's bytes: HMAC-SHA256 over
// the length-prefixed label, tenant and subject. Every pseudonym stored in
// a deployment depends on them.
func TestPseudonymOfAKnownKey(t *testing.T) {
	k := &Key{key: new([32]byte)}
	for i := range k.key {
		k.key[i] = byte(i + 1)
	}
	const want = "2e59b14c79dc4fbf06af5e7ac13d2835c5d9131405d74b3165a7300fc9410bdc"
	if got := k.Pseudonym("acme", "customer-881"); got != want {
		t.Fatalf("pseudonym %s, want %s", got, want)
	}
}

// TestKeyPrintsNoKeyBytes formats the key by pointer and by value with
// every fmt verb and through slog: no key byte shows, in any encoding.
func TestKeyPrintsNoKeyBytes(t *testing.T) {
	k, err := OpenKey(filepath.Join(t.TempDir(), "pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"*Key": k, "Key": *k} {
		t.Run(name, func(t *testing.T) {
			secrettest.CheckPrintsNoSecret(t, v, k.key[:])
		})
	}
}

// TestValidTellsAPseudonymFromASubjectId tries a pseudonym, then a
// subject id, an empty string, one digit short, upper case and a non-hex
// letter of the right length.
func TestValidTellsAPseudonymFromASubjectId(t *testing.T) {
	k, err := NewKey("test", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ps := string(k.Pseudonym("acme", "jane.doe@example.com"))
	if !Valid(ps) {
		t.Fatalf("Valid(%q) = false for a pseudonym", ps)
	}
	for _, s := range []string{"jane.doe@example.com", "", ps[:Length-1], strings.ToUpper(ps), "g" + ps[1:]} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}
