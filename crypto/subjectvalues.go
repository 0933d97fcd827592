package crypto

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/eventvault/eventvault"
)

// The values a SubjectCipher opened, kept inside the cipher, and so inside
// the Keyring's cache entry of the subject key: the same bound, TTL and
// eviction as the unwrapped key itself (docs/pii.md, "Opened values cached
// with the subject key").
//
// Why this adds no exposure: a node that holds the unwrapped subject key and
// the value's ciphertext (the engine's cache of ciphertext) can already
// produce every plaintext at will; the cache only spares it the AEAD open.
// It is a memo of OpenValue and nothing more: an entry is found only for the
// very PIIRef (tenant and subject of the cipher, token, pointer, class,
// version) AND the very sealed bytes it was opened from, so a ciphertext
// moved to another subject, token, field or tenant, or altered, misses it
// and fails authentication as before; and every gate the caller applies
// before it asks (the subject's key row, restriction and generation read
// with the page) is unchanged.
//
// Lifetime: the values die with the key. The Keyring drops them when the key's cache entry is
// evicted — erasure (EvictSubject, here or on the eviction channel), tenant
// eviction, LRU bound, TTL — or replaced by another key row. A read at a
// newer subject generation (a rectification, on any node: the generation
// comes with the page's subject states) drops them too, so an old value
// does not outlive its rectification in memory. After that no value is
// kept again by this cipher.

// Bounds of the opened values kept per node, over all subjects: a cipher
// keeps no more once the Keyring's budget is spent (reads then open values
// each time, as without the cache).
const (
	valueCacheBytes      = 64 << 20 // plaintext and ciphertext bytes, all subjects
	valueCachePerSubject = 4096     // values per subject
)

// keptValue is a value kept under its token, with everything else it was
// opened for: a lookup must match all of it.
type keptValue struct {
	pointer       string
	class         eventvault.PIIClass
	version       int64
	sealed, value []byte
}

// openedValues is a SubjectCipher's kept values.
type openedValues struct {
	budget *atomic.Int64 // the Keyring's bytes left; nil keeps nothing
	mu     sync.RWMutex
	gen    int64 // the subject generation the values were opened at
	dead   bool  // the key was evicted: keep nothing more
	bytes  int64
	m      map[string]keptValue // by token
}

func (o *openedValues) get(gen int64, ref PIIRef, sealed []byte) ([]byte, bool) {
	o.mu.RLock()
	v, ok := o.m[ref.Token]
	ok = ok && !o.dead && gen == o.gen
	o.mu.RUnlock()
	if !ok || v.version != ref.Version || v.pointer != ref.Pointer || v.class != ref.Class || !bytes.Equal(v.sealed, sealed) {
		return nil, false
	}
	if len(sealed) > 0 && &v.sealed[0] != &sealed[0] {
		o.adopt(gen, ref, sealed, v)
	}
	return v.value, true
}

// adopt keeps the caller's copies of the token and the sealed bytes (equal
// to the kept ones) in place of the kept ones, so that the next lookups
// compare pointers rather than bytes: readers that fetched the same value
// concurrently hold equal copies, and the caller's is the one its cache
// keeps.
func (o *openedValues) adopt(gen int64, ref PIIRef, sealed []byte, v keptValue) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead || gen != o.gen {
		return
	}
	if cur, ok := o.m[ref.Token]; ok && bytes.Equal(cur.sealed, sealed) {
		delete(o.m, ref.Token)
		cur.sealed, cur.pointer = sealed, ref.Pointer
		o.m[ref.Token] = cur
	}
}

func (o *openedValues) put(gen int64, ref PIIRef, sealed, value []byte) {
	if o.budget == nil {
		return
	}
	size := int64(len(sealed) + len(value) + len(ref.Token) + len(ref.Pointer) + 64)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead || gen < o.gen {
		return
	}
	if gen > o.gen {
		o.dropLocked()
		o.gen = gen
	}
	if _, ok := o.m[ref.Token]; ok || len(o.m) >= valueCachePerSubject {
		return
	}
	if o.budget.Add(-size) < 0 {
		o.budget.Add(size)
		return
	}
	if o.m == nil {
		o.m = map[string]keptValue{}
	}
	o.m[ref.Token] = keptValue{pointer: ref.Pointer, class: ref.Class, version: ref.Version, sealed: sealed, value: value}
	o.bytes += size
}

// drop forgets every kept value; dead also keeps none from now on.
func (o *openedValues) drop(dead bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dropLocked()
	o.dead = o.dead || dead
}

func (o *openedValues) dropLocked() {
	// References only: a reader may still be copying a value it got; the
	// bytes go with the garbage collector, like any read's plaintext.
	o.m = nil
	if o.budget != nil {
		o.budget.Add(o.bytes)
	}
	o.bytes = 0
}

func (o *openedValues) len() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.m)
}

// OpenValueAt is OpenValue for a read that saw the subject at generation
// gen (eventvault.SubjectKeyState.Generation), keeping the value with the
// key: a value this cipher opened before for the same ref, from the same
// sealed bytes, at the same generation, is returned without an AEAD open.
// The returned slice is shared: the caller must not modify it; nor may it
// modify sealed afterwards, which the cipher keeps to recognise it (the
// engine's ciphertexts are never modified once fetched).
// Errors: those of OpenValue.
func (c *SubjectCipher) OpenValueAt(gen int64, ref PIIRef, sealed []byte) ([]byte, error) {
	if ref.Tenant == c.tenant && ref.Subject == c.subject {
		if v, ok := c.values.get(gen, ref, sealed); ok {
			return v, nil
		}
	}
	v, err := c.OpenValue(ref, sealed)
	if err != nil {
		return nil, err
	}
	c.values.put(gen, ref, sealed, v)
	return v, nil
}

// CachedValues reports how many opened values the cache keeps with the
// subject's key: for tests that check an erased or rectified subject's
// values are gone from it.
func (s *SubjectKeys) CachedValues(tenant eventvault.TenantID, subject eventvault.Pseudonym) int {
	e, ok := s.k.cache.Peek(cacheKey{kind: cacheSubject, tenant: tenant, subject: subject})
	if !ok || e.subjectCipher == nil {
		return 0
	}
	return e.subjectCipher.values.len()
}
