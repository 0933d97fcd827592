package engine

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/policies"
)

// SubjectStore is what a data subject's rights need of the store.
type SubjectStore interface {
	eventvault.PIIStore
	eventvault.EventStore
	eventvault.ErasureStore
	eventvault.AuditStore
}

// Subjects serves a data subject's rights over personal data kept apart:
// the export (GDPR Art. 15 and 20), rectification (Art. 16) and
// restriction of processing (Art. 18). Erasure (Art. 17) is Erasure's.
// Every call needs the subject_rights action, takes the subject id in clear
// and keeps only its pseudonym, and is recorded in the audit log.
type Subjects struct {
	events *Events
	store  SubjectStore
	pseud  Pseudonymizer
	audit  eventvault.AuditRecorder
	now    func() time.Time
}

// NewSubjects returns the rights of subjects over events (built WithPII),
// store and pseud. rec may be nil (auditing off).
func NewSubjects(events *Events, store SubjectStore, pseud Pseudonymizer, rec eventvault.AuditRecorder) *Subjects {
	return &Subjects{events: events, store: store, pseud: pseud, audit: rec, now: time.Now}
}

// MaxRestrictionReasonLength bounds a restriction's reason, in bytes.
const MaxRestrictionReasonLength = 500

func (s *Subjects) subject(p eventvault.Principal, subject string) (eventvault.Pseudonym, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.SubjectRights}); err != nil {
		return "", err
	}
	if err := eventvault.ValidateSubject(subject); err != nil {
		return "", eventvault.AtPointer(err, "/subject") // every route takes it as the body's subject
	}
	if s.pseud == nil || s.events.subjects == nil || s.events.pii == nil {
		return "", eventvault.Errorf(eventvault.EINVALID, "this server keeps no personal data apart (it has no pseudonym key or no subject keys)")
	}
	return s.pseud.Pseudonym(p.Tenant, subject), nil
}

func (s *Subjects) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Rectified is the outcome of a rectification: the token, and the version
// its value now has. It holds no value.
type Rectified struct {
	Token   string `json:"token"`
	Version int64  `json:"version"`
}

// Rectify corrects the value behind token (GDPR Art. 16): value (JSON)
// becomes its next version, which every read resolves from now on; the
// earlier versions stay, for the subject's export, until erasure. Events
// are never rewritten.
// Errors: EFORBIDDEN without subject_rights; EINVALID for a bad subject
// id or a value that is not JSON; ENOTFOUND for a token the tenant does
// not hold for this subject (never, or erased); ECONFLICT when a
// concurrent rectification won (retry).
func (s *Subjects) Rectify(ctx context.Context, p eventvault.Principal, subject, token string, value []byte) (Rectified, error) {
	ps, err := s.subject(p, subject)
	if err != nil {
		return Rectified{}, err
	}
	if len(value) == 0 {
		return Rectified{}, eventvault.FieldErrorf("/value", "value is missing: send the corrected value as JSON")
	}
	if value, err = compactJSON(value); err != nil {
		// The value is not echoed: it is personal data.
		return Rectified{}, eventvault.FieldErrorf("/value", "value is not valid JSON: send the corrected value as a JSON value; text is a JSON string in double quotes, such as \"sam@example.com\", not sam@example.com")
	}
	// The bound an append puts on the values one event marks: every
	// version is kept until the subject is erased, and shown in its export.
	if len(value) > eventvault.MaxPIIBytesPerEvent {
		return Rectified{}, eventvault.FieldErrorf("/value", "value is %d bytes of JSON; the limit is %d bytes (64 KiB), as for the values one event marks: personal values are e-mail addresses, names, notes; keep large documents out of them", len(value), eventvault.MaxPIIBytesPerEvent)
	}
	notHeld := &eventvault.Error{Code: eventvault.ENOTFOUND, Message: "the tenant holds no value of this subject under this token (check both, or the subject was erased)"}
	if !strings.HasPrefix(token, eventvault.PIITokenPrefix) || len(token) > 64 {
		return Rectified{}, notHeld
	}
	page, err := s.store.PIIValues(ctx, p.Tenant, []string{token})
	if err != nil {
		return Rectified{}, fmt.Errorf("rectify: %w", err)
	}
	cur, ok := page.Values[token]
	if !ok || cur.Subject != ps {
		return Rectified{}, notHeld
	}
	c, err := s.events.subjects.OpenSubjectCipher(ctx, p.Tenant, ps, page.Keys[ps].Key)
	if err != nil {
		return Rectified{}, fmt.Errorf("rectify: %w", err)
	}
	next := cur
	next.Version, next.CreatedAt = cur.Version+1, time.Time{}
	next.Ciphertext, err = c.SealValue(evcrypto.PIIRef{Tenant: p.Tenant, Subject: ps, Token: token, Pointer: cur.Pointer, Class: cur.Class, Version: next.Version}, value)
	if err != nil {
		return Rectified{}, err
	}
	actx, err := eventvault.WithAuditEvents(ctx, s.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditPIIRectified,
		Resource: subjectResource(ps), Outcome: AuditOutcomeOK, Detail: map[string]any{"token": token, "version": next.Version}})
	if err != nil {
		return Rectified{}, err
	}
	if err := s.store.RectifyPII(actx, p.Tenant, next); err != nil {
		return Rectified{}, fmt.Errorf("rectify: %w", err)
	}
	return Rectified{Token: token, Version: next.Version}, nil
}

// Restrict places (or replaces) a restriction of processing on the subject
// (GDPR Art. 18): from now on the subject's values are redacted for every
// principal whose policies do not permit read_restricted_pii.
// Errors: EFORBIDDEN without subject_rights; EINVALID for a bad subject id
// or reason.
func (s *Subjects) Restrict(ctx context.Context, p eventvault.Principal, subject, reason string) (eventvault.Restriction, error) {
	ps, err := s.subject(p, subject)
	if err != nil {
		return eventvault.Restriction{}, err
	}
	if reason == "" || len(reason) > MaxRestrictionReasonLength || !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) {
		return eventvault.Restriction{}, eventvault.FieldErrorf("/reason", "reason must be 1 to %d bytes of UTF-8 text without NUL: say why processing is restricted (Art. 18(1) a-d), keeping personal data out of it", MaxRestrictionReasonLength)
	}
	r := eventvault.Restriction{Subject: ps, Reason: reason, PlacedAt: s.clock(), PlacedBy: p.Actor()}
	actx, err := eventvault.WithAuditEvents(ctx, s.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditRestrictionPlaced, Resource: subjectResource(ps), Outcome: AuditOutcomeOK})
	if err != nil {
		return eventvault.Restriction{}, err
	}
	if err := s.store.PutRestriction(actx, p.Tenant, r); err != nil {
		return eventvault.Restriction{}, fmt.Errorf("restrict: %w", err)
	}
	return r, nil
}

// Unrestrict lifts the subject's restriction.
// Errors: EFORBIDDEN without subject_rights; ENOTFOUND if there is none.
func (s *Subjects) Unrestrict(ctx context.Context, p eventvault.Principal, subject string) error {
	ps, err := s.subject(p, subject)
	if err != nil {
		return err
	}
	actx, err := eventvault.WithAuditEvents(ctx, s.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditRestrictionLifted, Resource: subjectResource(ps), Outcome: AuditOutcomeOK})
	if err != nil {
		return err
	}
	if err := s.store.DeleteRestriction(actx, p.Tenant, ps); err != nil {
		return fmt.Errorf("lift restriction: %w", err)
	}
	return nil
}
