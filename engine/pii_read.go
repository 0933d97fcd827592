package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/policies"
)

// fieldAction is what a read shows of one marked value.
type fieldAction uint8

const (
	fieldRedact  fieldAction = iota // {"token": ..., "redacted": true}
	fieldMask                       // the masked value (pii_mask.go)
	fieldDecrypt                    // the value
	fieldErased                     // {"erased": true}: the subject was erased
)

// piiField is one marked value as a decider sees it.
type piiField struct {
	stream     eventvault.StreamName
	eventType  string
	pointer    string
	class      eventvault.PIIClass
	subject    eventvault.Pseudonym
	restricted bool
}

// piiDecider decides what a read shows of one field.
type piiDecider func(f piiField) fieldAction

// policyDecider decides by p's policies (docs/pii.md): read_pii decrypts,
// read_pii_masked masks, neither redacts; a restricted subject's values are
// redacted unless read_restricted_pii is permitted too. Decisions are
// cached per field for one page: a page repeats the same fields.
func policyDecider(p eventvault.Principal) piiDecider {
	type key struct {
		stream             eventvault.StreamName
		eventType, pointer string
		class              eventvault.PIIClass
		restricted         bool
	}
	cache := map[key]fieldAction{}
	// The last few decisions, looked at before the map: the events of a
	// page mostly repeat the same handful of fields, and comparing a few
	// short strings costs less than hashing four.
	type recent struct {
		k  key
		a  fieldAction
		ok bool
	}
	var last [8]recent
	next := 0
	return func(f piiField) fieldAction {
		k := key{f.stream, f.eventType, f.pointer, f.class, f.restricted}
		for i := range last {
			if last[i].ok && last[i].k == k {
				return last[i].a
			}
		}
		if a, ok := cache[k]; ok {
			last[next], next = recent{k, a, true}, (next+1)%len(last)
			return a
		}
		r := policies.Request{Tenant: p.Tenant, Stream: f.stream, EventType: f.eventType, Pointer: f.pointer, Class: f.class}
		a := fieldRedact
		allowed := func(act policies.Action) bool { r.Action = act; return policies.Decide(p, r).Allowed }
		if !f.restricted || allowed(policies.ReadRestrictedPII) {
			switch {
			case allowed(policies.ReadPII):
				a = fieldDecrypt
			case allowed(policies.ReadPIIMasked):
				a = fieldMask
			}
		}
		cache[k] = a
		last[next], next = recent{k, a, true}, (next+1)%len(last)
		return a
	}
}

// piiReads counts, per subject, the values a read showed decrypted or
// masked: the audit records of PII reads.
type piiReads map[eventvault.Pseudonym]int

// resolvePII replaces, in the data of each event whose manifest marks
// values, every token by what decide says the caller may see: the value,
// its masked form, the token with "redacted": true, or {"erased": true} for
// a value whose subject was erased. The keys, restrictions and generations
// of the page's subjects come from the states kept at the page's own PII
// generation piiGen (subjectStateCache), and those not kept in one store
// round trip (PIIStore.SubjectStates), however many subjects the page
// mixes: every value shown, cached or not, is gated by them. The decoded manifest and
// the ciphertext of values shown come from the per-event cache (piiCache)
// when it holds them for the very manifest bytes and the subject's
// generation, else from a decode and one more round trip
// (PIIStore.PIIValues). Subject keys are unwrapped through the keyring's
// cache: no Vault call per value; values are opened through the subject
// key's cache entry (SubjectCipher.OpenValueAt), which keeps what it opened
// for as long as it keeps the key. Values a caller sees redacted are neither
// fetched nor decrypted.
// Errors: EINTERNAL when a value fails authentication (moved to another
// subject, token, field or tenant, or altered) or a manifest is malformed;
// the store's codes.
func (e *Events) resolvePII(ctx context.Context, tenant eventvault.TenantID, events []eventvault.Event, manifests [][]byte, piiGen int64, decide piiDecider, bounded bool) (piiReads, int, error) {
	const op = "engine.resolvePII"
	pages := make([]*eventPII, len(events)) // nil: the event marks nothing
	bases := make([]int, len(events))       // each event's first value in acts
	subBases := make([]int, len(events))    // each event's first subject in subs
	changed := make([]bool, len(events))    // its cache entry is to be replaced
	done := make([]bool, len(events))       // its data came from a KeptData
	subjects := map[eventvault.Pseudonym]*pageSubject{}
	var subs []*pageSubject // each event's subjects, in its manifest's order
	var order []eventvault.Pseudonym
	var shows []showing
	n := 0
	e.piiCache.getPage(tenant, events, manifests, pages)
	for i, m := range manifests {
		if m == nil {
			continue
		}
		ep := pages[i]
		if ep == nil || ep.manifestLen != len(m) || ep.manifestSum != manifestSum(m) {
			var err error
			if ep, err = newEventPII(m, events[i].Data); err != nil {
				return nil, 0, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err, Message: fmt.Sprintf("event %s has a malformed manifest of personal values", events[i].ID)}
			}
			changed[i] = true
		}
		pages[i], bases[i], subBases[i] = ep, n, len(subs)
		n += len(ep.entries)
		for _, s := range ep.subjects {
			ps := subjects[s]
			if ps == nil {
				ps = &pageSubject{name: s}
				subjects[s] = ps
				order = append(order, s)
			}
			subs = append(subs, ps)
		}
	}
	if n == 0 {
		return nil, len(events), nil
	}
	if e.pii == nil || e.subjects == nil {
		// This server keeps no personal data apart: everything redacted.
		decide = func(piiField) fieldAction { return fieldRedact }
	} else {
		known := func(s eventvault.Pseudonym, st eventvault.SubjectKeyState) {
			if ps := subjects[s]; ps != nil {
				ps.state, ps.known = st, true
			}
		}
		if ask := e.subjectStates.get(tenant, piiGen, order, known); len(ask) > 0 {
			states, at, err := e.pii.SubjectStates(ctx, tenant, ask)
			if err != nil {
				return nil, 0, fmt.Errorf("personal data of the page: %w", err)
			}
			e.subjectStates.put(tenant, at, states)
			for s, st := range states {
				known(s, st)
			}
		}
	}
	for _, s := range order {
		ps := subjects[s]
		if !ps.known {
			continue
		}
		// A destroyed key row also evicts the key, and the values opened
		// with it, should this node still cache them (erasure elsewhere).
		c, err := e.subjects.OpenSubjectCipher(ctx, tenant, s, ps.state.Key)
		if eventvault.ErrorCode(err) == eventvault.EERASED {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("key of a data subject: %w", err)
		}
		ps.cipher = c
	}
	// What each value shows, and which events lack a ciphertext for one.
	acts := make([]fieldAction, n)
	var missing []string
	// The events of a page mostly repeat one stream, type and set of
	// marked fields: an event whose subjects all have keys and none is
	// restricted takes the decisions made for the first such event of the
	// same stream, type and shape (its pointers and classes).
	type shapeKey struct {
		stream           eventvault.StreamName
		eventType, shape string
	}
	type decided struct {
		acts []fieldAction
		str  string // acts, an interned actsString
	}
	shapes := map[shapeKey]decided{}
	var lastShape shapeKey
	var last decided
	for i, ep := range pages {
		if ep == nil {
			continue
		}
		plain := true
		for _, ps := range subs[subBases[i] : subBases[i]+len(ep.subjects)] {
			if !ps.known || len(ps.state.Key.Ciphertext) == 0 || ps.state.Restricted {
				plain = false
				break
			}
		}
		if plain {
			key := shapeKey{events[i].Stream, events[i].Type, ep.shape}
			memo, ok := last, last.acts != nil && key == lastShape
			if !ok {
				memo, ok = shapes[key]
			}
			if !ok {
				memo.acts = make([]fieldAction, len(ep.entries))
				for k, en := range ep.entries {
					memo.acts[k] = decide(piiField{stream: events[i].Stream, eventType: events[i].Type, pointer: en.Pointer, class: en.Class, subject: en.Subject})
				}
				memo.str = intern(actsString(memo.acts))
				shapes[key] = memo
			}
			lastShape, last = key, memo
			copy(acts[bases[i]:], memo.acts)
			// The event's data as this read shows it, kept with its one
			// subject's key from an earlier read that showed the same.
			if ps := subs[subBases[i]]; len(ep.subjects) == 1 && ep.kept != nil && ps.cipher != nil && ep.keptActs == memo.str {
				if data, ok := ps.cipher.Data(ps.state.Generation, ep.keptID, ep.kept); ok {
					events[i].Data, events[i].PII, events[i].PIIJSON = data, ep.whose, ep.whoseJSON
					shows = append(shows, showing{i, ps, len(ep.entries)})
					done[i] = true
					continue
				}
			}
		} else {
			for k, en := range ep.entries {
				ps := subs[subBases[i]+en.subjectIndex]
				if !ps.known || len(ps.state.Key.Ciphertext) == 0 {
					acts[bases[i]+k] = fieldErased
					continue
				}
				acts[bases[i]+k] = decide(piiField{stream: events[i].Stream, eventType: events[i].Type, pointer: en.Pointer, class: en.Class, subject: en.Subject, restricted: ps.state.Restricted})
			}
		}
		for k, en := range ep.entries {
			if a := acts[bases[i]+k]; a != fieldRedact && a != fieldErased && !ep.values[k].fresh(en, subs[subBases[i]+en.subjectIndex].state.Generation) {
				missing = append(missing, en.Token)
			}
		}
	}
	if len(missing) > 0 {
		page, err := e.pii.PIIValues(ctx, tenant, missing)
		if err != nil {
			return nil, 0, fmt.Errorf("personal values of the page: %w", err)
		}
		for i, ep := range pages {
			if ep == nil || done[i] {
				continue
			}
			var values []cachedValue
			for k, en := range ep.entries {
				j, gen := bases[i]+k, subs[subBases[i]+en.subjectIndex].state.Generation
				if (acts[j] != fieldDecrypt && acts[j] != fieldMask) || ep.values[k].fresh(en, gen) {
					continue
				}
				if values == nil {
					values = slices.Clone(ep.values)
				}
				v, ok := page.Values[en.Token]
				if !ok {
					acts[j] = fieldErased // its rows went with an erasure meanwhile
					values[k] = cachedValue{}
					continue
				}
				if v.Subject != en.Subject {
					// The vault never moves a value: its row was written
					// under another subject straight into the store.
					return nil, 0, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op,
						Message: fmt.Sprintf("event %s: personal value %s is held under another data subject than its event names: the store was altered", events[i].ID, en.Token)}
				}
				values[k] = cachedValue{token: en.Token, subject: en.Subject, version: v.Version, generation: gen, ciphertext: v.Ciphertext}
			}
			if values != nil {
				c := *ep
				c.values = values
				pages[i], changed[i] = &c, true
			}
		}
	}
	var withs [][]byte // what replaces each token of an event
	var shown []bool   // which of an event's values it shows
	for i, ep := range pages {
		if ep == nil || done[i] {
			continue
		}
		data := events[i].Data
		withs, shown = withs[:0], shown[:0]
		owned := false // ep is this read's copy
		all := true    // every value is shown
		for k, en := range ep.entries {
			start, end := en.Offset, en.Offset+en.span()
			if (k > 0 && start < ep.entries[k-1].Offset+ep.entries[k-1].span()) || start < 0 || end > len(data) ||
				data[start] != '"' || data[end-1] != '"' || string(data[start+1:end-1]) != en.placeholder() {
				return nil, 0, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("event %s does not hold the placeholder its manifest names", events[i].ID)}
			}
			ps, act := subs[subBases[i]+en.subjectIndex], acts[bases[i]+k]
			if (act == fieldDecrypt || act == fieldMask) && ps.cipher == nil {
				act = fieldErased
			}
			switch act {
			case fieldErased:
				withs, shown, all = append(withs, erasedForm), append(shown, false), false
			case fieldRedact:
				withs = append(withs, append(append(append(make([]byte, 0, len(en.Token)+32), `{"token":"`...), en.Token...), `","redacted":true}`...))
				shown, all = append(shown, false), false
			default:
				v := ep.values[k]
				with, kept, err := ps.cipher.OpenValueAt(ps.state.Generation, evcrypto.PIIRef{Tenant: tenant, Subject: en.Subject, Token: en.Token, Pointer: en.Pointer, Class: en.Class, Version: v.version}, v.ciphertext, v.kept)
				if err != nil {
					e.piiCache.remove(tenant, events[i].ID)
					return nil, 0, fmt.Errorf("event %s: %w", events[i].ID, err)
				}
				if kept != v.kept && kept != nil {
					// Keep the hint, and the kept copies of what it was
					// opened for (equal to ours: it served them), so that
					// the next read compares pointers, not bytes.
					if !owned {
						ep, changed[i], owned = ep.clone(), true, true
					}
					tok, ptr, sealed := kept.Place()
					ep.values[k].kept, ep.values[k].token, ep.values[k].ciphertext = kept, tok, sealed
					ep.entries[k].Token, ep.entries[k].Pointer = tok, ptr
				}
				if act == fieldMask {
					with = maskValue(en.Class, with)
				}
				withs, shown = append(withs, with), append(shown, true)
				shows = append(shows, showing{i, ps, 1})
			}
		}
		if all {
			events[i].PII, events[i].PIIJSON = ep.whose, ep.whoseJSON
		} else {
			events[i].PII = whoseValues(ep.subjects, ep.entries, shown)
		}
		events[i].Data = splice(data, ep.entries, withs)
		// Keep what this read shows with the key of the event's one
		// subject, when it took its decisions from the page's memo (so
		// that the next read that takes the same knows it may have it).
		if ps := subs[subBases[i]]; all && len(ep.subjects) == 1 && ps.cipher != nil && !ps.state.Restricted {
			if view := intern(actsString(acts[bases[i] : bases[i]+len(ep.entries)])); ep.kept == nil || ep.keptActs != view {
				id := string(events[i].ID[:]) + view
				if k := ps.cipher.KeepData(ps.state.Generation, id, events[i].Data); k != nil {
					if !owned {
						ep, changed[i], owned = ep.clone(), true, true
					}
					ep.kept, ep.keptID, ep.keptActs = k, id, view
				}
			}
		}
		if changed[i] {
			e.piiCache.put(tenant, events[i].ID, ep)
		}
	}
	// With its values in place, a bounded page holds no more than
	// MaxPageBytes of data and metadata (never fewer than one event): the
	// rest is left for the next page, and its values are not counted as
	// read.
	cut := len(events)
	if bounded {
		size := 0
		for i, ev := range events {
			n := len(ev.Data) + len(ev.Metadata)
			if eventvault.PageFull(i, size, n) {
				cut = i
				break
			}
			size += n
		}
	}
	reads := piiReads{}
	for _, sh := range shows {
		if sh.event < cut {
			reads[sh.ps.name] += sh.n
		}
	}
	return reads, cut, nil
}

// pageSubject is what a page knows of one of its subjects.
type pageSubject struct {
	name   eventvault.Pseudonym
	state  eventvault.SubjectKeyState
	known  bool // the store returned a state
	cipher *evcrypto.SubjectCipher
}

// showing is n values of one subject that event shows decrypted or
// masked: what the read log counts (recordPIIReads).
type showing struct {
	event int
	ps    *pageSubject
	n     int
}

// recordPIIReads counts the values a read showed, per subject, in the read
// log (action read_pii, resource subject:<pseudonym>).
func (e *Events) recordPIIReads(p eventvault.Principal, reads piiReads) {
	for s, n := range reads {
		e.reads.Read(p.Tenant, p.Actor(), AuditReadPII, subjectResource(s), n)
	}
}

// actsString is acts as a string, a part of a KeptData's id.
func actsString(acts []fieldAction) string {
	b := make([]byte, len(acts))
	for i, a := range acts {
		b[i] = byte(a)
	}
	return string(b)
}
