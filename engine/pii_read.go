package engine

import (
	"context"
	"encoding/json"
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
// a value whose subject was erased. The subjects' keys and the values of
// the whole page come in one store round trip (PIIStore.PIIValues), and
// keys are unwrapped through the cache: no Vault call per value.
// Errors: EINTERNAL when a value fails authentication (moved to another
// subject, token, field or tenant, or altered); the store's codes.
func (e *Events) resolvePII(ctx context.Context, tenant eventvault.TenantID, events []eventvault.Event, manifests [][]byte, decide piiDecider) (piiReads, error) {
	entries := make([][]manifestEntry, len(events))
	var tokens []string
	for i, m := range manifests {
		if m == nil {
			continue
		}
		if err := json.Unmarshal(m, &entries[i]); err != nil {
			return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: "engine.resolvePII", Err: err, Message: fmt.Sprintf("event %s has a malformed manifest of personal values", events[i].ID)}
		}
		for _, en := range entries[i] {
			tokens = append(tokens, en.Token)
		}
	}
	if len(tokens) == 0 {
		return nil, nil
	}
	page := eventvault.PIIPage{}
	if e.pii != nil {
		var err error
		if page, err = e.pii.PIIValues(ctx, tenant, tokens); err != nil {
			return nil, fmt.Errorf("personal values of the page: %w", err)
		}
	}
	ciphers := map[eventvault.Pseudonym]*evcrypto.SubjectCipher{}
	reads := piiReads{}
	for i := range events {
		if len(entries[i]) == 0 {
			continue
		}
		type splice struct {
			start, end int
			with       []byte
		}
		data := events[i].Data
		splices := make([]splice, 0, len(entries[i]))
		for _, en := range entries[i] {
			ref, err := parsePointer(en.Pointer)
			start, end, ok := valueSpan(data, ref)
			if err != nil || !ok || string(data[start:end]) != `"`+en.Token+`"` {
				return nil, &eventvault.Error{Code: eventvault.EINTERNAL, Op: "engine.resolvePII", Message: fmt.Sprintf("event %s does not hold the token its manifest names", events[i].ID)}
			}
			with, subject, shown, err := e.resolveOne(ctx, tenant, events[i], en, page, ciphers, decide)
			if err != nil {
				return nil, err
			}
			if shown {
				reads[subject]++
			}
			splices = append(splices, splice{start, end, with})
		}
		slices.SortFunc(splices, func(a, b splice) int { return a.start - b.start })
		out := make([]byte, 0, len(data)+64*len(splices))
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

// resolveOne is what one marked value shows, its subject, and whether the
// value (or its masked form) was shown.
func (e *Events) resolveOne(ctx context.Context, tenant eventvault.TenantID, ev eventvault.Event, en manifestEntry, page eventvault.PIIPage,
	ciphers map[eventvault.Pseudonym]*evcrypto.SubjectCipher, decide piiDecider) ([]byte, eventvault.Pseudonym, bool, error) {
	redacted := func(subject eventvault.Pseudonym) ([]byte, eventvault.Pseudonym, bool, error) {
		b, _ := json.Marshal(struct {
			Token    string `json:"token"`
			Redacted bool   `json:"redacted"`
		}{en.Token, true})
		return b, subject, false, nil
	}
	if e.pii == nil || e.subjects == nil {
		return redacted("") // this server keeps no personal data apart
	}
	v, ok := page.Values[en.Token]
	st := page.Keys[v.Subject]
	if !ok || len(st.Key.Ciphertext) == 0 {
		// The value's rows went with its subject's erasure.
		return []byte(`{"erased":true}`), "", false, nil
	}
	act := decide(piiField{stream: ev.Stream, eventType: ev.Type, pointer: en.Pointer, class: en.Class, subject: v.Subject, restricted: st.Restricted})
	if act == fieldRedact {
		return redacted(v.Subject)
	}
	c, ok := ciphers[v.Subject]
	if !ok {
		var err error
		if c, err = e.subjects.OpenSubjectCipher(ctx, tenant, v.Subject, st.Key); err != nil {
			if eventvault.ErrorCode(err) == eventvault.EERASED {
				return []byte(`{"erased":true}`), "", false, nil
			}
			return nil, "", false, fmt.Errorf("key of a data subject: %w", err)
		}
		ciphers[v.Subject] = c
	}
	value, err := c.OpenValue(evcrypto.PIIRef{Tenant: tenant, Subject: v.Subject, Token: en.Token, Pointer: en.Pointer, Class: en.Class, Version: v.Version}, v.Ciphertext)
	if err != nil {
		return nil, "", false, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	if act == fieldMask {
		return maskValue(en.Class, value), v.Subject, true, nil
	}
	return value, v.Subject, true, nil
}

// recordPIIReads counts the values a read showed, per subject, in the read
// log (action read_pii, resource subject:<pseudonym>).
func (e *Events) recordPIIReads(p eventvault.Principal, reads piiReads) {
	for s, n := range reads {
		e.reads.Read(p.Tenant, p.Actor(), AuditReadPII, subjectResource(s), n)
	}
}
