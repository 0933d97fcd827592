package engine

import (
	"sync"

	"github.com/eventvault/eventvault"
)

// subjectStateCache keeps the states of data subjects (key row, restriction,
// generation) that page reads fetched, per tenant, with the tenant's PII
// generation they were read at (PIIStore.SubjectStates). A page read
// returns the generation on its own snapshot (StreamPage.PIIGeneration,
// AllPage.PIIGeneration); states kept at that very generation are the
// states of the page's snapshot, so the page needs no round trip for them.
// Any change to a state that exists (an erasure, a re-wrap, a
// rectification, a restriction placed or lifted), on any node, moves the
// generation on, and the next page of every node asks again: a shredded
// subject key is never used from here after the page that shows the
// erasure. A subject never asked for (a new subject) is fetched.
//
// It holds wrapped keys only, as the store does: no key, no value.
type subjectStateCache struct {
	mu      sync.RWMutex
	tenants map[eventvault.TenantID]*tenantSubjectStates
	size    int // subjects kept, over all tenants
}

type tenantSubjectStates struct {
	generation int64
	states     map[eventvault.Pseudonym]eventvault.SubjectKeyState
}

// subjectStatesMax bounds the subjects kept over all tenants; past it, a
// tenant's put starts its tenant over.
const subjectStatesMax = 100000

// unknownPIIGeneration is the generation of a read that has none: nothing
// kept is used for it.
const unknownPIIGeneration = -1

func newSubjectStateCache() *subjectStateCache {
	return &subjectStateCache{tenants: map[eventvault.TenantID]*tenantSubjectStates{}}
}

// get calls found for each subject whose state was kept at generation gen,
// and returns those it holds no state of at gen (all of them when gen is
// unknownPIIGeneration), in subjects' order.
func (c *subjectStateCache) get(tenant eventvault.TenantID, gen int64, subjects []eventvault.Pseudonym, found func(eventvault.Pseudonym, eventvault.SubjectKeyState)) []eventvault.Pseudonym {
	if gen == unknownPIIGeneration {
		return subjects
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.tenants[tenant]
	if t == nil || t.generation != gen {
		return subjects
	}
	var missing []eventvault.Pseudonym
	for _, s := range subjects {
		if st, ok := t.states[s]; ok {
			found(s, st)
		} else {
			missing = append(missing, s)
		}
	}
	return missing
}

// put keeps states read at generation gen: beside those kept at gen,
// instead of those kept at an older one, and not at all if newer ones are
// kept.
func (c *subjectStateCache) put(tenant eventvault.TenantID, gen int64, states map[eventvault.Pseudonym]eventvault.SubjectKeyState) {
	if gen == unknownPIIGeneration || len(states) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenant]
	switch {
	case t != nil && t.generation > gen:
		return
	case t == nil || t.generation < gen || c.size+len(states) > subjectStatesMax:
		if t != nil {
			c.size -= len(t.states)
			delete(c.tenants, tenant)
		}
		if len(states) > subjectStatesMax {
			return
		}
		for c.size+len(states) > subjectStatesMax && len(c.tenants) > 0 {
			for other, ot := range c.tenants { // another tenant makes room
				c.size -= len(ot.states)
				delete(c.tenants, other)
				break
			}
		}
		t = &tenantSubjectStates{generation: gen, states: make(map[eventvault.Pseudonym]eventvault.SubjectKeyState, len(states))}
		c.tenants[tenant] = t
	}
	for s, st := range states {
		if _, ok := t.states[s]; !ok {
			c.size++
		}
		t.states[s] = st
	}
}
