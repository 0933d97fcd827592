package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestSubjectStateCacheHoldsOneGeneration checks what a page may take from
// the cache: only states kept at its own generation, never those of an
// older or a newer one, and never more subjects than its bound.
func TestSubjectStateCacheHoldsOneGeneration(t *testing.T) {
	c := newSubjectStateCache()
	st := func(gen int64) map[eventvault.Pseudonym]eventvault.SubjectKeyState {
		return map[eventvault.Pseudonym]eventvault.SubjectKeyState{"p-a": {Generation: gen}}
	}
	ask := []eventvault.Pseudonym{"p-a", "p-b"}
	got := func(gen int64) (map[eventvault.Pseudonym]int64, []eventvault.Pseudonym) {
		found := map[eventvault.Pseudonym]int64{}
		missing := c.get("acme", gen, ask, func(s eventvault.Pseudonym, st eventvault.SubjectKeyState) { found[s] = st.Generation })
		return found, missing
	}
	c.put("acme", 5, st(50))
	if found, missing := got(5); found["p-a"] != 50 || len(missing) != 1 || missing[0] != "p-b" {
		t.Fatalf("at the generation kept: found %v, missing %v; want p-a, and p-b asked for", found, missing)
	}
	for _, gen := range []int64{4, 6, unknownPIIGeneration} {
		if found, missing := got(gen); len(found) != 0 || len(missing) != 2 {
			t.Fatalf("a page at generation %d took %v from states kept at 5 (missing %v)", gen, found, missing)
		}
	}
	c.put("acme", 4, st(40)) // read before the kept ones: dropped
	if found, _ := got(5); found["p-a"] != 50 {
		t.Fatalf("an older read replaced newer states: %v", found)
	}
	c.put("acme", 6, st(60))
	if found, _ := got(6); found["p-a"] != 60 {
		t.Fatalf("a newer read did not replace older states: %v", found)
	}
	if found, _ := got(5); len(found) != 0 {
		t.Fatalf("states of generation 5 still served after 6: %v", found)
	}
	if other := c.get("globex", 6, ask, func(eventvault.Pseudonym, eventvault.SubjectKeyState) { t.Fatal("another tenant's states served") }); len(other) != 2 {
		t.Fatalf("another tenant: missing %v", other)
	}

	many := map[eventvault.Pseudonym]eventvault.SubjectKeyState{}
	for i := range subjectStatesMax {
		many[eventvault.Pseudonym(fmt.Sprintf("p-%d", i))] = eventvault.SubjectKeyState{}
	}
	c.put("globex", 1, many)
	if c.size > subjectStatesMax {
		t.Fatalf("%d subjects kept; the bound is %d", c.size, subjectStatesMax)
	}
	many["p-one-more"] = eventvault.SubjectKeyState{}
	c.put("initech", 1, many)
	if c.size > subjectStatesMax || c.tenants["initech"] != nil {
		t.Fatalf("%d subjects kept after a put past the bound; the bound is %d", c.size, subjectStatesMax)
	}
}

// TestPIICacheStaysWithinItsBound fills the per-event cache past its bound
// over two tenants: it never holds more than piiCacheSize entries, the
// entry just put is found, by its own tenant only, and an expired entry
// is not served.
func TestPIICacheStaysWithinItsBound(t *testing.T) {
	c := newPIICache()
	ep := &eventPII{}
	var last uuid.UUID
	for i := range piiCacheSize + piiCacheSize/2 {
		last = uuid.New()
		c.put([]eventvault.TenantID{"acme", "globex"}[i%2], last, ep)
		if c.size > piiCacheSize {
			t.Fatalf("%d entries after %d puts; the bound is %d", c.size, i+1, piiCacheSize)
		}
	}
	n := 0
	for _, entries := range c.tenants {
		n += len(entries)
	}
	if n != c.size {
		t.Fatalf("the cache counts %d entries and holds %d", c.size, n)
	}
	get := func(tenant eventvault.TenantID) *eventPII {
		out := make([]*eventPII, 1)
		c.getPage(tenant, []eventvault.Event{{ID: last}}, [][]byte{{1}}, out)
		return out[0]
	}
	if get("globex") != ep || get("acme") != nil {
		t.Fatal("the entry just put is not found under its tenant alone")
	}
	c.now = func() time.Time { return time.Now().Add(piiCacheTTL + time.Second) }
	if get("globex") != nil {
		t.Fatal("an expired entry was served")
	}
	c.remove("globex", last)
	if _, ok := c.tenants["globex"][last]; ok {
		t.Fatal("remove left the entry")
	}
}

// TestPIICacheStaysWithinItsBytes puts entries whose ciphertexts would
// pass the byte bound: the cache never holds more than piiCacheBytes, and
// never keeps one event whose values would take a hundredth of it.
func TestPIICacheStaysWithinItsBytes(t *testing.T) {
	c := newPIICache()
	entry := func(valueBytes int) *eventPII {
		return &eventPII{entries: []manifestEntry{{Pointer: "/note", Token: "evpii_x"}}, values: []cachedValue{{ciphertext: make([]byte, valueBytes)}}}
	}
	for i := range 300 {
		c.put("acme", uuid.New(), entry(piiCacheBytes/200))
		if c.bytes > piiCacheBytes {
			t.Fatalf("%d bytes held after %d puts; the bound is %d", c.bytes, i+1, piiCacheBytes)
		}
	}
	var held int64
	for _, entries := range c.tenants {
		for _, en := range entries {
			held += en.bytes
		}
	}
	if held != c.bytes || c.bytes == 0 {
		t.Fatalf("the cache counts %d bytes and holds %d", c.bytes, held)
	}
	big := uuid.New()
	c.put("acme", big, entry(piiCacheBytes/50))
	if _, ok := c.tenants["acme"][big]; ok {
		t.Fatal("an event whose values take a fiftieth of the cache was kept")
	}
}
