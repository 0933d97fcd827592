package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestKeptValuesAreOnlyAMemoOfOpenValue opens a value once (so that the
// cipher keeps it) and then presents it again as an attacker would: moved
// to another tenant, subject, token, pointer, class or version, altered,
// or at another subject generation. Every move still fails authentication
// exactly as OpenValue does, even with the hint of the kept value; only the very ref, sealed bytes and
// generation are served from the kept values; a newer generation (a
// rectification) drops them; drop(true) (the key's eviction) drops them
// and keeps none after; a cipher outside the cache keeps none; the byte
// budget bounds them and comes back.
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
	got, kept, err := c.OpenValueAt(7, ref, sealed, nil)
	if err != nil || !bytes.Equal(got, value) || c.values.len() != 1 || kept == nil {
		t.Fatalf("first open: %q, %v, %d kept", got, err, c.values.len())
	}
	if _, v, ok := c.values.get(7, ref, sealed); !ok || !bytes.Equal(v, value) {
		t.Fatal("the value opened at generation 7 is not kept")
	}
	if v, k, err := c.OpenValueAt(7, ref, sealed, kept); err != nil || k != kept || !bytes.Equal(v, value) {
		t.Fatalf("open with its own hint: %q, %v", v, err)
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
		if v, _, err := c.OpenValueAt(7, move(ref), sealed, kept); !errors.Is(err, ErrAuthentication) {
			t.Errorf("kept value moved to another %s (with its hint): %q, %v, want ErrAuthentication", name, v, err)
		}
	}
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	if v, _, err := c.OpenValueAt(7, ref, altered, kept); !errors.Is(err, ErrAuthentication) {
		t.Errorf("kept value, altered ciphertext: %q, %v, want ErrAuthentication", v, err)
	}
	// Another ciphertext sealed for the same ref (a second seal) opens
	// from the AEAD, not from the kept bytes of the first.
	if _, _, ok := c.values.get(7, ref, altered); ok {
		t.Error("a kept value was served for other sealed bytes")
	}
	if _, _, ok := c.values.get(6, ref, sealed); ok {
		t.Error("a kept value was served at an older generation")
	}
	// A read at generation 8 (a rectification somewhere) drops them all.
	if _, _, err := c.OpenValueAt(8, moves["token"](ref), sealed, kept); err == nil {
		t.Fatal("moved value opened")
	}
	rectified := ref
	rectified.Version = 2
	sealed2, _ := c.SealValue(rectified, []byte(`"jane@new.example"`))
	if _, _, err := c.OpenValueAt(8, rectified, sealed2, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.values.get(7, ref, sealed); ok || c.values.len() != 1 || kept.value.Load() != nil {
		t.Errorf("after a read at generation 8, %d kept, the value of generation 7 still served: %v", c.values.len(), ok)
	}
	if budget.Load() >= valueCacheBytes {
		t.Error("kept values spend no budget")
	}
	// The key's eviction drops them, returns the budget, keeps none after;
	// a hint held elsewhere then holds no value.
	_, kept, _ = c.OpenValueAt(8, rectified, sealed2, nil)
	c.values.drop(true)
	if kept == nil || kept.value.Load() != nil {
		t.Fatal("a hint still holds its value after the key's eviction")
	}
	if c.values.len() != 0 || budget.Load() != valueCacheBytes {
		t.Fatalf("after eviction: %d kept, budget %d", c.values.len(), budget.Load())
	}
	if v, k, err := c.OpenValueAt(8, rectified, sealed2, nil); err != nil || !bytes.Equal(v, []byte(`"jane@new.example"`)) || c.values.len() != 0 || k != nil {
		t.Fatalf("an evicted cipher still opens (%q, %v) but must keep nothing: %d kept", v, err, c.values.len())
	}
	// A cipher the Keyring's cache never held (not enabled) keeps nothing.
	u, _ := newTestSubjectCipher(t, "acme", "p-alice")
	sealedU, _ := u.SealValue(ref, value)
	if v, k, err := u.OpenValueAt(1, ref, sealedU, nil); err != nil || !bytes.Equal(v, value) || k != nil || u.values.len() != 0 {
		t.Fatalf("a cipher outside the cache: %q, %v, kept %v, %d", v, err, k, u.values.len())
	}
	// A spent budget keeps nothing.
	d, _ := newTestSubjectCipher(t, "acme", "p-alice")
	d.values.budget = new(atomic.Int64)
	d.values.budget.Store(10)
	ref.Version = 1
	sealed3, _ := d.SealValue(ref, value)
	if _, _, err := d.OpenValueAt(1, ref, sealed3, nil); err != nil || d.values.len() != 0 || d.values.budget.Load() != 10 {
		t.Fatalf("over budget: %v, %d kept, budget %d", err, d.values.len(), d.values.budget.Load())
	}
}

// TestKeptValuesUnderConcurrentReadsAndEviction opens one value from many
// goroutines, with hints, while another drops the kept values (newer
// generations, then the key's eviction): every open returns the value
// (run with -race for the data races).
func TestKeptValuesUnderConcurrentReadsAndEviction(t *testing.T) {
	c, _ := newTestSubjectCipher(t, "acme", "p-alice")
	c.values.budget = new(atomic.Int64)
	c.values.budget.Store(valueCacheBytes)
	ref := PIIRef{Tenant: "acme", Subject: "p-alice", Token: "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa", Pointer: "/email", Class: eventvault.PIIEmail, Version: 1}
	value := []byte(`"jane@example.com"`)
	sealed, err := c.SealValue(ref, value)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			var hint *KeptValue
			for i := range 500 {
				v, k, err := c.OpenValueAt(int64(i/100), ref, sealed, hint)
				if err != nil || !bytes.Equal(v, value) {
					done <- fmt.Errorf("goroutine %d, open %d: %q, %v", g, i, v, err)
					return
				}
				hint = k
			}
			done <- nil
		}()
	}
	for i := range 50 {
		c.values.drop(i == 49)
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if c.values.len() != 0 || c.values.budget.Load() != valueCacheBytes {
		t.Fatalf("after eviction: %d kept, budget %d", c.values.len(), c.values.budget.Load())
	}
}

// TestKeptDataDiesWithTheKey keeps data made from a subject's values and
// asks for it back as a caller that got something wrong would: with
// another id, at another generation, from another subject's cipher; after a
// newer generation (a rectification) and after the key's eviction: only the
// very id, generation and cipher are served, a hint held elsewhere then
// holds nothing, the copy is the cipher's own and a cipher outside the
// cache keeps none.
func TestKeptDataDiesWithTheKey(t *testing.T) {
	c, _ := newTestSubjectCipher(t, "acme", "p-alice")
	other, _ := newTestSubjectCipher(t, "acme", "p-bob")
	budget := new(atomic.Int64)
	budget.Store(valueCacheBytes)
	c.values.budget, other.values.budget = budget, budget
	data := []byte(`{"email":"jane@example.com"}`)
	k := c.KeepData(3, "event-1/decrypt", data)
	if k == nil {
		t.Fatal("nothing kept")
	}
	copy(data, "XXXXXXXXXXXX") // the caller's buffer, reused
	if got, ok := c.Data(3, "event-1/decrypt", k); !ok || string(got) != `{"email":"jane@example.com"}` {
		t.Fatalf("kept data: %q, %v; want the data as kept, not the caller's buffer", got, ok)
	}
	for name, ask := range map[string]func() bool{
		"another id":            func() bool { _, ok := c.Data(3, "event-1/mask", k); return ok },
		"an older generation":   func() bool { _, ok := c.Data(2, "event-1/decrypt", k); return ok },
		"a newer generation":    func() bool { _, ok := c.Data(4, "event-1/decrypt", k); return ok },
		"another subject's key": func() bool { _, ok := other.Data(3, "event-1/decrypt", k); return ok },
		"no hint":               func() bool { _, ok := c.Data(3, "event-1/decrypt", nil); return ok },
	} {
		if ask() {
			t.Errorf("kept data served for %s", name)
		}
	}
	if again := c.KeepData(3, "event-1/decrypt", data); again != k {
		t.Error("keeping the same id again made a second copy")
	}
	// A value opened at generation 4 (a rectification) drops it.
	ref := PIIRef{Tenant: "acme", Subject: "p-alice", Token: "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa", Pointer: "/email", Class: eventvault.PIIEmail, Version: 2}
	sealed, _ := c.SealValue(ref, []byte(`"jane@new.example"`))
	if _, _, err := c.OpenValueAt(4, ref, sealed, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Data(3, "event-1/decrypt", k); ok || k.data.Load() != nil {
		t.Fatal("data of generation 3 still held after a read at generation 4")
	}
	if c.KeepData(3, "event-1/decrypt", data) != nil {
		t.Fatal("data of an older generation kept after a newer one was seen")
	}
	k = c.KeepData(4, "event-1/decrypt", []byte(`{"email":"jane@new.example"}`))
	c.values.drop(true)
	if k == nil || k.data.Load() != nil || c.values.len() != 0 {
		t.Fatal("kept data survived the key's eviction")
	}
	if c.KeepData(4, "event-2/decrypt", data) != nil {
		t.Fatal("an evicted cipher kept data")
	}
	if budget.Load() != valueCacheBytes {
		t.Fatalf("budget %d after every kept byte was dropped, want %d", budget.Load(), int64(valueCacheBytes))
	}
	u, _ := newTestSubjectCipher(t, "acme", "p-alice")
	if u.KeepData(1, "event-1/decrypt", data) != nil {
		t.Fatal("a cipher outside the cache kept data")
	}
}
