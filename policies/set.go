package policies

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"

	"github.com/eventvault/eventvault"
)

// Set is a principal's documents compiled into one Cedar policy set, each
// statement named "document#statement". It implements eventvault.Grants.
// A Set is immutable once built and safe for concurrent use.
type Set struct {
	set  *cedar.PolicySet
	docs []string
	memo decisionMemo
}

// decisionMemo keeps a Set's decisions: Cedar's evaluation of a request
// depends on nothing but the set, the principal's entity (its token id or
// subject, and its name) and the request, so a decision made once stands
// for as long as the Set, which is immutable (a changed document compiles
// a new one). A page of events asks the same few per-field questions again
// and again, and so do the requests of one token.
type decisionMemo struct {
	mu sync.RWMutex
	m  map[memoKey]Decision
}

type memoKey struct {
	tokenID, subject, name string
	r                      Request
}

// decisionMemoMax bounds the decisions one Set keeps; past it, it starts
// over.
const decisionMemoMax = 256

// decideMemo is decide, remembered.
func (s *Set) decideMemo(p eventvault.Principal, r Request) Decision {
	k := memoKey{p.TokenID, p.Subject, p.Name, r}
	s.memo.mu.RLock()
	d, ok := s.memo.m[k]
	s.memo.mu.RUnlock()
	if ok {
		return d.clone()
	}
	d = s.decide(p, r)
	s.memo.mu.Lock()
	if s.memo.m == nil || len(s.memo.m) >= decisionMemoMax {
		s.memo.m = make(map[memoKey]Decision)
	}
	s.memo.m[k] = d.clone()
	s.memo.mu.Unlock()
	return d
}

// clone returns d with slices of its own: a remembered decision is never
// changed by a caller.
func (d Decision) clone() Decision {
	d.By, d.Errors = slices.Clone(d.By), slices.Clone(d.Errors)
	return d
}

// NewSet compiles docs into one Set. Documents with the same name are a
// mistake of the caller; the last one wins.
func NewSet(docs ...*Document) *Set {
	s := &Set{set: cedar.NewPolicySet()}
	for _, d := range docs {
		if d == nil {
			continue
		}
		name := d.Name
		if d.Version > 0 {
			name = fmt.Sprintf("%s@v%d", d.Name, d.Version)
		}
		s.docs = append(s.docs, name)
		for _, st := range d.statements {
			s.set.Add(cedar.PolicyID(d.Name+"#"+st.id), st.policy)
		}
	}
	return s
}

// Documents implements eventvault.Grants.
func (s *Set) Documents() []string { return s.docs }

func (s *Set) String() string { return "policies.Set" + fmt.Sprint(s.docs) }

// category is the part of a stream name before its first '-', the whole
// name if it has none ("order-42" is in category "order").
func category(stream eventvault.StreamName) string {
	c, _, _ := strings.Cut(string(stream), "-")
	return c
}

// principalUID is the Cedar entity of p: Token::"<token id>" or
// User::"<iss#sub>".
func principalUID(p eventvault.Principal) (cedar.EntityUID, cedar.Entity) {
	typ, id := cedar.EntityType("Token"), p.TokenID
	if p.TokenID == "" {
		typ, id = "User", p.Subject
	}
	uid := cedar.NewEntityUID(typ, cedar.String(id))
	return uid, cedar.Entity{UID: uid, Attributes: cedar.NewRecord(cedar.RecordMap{"name": cedar.String(p.Name)})}
}

func (s *Set) decide(p eventvault.Principal, r Request) Decision {
	entities := cedar.EntityMap{}
	puid, pe := principalUID(p)
	entities[puid] = pe
	tenant := cedar.NewEntityUID("Tenant", cedar.String(r.Tenant))
	entities[tenant] = cedar.Entity{UID: tenant}
	resource := tenant
	ctx := cedar.RecordMap{}
	if r.Action.OnStream() {
		resource = cedar.NewEntityUID("Stream", cedar.String(r.Stream))
		entities[resource] = cedar.Entity{
			UID:     resource,
			Parents: cedar.NewEntityUIDSet(tenant),
			Attributes: cedar.NewRecord(cedar.RecordMap{
				"name":     cedar.String(r.Stream),
				"category": cedar.String(category(r.Stream)),
			}),
		}
		if r.Action == Append {
			ctx["event_type"] = cedar.String(r.EventType)
		}
	} else if r.Action.IsPII() {
		if r.Stream != "" {
			resource = cedar.NewEntityUID("Stream", cedar.String(r.Stream))
			entities[resource] = cedar.Entity{UID: resource, Parents: cedar.NewEntityUIDSet(tenant), Attributes: cedar.NewRecord(cedar.RecordMap{
				"name": cedar.String(r.Stream), "category": cedar.String(category(r.Stream)),
			})}
		}
		ctx["event_type"] = cedar.String(r.EventType)
		ctx["pointer"] = cedar.String(r.Pointer)
		ctx["class"] = cedar.String(r.Class)
	}
	decision, diag := cedar.Authorize(s.set, entities, cedar.Request{
		Principal: puid,
		Action:    cedar.NewEntityUID("Action", cedar.String(r.Action)),
		Resource:  resource,
		Context:   cedar.NewRecord(ctx),
	})
	d := Decision{Allowed: decision == cedar.Allow}
	for _, e := range diag.Errors {
		d.Errors = append(d.Errors, string(e.PolicyID))
	}
	if len(d.Errors) > 0 {
		// A statement that fails to evaluate denies: a forbid that could
		// not be evaluated must not let a permit through.
		d.Allowed = false
		return d
	}
	for _, reason := range diag.Reasons {
		d.By = append(d.By, string(reason.PolicyID))
		if d.Allowed {
			if st := s.set.Get(reason.PolicyID); st != nil && st.Annotations()["audit"] == "each" {
				d.AuditEach = true
			}
		}
	}
	if len(d.By) == 0 {
		d.Reason = "no statement permits it (deny by default)"
	}
	return d
}

// Statement describes statement id ("document#statement") of s: its effect
// ("permit" or "forbid") and the line it starts on in its document.
func (s *Set) Statement(id string) (effect string, line int, ok bool) {
	p := s.set.Get(cedar.PolicyID(id))
	if p == nil {
		return "", 0, false
	}
	effect = "permit"
	if p.Effect() == cedar.Forbid {
		effect = "forbid"
	}
	return effect, p.Position().Line, true
}

// Len is how many statements d holds.
func (d *Document) Len() int { return len(d.statements) }
