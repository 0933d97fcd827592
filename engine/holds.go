package engine

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// PutHold places a legal hold on a subject.
// Errors: EFORBIDDEN without erase on the tenant; EINVALID for a bad
// subject or reason.
func (e *Erasure) PutHold(ctx context.Context, p eventvault.Principal, subject, reason string) (eventvault.Hold, error) {
	ps, err := e.authorizedSubject(p, policies.Hold, subject)
	if err != nil {
		return eventvault.Hold{}, err
	}
	if reason == "" || len(reason) > MaxHoldReasonLength {
		return eventvault.Hold{}, eventvault.FieldErrorf("/reason", "reason must be 1 to %d bytes: say why the data must be kept (it is shown on rejected erasure requests, so keep personal data out of it)", MaxHoldReasonLength)
	}
	if !utf8.ValidString(reason) || strings.ContainsRune(reason, 0) {
		return eventvault.Hold{}, eventvault.FieldErrorf("/reason", "reason must be UTF-8 text without NUL characters")
	}
	h := eventvault.Hold{Subject: ps, Reason: reason, PlacedAt: e.clock(), PlacedBy: p.Actor()}
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditHoldPlaced, Resource: subjectResource(ps), Outcome: AuditOutcomeOK})
	if err != nil {
		return eventvault.Hold{}, err
	}
	if err := e.store.PutHold(actx, p.Tenant, h); err != nil {
		return eventvault.Hold{}, fmt.Errorf("place hold: %w", err)
	}
	return h, nil
}

// DeleteHold lifts a subject's legal hold. Errors: ENOTFOUND if none.
func (e *Erasure) DeleteHold(ctx context.Context, p eventvault.Principal, subject string) error {
	ps, err := e.authorizedSubject(p, policies.Hold, subject)
	if err != nil {
		return err
	}
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditHoldLifted, Resource: subjectResource(ps), Outcome: AuditOutcomeOK})
	if err != nil {
		return err
	}
	if err := e.store.DeleteHold(actx, p.Tenant, ps); err != nil {
		return fmt.Errorf("lift hold: %w", err)
	}
	return nil
}

func (e *Erasure) authorizedSubject(p eventvault.Principal, action policies.Action, subject string) (eventvault.Pseudonym, error) {
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: action}); err != nil {
		return "", err
	}
	return e.Pseudonym(p.Tenant, subject)
}
