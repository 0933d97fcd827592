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
	return func(f piiField) fieldAction {
		k := key{f.stream, f.eventType, f.pointer, f.class, f.restricted}
		if a, ok := cache[k]; ok {
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
// of the page's subjects come in one store round trip
// (PIIStore.SubjectStates), however many subjects the page mixes; the
// ciphertext of values shown comes from the cache of ciphertext (piiCache)
// or, for those it lacks at the subject's generation, from one more round
// trip (PIIStore.PIIValues). Subject keys are unwrapped through the
// keyring's cache: no Vault call per value. Values a caller sees redacted
// are neither fetched nor decrypted.
// Errors: EINTERNAL when a value fails authentication (moved to another
// subject, token, field or tenant, or altered) or a manifest is malformed;
// the store's codes.
func (e *Events) resolvePII(ctx context.Context, tenant eventvault.TenantID, events []eventvault.Event, manifests [][]byte, decide piiDecider) (piiReads, error) {
	const op = "engine.resolvePII"
	spans := make([][2]int, len(events)) // each event's entries in all
	var all []manifestEntry
	for i, m := range manifests {
		if m == nil {
			continue
		}
		start := len(all)
		var err error
		if all, err = decodeManifest(m, all); err != nil {
			return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Err: err, Message: fmt.Sprintf("event %s has a malformed manifest of personal values", events[i].ID)}
		}
		spans[i] = [2]int{start, len(all)}
	}
	if len(all) == 0 {
		return nil, nil
	}
	if e.pii == nil || e.subjects == nil {
		// This server keeps no personal data apart: everything redacted.
		decide = func(piiField) fieldAction { return fieldRedact }
	}
	var subjects []eventvault.Pseudonym
	seen := map[eventvault.Pseudonym]bool{}
	for _, en := range all {
		if !seen[en.Subject] {
			seen[en.Subject] = true
			subjects = append(subjects, en.Subject)
		}
	}
	states := map[eventvault.Pseudonym]eventvault.SubjectKeyState{}
	if e.pii != nil {
		var err error
		if states, err = e.pii.SubjectStates(ctx, tenant, subjects); err != nil {
			return nil, fmt.Errorf("personal data of the page: %w", err)
		}
	}
	// What each value shows, and the ciphertext of those shown.
	acts := make([]fieldAction, len(all))
	values := make([]cachedValue, len(all))
	var missing []string
	refill := make([]bool, len(events))
	for i := range events {
		if spans[i][0] == spans[i][1] {
			continue
		}
		cached := e.piiCache.get(tenant, events[i].ID)
		for j := spans[i][0]; j < spans[i][1]; j++ {
			en := all[j]
			st, ok := states[en.Subject]
			if !ok || len(st.Key.Ciphertext) == 0 {
				acts[j] = fieldErased
				continue
			}
			acts[j] = decide(piiField{stream: events[i].Stream, eventType: events[i].Type, pointer: en.Pointer, class: en.Class, subject: en.Subject, restricted: st.Restricted})
			if acts[j] == fieldRedact {
				continue
			}
			if k := j - spans[i][0]; k < len(cached) && cached[k].fresh(en, st.Generation) {
				values[j] = cached[k]
			} else {
				missing = append(missing, en.Token)
				refill[i] = true
			}
		}
	}
	if len(missing) > 0 {
		page, err := e.pii.PIIValues(ctx, tenant, missing)
		if err != nil {
			return nil, fmt.Errorf("personal values of the page: %w", err)
		}
		for i := range events {
			if !refill[i] {
				continue
			}
			for j := spans[i][0]; j < spans[i][1]; j++ {
				en := all[j]
				if (acts[j] != fieldDecrypt && acts[j] != fieldMask) || values[j].ciphertext != nil {
					continue
				}
				v, ok := page.Values[en.Token]
				if !ok || v.Subject != en.Subject {
					acts[j] = fieldErased // its rows went with an erasure meanwhile
					continue
				}
				values[j] = cachedValue{token: en.Token, subject: v.Subject, version: v.Version, generation: states[en.Subject].Generation, ciphertext: v.Ciphertext}
			}
			e.piiCache.put(tenant, events[i].ID, slices.Clone(values[spans[i][0]:spans[i][1]]))
		}
	}
	ciphers := map[eventvault.Pseudonym]*evcrypto.SubjectCipher{}
	for _, s := range subjects {
		st, ok := states[s]
		if !ok {
			continue
		}
		// A destroyed key row also evicts the key, and the values opened
		// with it, should this node still cache them (erasure elsewhere).
		c, err := e.subjects.OpenSubjectCipher(ctx, tenant, s, st.Key)
		if eventvault.ErrorCode(err) == eventvault.EERASED {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key of a data subject: %w", err)
		}
		ciphers[s] = c
	}
	reads := piiReads{}
	for i := range events {
		if spans[i][0] == spans[i][1] {
			continue
		}
		data := events[i].Data
		type splice struct {
			start, end int
			with       []byte
		}
		splices := make([]splice, 0, spans[i][1]-spans[i][0])
		for j := spans[i][0]; j < spans[i][1]; j++ {
			en := all[j]
			start, end := en.Offset, en.Offset+len(en.Token)+2
			if start < 0 || end > len(data) || data[start] != '"' || data[end-1] != '"' || string(data[start+1:end-1]) != en.Token {
				return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: op, Message: fmt.Sprintf("event %s does not hold the token its manifest names", events[i].ID)}
			}
			act, c := acts[j], ciphers[en.Subject]
			if (act == fieldDecrypt || act == fieldMask) && c == nil {
				act = fieldErased
			}
			var with []byte
			switch act {
			case fieldErased:
				with = []byte(`{"erased":true}`)
			case fieldRedact:
				with = append(append(append(make([]byte, 0, len(en.Token)+32), `{"token":"`...), en.Token...), `","redacted":true}`...)
			default:
				v := values[j]
				var err error
				with, err = c.OpenValueAt(states[en.Subject].Generation, evcrypto.PIIRef{Tenant: tenant, Subject: en.Subject, Token: en.Token, Pointer: en.Pointer, Class: en.Class, Version: v.version}, v.ciphertext)
				if err != nil {
					e.piiCache.remove(tenant, events[i].ID)
					return nil, fmt.Errorf("event %s: %w", events[i].ID, err)
				}
				if act == fieldMask {
					with = maskValue(en.Class, with)
				}
				reads[en.Subject]++
			}
			splices = append(splices, splice{start, end, with})
		}
		slices.SortFunc(splices, func(a, b splice) int { return a.start - b.start })
		size := len(data)
		for _, s := range splices {
			size += len(s.with) - (s.end - s.start)
		}
		out := make([]byte, 0, size)
		last := 0
		for _, s := range splices {
			out = append(out, data[last:s.start]...)
			out = append(out, s.with...)
			last = s.end
		}
		events[i].Data = append(out, data[last:]...)
	}
	return reads, nil
}

// recordPIIReads counts the values a read showed, per subject, in the read
// log (action read_pii, resource subject:<pseudonym>).
func (e *Events) recordPIIReads(p eventvault.Principal, reads piiReads) {
	for s, n := range reads {
		e.reads.Read(p.Tenant, p.Actor(), AuditReadPII, subjectResource(s), n)
	}
}
