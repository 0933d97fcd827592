package engine

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// SubjectKeyEvictor forgets a cached subject key once the store destroyed
// it: crypto.SubjectKeys implements it.
type SubjectKeyEvictor interface {
	EvictSubject(tenant eventvault.TenantID, subject eventvault.Pseudonym)
}

// WithPIIErasure makes an erasure request (GDPR Art. 17) also destroy the
// subject's key and every personal value stored under it, and fence the
// pseudonym so that it never gets a key again; the certificate lists the
// subject key. A request that destroys no subject key (the subject never
// had one) fences nothing: values marked for that id later take a key,
// and a new request erases them. Without it an erasure shreds the
// subject's streams only.
func WithPIIErasure(store eventvault.PIIStore, keys SubjectKeyEvictor) ErasureOption {
	return func(e *Erasure) { e.pii, e.piiKeys = store, keys }
}

// holdsSubjectKey reports whether the subject has a live key now: values
// were marked for it since a request that found none, so that request's
// certificate does not cover them.
func (e *Erasure) holdsSubjectKey(ctx context.Context, tenant eventvault.TenantID, ps eventvault.Pseudonym) (bool, error) {
	if e.pii == nil {
		return false, nil
	}
	_, err := e.pii.SubjectKey(ctx, tenant, ps)
	switch {
	case err == nil:
		return true, nil
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND, eventvault.ErrorCode(err) == eventvault.EERASED:
		return false, nil
	}
	return false, fmt.Errorf("subject key: %w", err)
}

// AuditSubjectKeyDestroyed is the action of the record of a subject key's
// destruction by an erasure request.
const AuditSubjectKeyDestroyed = "subject_key_destroyed"

// erasePII destroys the subject's key and values for req, recorded in the
// same transaction (subject_key_destroyed, which the store writes only if
// a key was destroyed), evicts the key from this node's cache, and lists
// it in cert. Idempotent: a subject erased before destroys nothing more.
func (e *Erasure) erasePII(ctx context.Context, req eventvault.ErasureRequest, cert *eventvault.ErasureCertificate) error {
	if e.pii == nil {
		return nil
	}
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: req.Tenant, Actor: req.RequestedBy, Action: AuditSubjectKeyDestroyed,
		Resource: subjectResource(req.Subject), Outcome: AuditOutcomeOK, Detail: map[string]any{"erasure_request": req.ID.String()}})
	if err != nil {
		return err
	}
	se, err := e.pii.EraseSubjectPII(actx, req.Tenant, req.Subject, e.clock())
	if err != nil {
		return fmt.Errorf("erasure %s: destroy the subject key: %w", req.ID, err)
	}
	e.piiKeys.EvictSubject(req.Tenant, req.Subject)
	if se.KeyID != uuid.Nil {
		cert.DestroyedKeys = append(cert.DestroyedKeys, eventvault.DestroyedKey{Kind: "subject", KeyID: se.KeyID})
	}
	return nil
}
