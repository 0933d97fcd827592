package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// ShredStream destroys a stream's key (and with purge its rows), unless
// the stream's owner is under a legal hold: a hold keeps the subject's data
// from a direct shred as it does from an erasure request.
// Errors: EFORBIDDEN without erase on the stream; ECONFLICT when the
// stream's owner is under a legal hold; ENOTFOUND for a stream that never
// existed; EINVALID for a bad name.
func (e *Erasure) ShredStream(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, purge bool) (eventvault.Shred, error) {
	if err := eventvault.ValidateStream(stream); err != nil {
		return eventvault.Shred{}, err
	}
	if err := refuseReserved(stream); err != nil {
		return eventvault.Shred{}, err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: p.Tenant, Action: policies.Shred, Stream: stream}); err != nil {
		return eventvault.Shred{}, err
	}
	// The hold is checked before the shred, not inside its transaction: a
	// hold placed between the check and the shred does not stop it. A hold
	// is an administrative state, placed ahead of litigation rather than
	// raced against a shred; a check inside each store's shred transaction
	// would close the window.
	if err := e.checkNoHold(ctx, p.Tenant, stream); err != nil {
		if errors.Is(err, errHeld) {
			e.recordHeldShred(ctx, p, stream, purge)
		}
		return eventvault.Shred{}, err
	}
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditShred, Resource: streamResource(stream),
		Outcome: AuditOutcomeOK, Detail: map[string]any{"purge": purge}})
	if err != nil {
		return eventvault.Shred{}, err
	}
	s, err := e.store.ShredStream(actx, p.Tenant, stream, purge, e.clock())
	if err != nil {
		return eventvault.Shred{}, fmt.Errorf("shred %s: %w", stream, err)
	}
	e.keys.EvictStream(p.Tenant, stream)
	e.logger.InfoContext(ctx, "stream shredded", slog.String("tenant", string(p.Tenant)), slog.String("stream", string(stream)),
		slog.String("key_id", s.KeyID.String()), slog.Bool("purged", s.Purged), slog.String("by", p.Actor()))
	if err := e.tombstoneShred(ctx, p.Tenant, p.Actor(), s); err != nil {
		return eventvault.Shred{}, err
	}
	return s, nil
}

// errHeld is wrapped by checkNoHold's ECONFLICT.
var errHeld = errors.New("the stream's owner is under a legal hold")

// recordHeldShred records a shred that a legal hold refused (outcome
// denied, reason legal_hold), in a transaction of its own: the refusal
// writes nothing else. The refusal stands if the record cannot be written;
// that failure is logged.
func (e *Erasure) recordHeldShred(ctx context.Context, p eventvault.Principal, stream eventvault.StreamName, purge bool) {
	store, ok := e.store.(eventvault.AuditStore)
	if !ok {
		return
	}
	ev := eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditShred, Resource: streamResource(stream),
		Outcome: AuditOutcomeDenied, Detail: map[string]any{"purge": purge, "reason": "legal_hold"}}
	if err := eventvault.AppendAuditEvents(ctx, e.audit, store, ev); err != nil {
		e.logger.ErrorContext(ctx, "a shred refused under a legal hold was not recorded", slog.String("tenant", string(p.Tenant)),
			slog.String("stream", string(stream)), slog.Any("error", err))
	}
}

// checkNoHold returns ECONFLICT if the stream's owner is under a legal
// hold. The message names the stream and the hold's reason, never the
// subject.
func (e *Erasure) checkNoHold(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) error {
	owner, err := e.store.StreamOwner(ctx, tenant, stream)
	if err != nil {
		return fmt.Errorf("shred %s: owner: %w", stream, err)
	}
	if owner == "" {
		return nil
	}
	hold, err := e.store.Hold(ctx, tenant, owner)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shred %s: look up hold: %w", stream, err)
	}
	return &eventvault.Error{
		Code: eventvault.ECONFLICT,
		Err:  errHeld,
		Message: fmt.Sprintf("stream %s belongs to a data subject under a legal hold (%s): the shred was refused; lift the hold first (DELETE /v1/holds with {\"subject\": ...} in the body)",
			stream, hold.Reason),
		Fields: map[string]any{"stream": string(stream)},
	}
}

// ShredTenant destroys a tenant's KEK, then revokes the tenant's tokens
// (with the TokenRevoker, if one was given). Only the root token may.
// Shredding again revokes again, so a failed revocation is retried by
// asking again.
// Errors: EFORBIDDEN; EINVALID for a bad tenant id.
func (e *Erasure) ShredTenant(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) (eventvault.TenantShred, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return eventvault.TenantShred{}, err
	}
	if !p.Root {
		return eventvault.TenantShred{}, eventvault.Errorf(eventvault.EFORBIDDEN, "only the root token may shred a tenant")
	}
	actx, err := eventvault.WithAuditEvents(ctx, e.audit, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: AuditShredTenant, Resource: auditResourceTenant, Outcome: AuditOutcomeOK})
	if err != nil {
		return eventvault.TenantShred{}, err
	}
	s, err := e.store.ShredTenant(actx, tenant, e.clock())
	if err != nil {
		return eventvault.TenantShred{}, fmt.Errorf("shred tenant %s: %w", tenant, err)
	}
	e.keys.EvictTenant(tenant)
	e.logger.InfoContext(ctx, "tenant shredded", slog.String("tenant", string(tenant)), slog.Int("keks", len(s.KeyIDs)), slog.String("by", p.Actor()))
	if e.revokeTokens != nil {
		if err := e.revokeTokens(ctx, tenant); err != nil {
			return eventvault.TenantShred{}, fmt.Errorf("tenant %s is shredded, but revoking its tokens failed (shred it again to retry): %w", tenant, err)
		}
	}
	return s, nil
}
