package crypto

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestKeptValuesAreOnlyAMemoOfOpenValue opens a value once (so that the
// cipher keeps it) and then presents it again as an attacker would: moved
// to another tenant, subject, token, pointer, class or version, altered,
// or at another subject generation. Every move still fails authentication
// exactly as OpenValue does; only the very ref, sealed bytes and
// generation are served from the kept values; a newer generation (a
// rectification) drops them; drop(true) (the key's eviction) drops them
// and keeps none after; the byte budget bounds them and comes back.
func TestKeptValuesAreOnlyAMemoOfOpenValue(t *testing.T) {
	c, _ := newTestSubjectCipher(t, "acme", "p-alice")
	budget := new(atomic.Int64)
	budget.Store(valueCacheBytes)
	c.values.budget = budget
	ref := PIIRef{Tenant: "acme", Subject: "p-alice", Token: "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa", Pointer: "/email", Class: eventvault.PIIEmail, Version: 1}
	value := []byte(`"jane@example.com"`)
	sealed, err := c.SealValue(ref, value)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.OpenValueAt(7, ref, sealed)
	if err != nil || !bytes.Equal(got, value) || c.values.len() != 1 {
		t.Fatalf("first open: %q, %v, %d kept", got, err, c.values.len())
	}
	if v, ok := c.values.get(7, ref, sealed); !ok || !bytes.Equal(v, value) {
		t.Fatal("the value opened at generation 7 is not kept")
	}
	moves := map[string]func(PIIRef) PIIRef{
		"tenant":  func(r PIIRef) PIIRef { r.Tenant = "globex"; return r },
		"subject": func(r PIIRef) PIIRef { r.Subject = "p-bob"; return r },
		"token":   func(r PIIRef) PIIRef { r.Token = "evpii_bbbbbbbbbbbbbbbbbbbbbbbbbb"; return r },
		"pointer": func(r PIIRef) PIIRef { r.Pointer = "/phone"; return r },
		"class":   func(r PIIRef) PIIRef { r.Class = eventvault.PIIPhone; return r },
		"version": func(r PIIRef) PIIRef { r.Version = 2; return r },
	}
	for name, move := range moves {
		if v, err := c.OpenValueAt(7, move(ref), sealed); !errors.Is(err, ErrAuthentication) {
			t.Errorf("kept value moved to another %s: %q, %v, want ErrAuthentication", name, v, err)
		}
	}
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	if v, err := c.OpenValueAt(7, ref, altered); !errors.Is(err, ErrAuthentication) {
		t.Errorf("kept value, altered ciphertext: %q, %v, want ErrAuthentication", v, err)
	}
	// Another ciphertext sealed for the same ref (a second seal) opens
	// from the AEAD, not from the kept bytes of the first.
	if _, ok := c.values.get(7, ref, altered); ok {
		t.Error("a kept value was served for other sealed bytes")
	}
	if _, ok := c.values.get(6, ref, sealed); ok {
		t.Error("a kept value was served at an older generation")
	}
	// A read at generation 8 (a rectification somewhere) drops them all.
	if _, err := c.OpenValueAt(8, moves["token"](ref), sealed); err == nil {
		t.Fatal("moved value opened")
	}
	rectified := ref
	rectified.Version = 2
	sealed2, _ := c.SealValue(rectified, []byte(`"jane@new.example"`))
	if _, err := c.OpenValueAt(8, rectified, sealed2); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.values.get(7, ref, sealed); ok || c.values.len() != 1 {
		t.Errorf("after a read at generation 8, %d kept, the value of generation 7 still served: %v", c.values.len(), ok)
	}
	if budget.Load() >= valueCacheBytes {
		t.Error("kept values spend no budget")
	}
	// The key's eviction drops them, returns the budget, keeps none after.
	c.values.drop(true)
	if c.values.len() != 0 || budget.Load() != valueCacheBytes {
		t.Fatalf("after eviction: %d kept, budget %d", c.values.len(), budget.Load())
	}
	if v, err := c.OpenValueAt(8, rectified, sealed2); err != nil || !bytes.Equal(v, []byte(`"jane@new.example"`)) || c.values.len() != 0 {
		t.Fatalf("an evicted cipher still opens (%q, %v) but must keep nothing: %d kept", v, err, c.values.len())
	}
	// A spent budget keeps nothing.
	d, _ := newTestSubjectCipher(t, "acme", "p-alice")
	d.values.budget = new(atomic.Int64)
	d.values.budget.Store(10)
	ref.Version = 1
	sealed3, _ := d.SealValue(ref, value)
	if _, err := d.OpenValueAt(1, ref, sealed3); err != nil || d.values.len() != 0 || d.values.budget.Load() != 10 {
		t.Fatalf("over budget: %v, %d kept, budget %d", err, d.values.len(), d.values.budget.Load())
	}
}
