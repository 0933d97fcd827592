package engine

import (
	"fmt"
	"testing"

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
