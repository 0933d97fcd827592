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
	valueCachePerSubject = 4096     // values and data (KeepData) per subject
)

// KeptValue is a value a SubjectCipher opened and keeps, with everything
// it was opened for: it is served only for all of it. A caller may hold on
// to it as a hint for its next open of the same value (OpenValueAt); it
// holds the plaintext only while the cipher keeps it: once dropped (the
// key evicted, a newer generation seen) it holds none, so a hint kept in
// another cache does not keep a value alive past its key. It prints
// nothing of the value.
type KeptValue struct {
	owner   *openedValues
	gen     int64
	token   string
	pointer string
	class   eventvault.PIIClass
	version int64
	sealed  []byte
	value   atomic.Pointer[[]byte] // nil once dropped
}

// String prints no value.
func (k *KeptValue) String() string { return "crypto.KeptValue" }

// Place returns the token, pointer and sealed bytes k was opened for (no
// secret: the sealed bytes are ciphertext). A caller that swaps its equal
// copies for these makes its next OpenValueAt with k as hint compare
// pointers rather than bytes; it must not modify them.
func (k *KeptValue) Place() (token, pointer string, sealed []byte) {
	return k.token, k.pointer, k.sealed
}

// serves reports whether k is a live value of o at generation gen for ref
// and sealed, and returns it.
func (k *KeptValue) serves(o *openedValues, gen int64, ref PIIRef, sealed []byte) ([]byte, bool) {
	if k == nil || k.owner != o || k.gen != gen || k.version != ref.Version || k.token != ref.Token ||
		k.pointer != ref.Pointer || k.class != ref.Class || !bytes.Equal(k.sealed, sealed) {
		return nil, false
	}
	v := k.value.Load()
	if v == nil {
		return nil, false
	}
	return *v, true
}

// openedValues is a SubjectCipher's kept values.
type openedValues struct {
	budget *atomic.Int64 // the Keyring's bytes left; nil (not in the cache) keeps nothing
	mu     sync.RWMutex
	gen    int64 // the subject generation the values were opened at
	dead   bool  // the key was evicted: keep nothing more
	bytes  int64
	m      map[string]*KeptValue // by token
	// data is what callers made of the values and keep with them
	// (KeepData), by the caller's id.
	data map[string]*KeptData
}

// KeptData is plaintext a caller made from values this cipher opened (an
// event's data with the subject's values in their places), kept with them:
// the same budget, generation and lifetime as a KeptValue (subjectvalues.go
// head), so that it dies with the key and with a rectification. A caller
// holds it as a hint (Data); it holds the plaintext only while the cipher
// keeps it, and prints nothing of it.
type KeptData struct {
	owner *openedValues
	gen   int64
	id    string
	data  atomic.Pointer[[]byte] // nil once dropped
}

// String prints no data.
func (k *KeptData) String() string { return "crypto.KeptData" }

// KeepData keeps data, made at subject generation gen from values this
// cipher opened at gen, under the caller's id (which must name everything
// data was made from besides the values: the event, what each value shows).
// It keeps a copy. It returns the KeptData to pass to Data, or nil if
// nothing was kept (the budget or the subject's bound is spent, the key
// evicted, or a newer generation seen).
func (c *SubjectCipher) KeepData(gen int64, id string, data []byte) *KeptData {
	o := c.values
	size := int64(len(data) + len(id) + 96)
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.atLocked(gen) {
		return nil
	}
	if k, ok := o.data[id]; ok {
		return k // a concurrent reader kept it (live: a drop empties the map)
	}
	if !o.spendLocked(size) {
		return nil
	}
	if o.data == nil {
		o.data = map[string]*KeptData{}
	}
	k := &KeptData{owner: o, gen: gen, id: id}
	data = bytes.Clone(data) // its own memory: nothing else's plaintext kept alive with it
	k.data.Store(&data)
	o.data[id] = k
	return k
}

// Data returns what hint keeps if this cipher keeps it, for id, at
// generation gen; else false. The slice is shared: never modify it.
func (c *SubjectCipher) Data(gen int64, id string, hint *KeptData) ([]byte, bool) {
	if hint == nil || hint.owner != c.values || hint.gen != gen || hint.id != id {
		return nil, false
	}
	d := hint.data.Load()
	if d == nil {
		return nil, false
	}
	return *d, true
}

func (o *openedValues) get(gen int64, ref PIIRef, sealed []byte) (*KeptValue, []byte, bool) {
	o.mu.RLock()
	k := o.m[ref.Token]
	o.mu.RUnlock()
	v, ok := k.serves(o, gen, ref, sealed)
	return k, v, ok
}

func (o *openedValues) put(gen int64, ref PIIRef, sealed, value []byte) *KeptValue {
	size := int64(len(sealed) + len(value) + len(ref.Token) + len(ref.Pointer) + 128)
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.atLocked(gen) {
		return nil
	}
	if k, ok := o.m[ref.Token]; ok {
		if _, ok := k.serves(o, gen, ref, sealed); ok {
			return k // a concurrent reader kept it
		}
		return nil
	}
	if !o.spendLocked(size) {
		return nil
	}
	if o.m == nil {
		o.m = map[string]*KeptValue{}
	}
	k := &KeptValue{owner: o, gen: gen, token: ref.Token, pointer: ref.Pointer, class: ref.Class, version: ref.Version, sealed: sealed}
	k.value.Store(&value)
	o.m[ref.Token] = k
	return k
}

// atLocked reports whether o may keep something opened at generation
// gen: a cache entry's live cipher, and no newer generation seen. A newer
// generation than o's drops what o keeps first.
func (o *openedValues) atLocked(gen int64) bool {
	if o.budget == nil || o.dead || gen < o.gen {
		return false
	}
	if gen > o.gen {
		o.dropLocked()
		o.gen = gen
	}
	return true
}

// spendLocked takes size bytes from the budget for one more kept value or
// data, within the subject's bound; false if either is spent.
func (o *openedValues) spendLocked(size int64) bool {
	if len(o.m)+len(o.data) >= valueCachePerSubject {
		return false
	}
	if o.budget.Add(-size) < 0 {
		o.budget.Add(size)
		return false
	}
	o.bytes += size
	return true
}

// enable lets o keep values, spending budget: the Keyring calls it when it
// puts the cipher in its cache. A cipher the cache never held (a load that
// raced an eviction) keeps nothing, so no value is kept that an eviction
// could not reach.
func (o *openedValues) enable(budget *atomic.Int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.dead && o.budget == nil {
		o.budget = budget
	}
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
	for _, k := range o.m {
		k.value.Store(nil)
	}
	for _, k := range o.data {
		k.data.Store(nil)
	}
	o.m, o.data = nil, nil
	if o.budget != nil {
		o.budget.Add(o.bytes)
	}
	o.bytes = 0
}

func (o *openedValues) len() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.m) + len(o.data)
}

// OpenValueAt is OpenValue for a read that saw the subject at generation
// gen (eventvault.SubjectKeyState.Generation), keeping the value with the
// key: a value this cipher opened before for the same ref, from the same
// sealed bytes, at the same generation, is returned without an AEAD open.
// hint, if not nil, is what an earlier call returned for the same value:
// it spares the lookup when it still serves. It returns the value and the
// KeptValue that keeps it (nil if none: the budget is spent, or the key
// evicted). The returned slice is shared: the caller must not modify it;
// nor may it modify sealed afterwards, which the cipher keeps to recognise
// it (the engine's ciphertexts are never modified once fetched).
// Errors: those of OpenValue.
func (c *SubjectCipher) OpenValueAt(gen int64, ref PIIRef, sealed []byte, hint *KeptValue) ([]byte, *KeptValue, error) {
	if ref.Tenant == c.tenant && ref.Subject == c.subject {
		if v, ok := hint.serves(c.values, gen, ref, sealed); ok {
			return v, hint, nil
		}
		if k, v, ok := c.values.get(gen, ref, sealed); ok {
			return v, k, nil
		}
	}
	v, err := c.OpenValue(ref, sealed)
	if err != nil {
		return nil, nil, err
	}
	return v, c.values.put(gen, ref, sealed, v), nil
}

// KeptValues reports how many opened values c keeps: for tests that check
// an evicted cipher keeps none.
func (c *SubjectCipher) KeptValues() int { return c.values.len() }

// CachedValues reports how many opened values the cache keeps with the
// subject's key: for tests that check an erased or rectified subject's
// values are gone from it.
func (s *SubjectKeys) CachedValues(tenant eventvault.TenantID, subject eventvault.Pseudonym) int {
	e, ok := s.k.cache.Peek(cacheKey{kind: cacheSubject, tenant: tenant, subject: subject})
	if !ok || e.subjectCipher == nil {
		return 0
	}
	return e.subjectCipher.KeptValues()
}

// KeepsValue reports whether the cache keeps, with the subject's key, an
// opened value or data made from them (KeepData) that contains needle: for tests that look for a canary
// value in every cache after an erasure or a rectification.
func (s *SubjectKeys) KeepsValue(tenant eventvault.TenantID, subject eventvault.Pseudonym, needle []byte) bool {
	e, ok := s.k.cache.Peek(cacheKey{kind: cacheSubject, tenant: tenant, subject: subject})
	if !ok || e.subjectCipher == nil {
		return false
	}
	o := e.subjectCipher.values
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, k := range o.m {
		if v := k.value.Load(); v != nil && bytes.Contains(*v, needle) {
			return true
		}
	}
	for _, k := range o.data {
		if d := k.data.Load(); d != nil && bytes.Contains(*d, needle) {
			return true
		}
	}
	return false
}
