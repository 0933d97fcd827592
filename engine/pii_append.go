package engine

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// SubjectKeys is what personal data needs of the key hierarchy:
// crypto.SubjectKeys implements it. Unwrapped keys stay behind it.
type SubjectKeys interface {
	// SubjectCipher returns the cipher of the subject's key, creating it
	// if missing. Errors: EERASED wrapping ErrSubjectErased for an erased
	// subject; the store's and root key's codes.
	SubjectCipher(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) (*evcrypto.SubjectCipher, error)
	// OpenSubjectCipher returns the cipher of wk, the key row read with
	// the values it opens. Errors: EERASED for a destroyed key.
	OpenSubjectCipher(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym, wk eventvault.WrappedKey) (*evcrypto.SubjectCipher, error)
	// EvictSubject forgets a cached subject key.
	EvictSubject(tenant eventvault.TenantID, subject eventvault.Pseudonym)
}

// WithPII lets appends mark personal values and reads resolve them: values
// are stored in store, under subject keys from keys. Without it an append
// that marks a value is refused, and a read shows marked values redacted.
func WithPII(keys SubjectKeys, store eventvault.PIIStore) EventsOption {
	return func(e *Events) { e.subjects, e.pii = keys, store }
}

// piiBatch is an append's personal values, prepared once for all its
// attempts: the data each event is sealed with (tokens in place of the
// values), the data its content MAC is computed over (a keyed digest of
// each value in its place, so that a retried append is a replay), its
// manifest, and the values sealed under their subjects' keys.
type piiBatch struct {
	sealData  [][]byte
	macData   [][]byte
	manifests [][]byte
	values    []eventvault.PIIValue
	subjects  []eventvault.Pseudonym
}

// tokenEncoding writes tokens: lower-case base32 without padding.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newToken returns a fresh token: PIITokenPrefix and 128 random bits,
// never derived from the value it stands for.
func newToken() (string, error) {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", err
	}
	return eventvault.PIITokenPrefix + tokenEncoding.EncodeToString(b[:]), nil
}

// validatePII checks every event's marks: at most MaxPIIPerEvent, each a
// well-formed pointer of at most MaxPIIPointerLength bytes that names a
// value of the event's data, not inside another marked value, with a
// subject and a known class. Data must be compacted already. Errors:
// EINVALID naming the event and the pointer.
func validatePII(events []eventvault.NewEvent) error {
	for i, ev := range events {
		if len(ev.PII) == 0 {
			continue
		}
		if len(ev.PII) > eventvault.MaxPIIPerEvent {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/pii", i), "events[%d].pii marks %d values; the limit is %d per event", i, len(ev.PII), eventvault.MaxPIIPerEvent)
		}
		refs := make([][]string, len(ev.PII))
		marked := 0 // bytes of the marked values
		for j, m := range ev.PII {
			at := fmt.Sprintf("events[%d].pii[%q]", i, eventvault.Truncate(m.Pointer, 80))
			// mark is the body pointer of the mark: its key, escaped.
			mark := fmt.Sprintf("/events/%d/pii/%s", i, eventvault.PointerToken(m.Pointer))
			if len(m.Pointer) > eventvault.MaxPIIPointerLength {
				return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/pii", i), "events[%d].pii: a pointer is %d bytes long; the limit is %d", i, len(m.Pointer), eventvault.MaxPIIPointerLength)
			}
			ref, err := parsePointer(m.Pointer)
			if err != nil || m.Pointer == "" {
				return eventvault.FieldErrorf(mark, "%s is not a JSON Pointer (RFC 6901) to a value inside data, such as \"/customer/email\" (escape '~' as ~0 and '/' as ~1)", at)
			}
			if m.Subject == "" {
				return eventvault.FieldErrorf(mark+"/subject", "%s.subject is empty: name the data subject the value belongs to", at)
			}
			if err := eventvault.ValidateNewSubject(m.Subject); err != nil {
				return eventvault.FieldErrorf(mark+"/subject", "%s.subject: %s", at, eventvault.ErrorMessage(err))
			}
			if !eventvault.ValidPIIClass(m.Class) {
				return eventvault.FieldErrorf(mark+"/class", "%s.class must be email, phone, address or free_text, or left out", at)
			}
			start, end, ok := valueSpan(ev.Data, ref)
			if !ok {
				return eventvault.FieldErrorf(mark, "%s names nothing in events[%d].data", at, i)
			}
			refs[j], marked = ref, marked+end-start
		}
		if marked > eventvault.MaxPIIBytesPerEvent {
			return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/pii", i), "events[%d].pii marks %d bytes of values; the limit is %d bytes (64 KiB) per event: personal values are e-mail addresses, names, notes; keep large documents out of them", i, marked, eventvault.MaxPIIBytesPerEvent)
		}
		for j := range refs {
			for k := range refs {
				if j != k && within(refs[j], refs[k]) {
					return eventvault.FieldErrorf(fmt.Sprintf("/events/%d/pii/%s", i, eventvault.PointerToken(ev.PII[j].Pointer)), "events[%d].pii[%q] points into a value already marked (%q): mark the outer value or the inner ones, not both",
						i, eventvault.Truncate(ev.PII[j].Pointer, 80), eventvault.Truncate(ev.PII[k].Pointer, 80))
				}
			}
		}
	}
	return nil
}

// preparePII seals the batch's marked values under their subjects' keys
// (creating keys for new subjects) and builds what the append seals. It
// returns nil for a batch that marks nothing.
// Errors: EINVALID on a server without personal data kept apart; ECONFLICT
// for a value of an erased subject; the key hierarchy's codes.
func (e *Events) preparePII(ctx context.Context, tenant eventvault.TenantID, events []eventvault.NewEvent) (*piiBatch, error) {
	marked := slices.ContainsFunc(events, func(ev eventvault.NewEvent) bool { return len(ev.PII) > 0 })
	if !marked {
		return nil, nil
	}
	if e.subjects == nil || e.pii == nil || e.pseud == nil {
		return nil, eventvault.Errorf(eventvault.EINVALID, "this server keeps no personal data apart (it has no pseudonym key or no subject keys), so appends cannot mark values in \"pii\"")
	}
	b := &piiBatch{sealData: make([][]byte, len(events)), macData: make([][]byte, len(events)), manifests: make([][]byte, len(events))}
	ciphers := map[eventvault.Pseudonym]*evcrypto.SubjectCipher{}
	for i, ev := range events {
		b.sealData[i], b.macData[i] = ev.Data, ev.Data
		if len(ev.PII) == 0 {
			continue
		}
		type spot struct {
			start, end int
			token      string
			digest     []byte
		}
		spots := make([]spot, 0, len(ev.PII))
		manifest := make([]manifestEntry, 0, len(ev.PII))
		for _, m := range ev.PII {
			ref, _ := parsePointer(m.Pointer)
			start, end, _ := valueSpan(ev.Data, ref)
			ps := e.pseud.Pseudonym(tenant, m.Subject)
			c, ok := ciphers[ps]
			if !ok {
				var err error
				if c, err = e.subjects.SubjectCipher(ctx, tenant, ps); err != nil {
					if errors.Is(err, eventvault.ErrSubjectErased) {
						return nil, subjectErasedConflict(err)
					}
					return nil, fmt.Errorf("key of a data subject: %w", err)
				}
				ciphers[ps] = c
				b.subjects = append(b.subjects, ps)
			}
			token, err := newToken()
			if err != nil {
				return nil, fmt.Errorf("draw a token: %w", err)
			}
			value := ev.Data[start:end]
			sealed, err := c.SealValue(evcrypto.PIIRef{Tenant: tenant, Subject: ps, Token: token, Pointer: m.Pointer, Class: m.Class, Version: 1}, value)
			if err != nil {
				return nil, err
			}
			b.values = append(b.values, eventvault.PIIValue{Token: token, Subject: ps, EventID: ev.ID, Pointer: m.Pointer, Class: m.Class, Version: 1, KeyID: c.KeyID(), Ciphertext: sealed})
			spots = append(spots, spot{start: start, end: end, token: token, digest: c.Digest(m.Pointer, m.Class, value)})
			manifest = append(manifest, manifestEntry{Pointer: m.Pointer, Token: token, Class: m.Class, Subject: ps})
		}
		slices.SortFunc(spots, func(a, b spot) int { return a.start - b.start })
		version := manifestVersion(manifest)
		var sealData, macData bytes.Buffer
		last := 0
		for _, s := range spots {
			sealData.Write(ev.Data[last:s.start])
			macData.Write(ev.Data[last:s.start])
			for k := range manifest {
				if manifest[k].Token == s.token {
					manifest[k].Offset = sealData.Len()
				}
			}
			if version == manifestV3 {
				sealData.WriteString(`""`) // the token is in the manifest
			} else {
				sealData.WriteString(`"` + s.token + `"`)
			}
			macData.WriteString(`"` + hex.EncodeToString(s.digest) + `"`)
			last = s.end
		}
		sealData.Write(ev.Data[last:])
		macData.Write(ev.Data[last:])
		b.sealData[i], b.macData[i] = sealData.Bytes(), macData.Bytes()
		b.manifests[i] = encodeManifest(manifest, version)
	}
	return b, nil
}

// subjectErasedConflict is the ECONFLICT of an append marking a value of
// an erased subject: the erasure fence of subjects.
func subjectErasedConflict(cause error) error {
	return &eventvault.Error{Code: eventvault.ECONFLICT, Err: cause, Fields: map[string]any{"erased": true},
		Message: "a marked value belongs to a data subject who was erased: their key was destroyed, and an erased subject never gets a new key under the same id, so nothing was appended. " +
			"Do not send the value unmarked instead, which would store personal data in clear: if the person is a data subject of yours again (a customer who came back after the erasure), " +
			"give them a new subject id in your system and mark the value with it; if the value should not be kept, leave it out. Your DPO decides which"}
}
