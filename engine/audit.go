package engine

import (
	"context"
	"fmt"

	"github.com/eventvault/eventvault"
)

// The actions audit records name (package audit documents them).
const (
	AuditAppend            = "append"
	AuditShred             = "shred"
	AuditShredTenant       = "shred_tenant"
	AuditErasureRequested  = "erasure_requested"
	AuditErasureState      = "erasure_state"
	AuditHoldPlaced        = "hold_placed"
	AuditHoldLifted        = "hold_lifted"
	AuditKEKRotated        = "kek_rotated"
	AuditRootRotated       = "root_rotated"
	AuditRootRetired       = "root_retired"
	AuditTokenIssued       = "token_issued"
	AuditTokenRevoked      = "token_revoked"
	AuditPolicyWritten     = "policy_written"
	AuditPolicyDeleted     = "policy_deleted"
	AuditDenied            = "denied"
	AuditOutcomeOK         = "ok"
	AuditOutcomeDenied     = "denied"
	AuditOutcomeFailed     = "failed"
	auditResourceTenant    = "tenant"
	auditResourceStreamFmt = "stream:%s"
	auditResourceSubject   = "subject:%s"
)

// withAudit returns ctx carrying the record lines of evs, which the store
// writes with the next write transaction it commits under ctx: the action
// and its records commit together, or neither does (fail closed). rec nil
// records nothing (tests of other parts).
func withAudit(ctx context.Context, rec eventvault.AuditRecorder, evs ...eventvault.AuditEvent) (context.Context, error) {
	if rec == nil {
		return ctx, nil
	}
	lines, err := rec.Lines(ctx, evs...)
	if err != nil {
		return ctx, fmt.Errorf("audit record: %w", err)
	}
	return eventvault.WithAudit(ctx, lines), nil
}

// appendAudit writes evs in a transaction of their own, for actions that
// span many transactions (key rotations): written before the action
// starts, so that an action that cannot be recorded never starts.
func appendAudit(ctx context.Context, rec eventvault.AuditRecorder, store eventvault.AuditStore, evs ...eventvault.AuditEvent) error {
	if rec == nil || store == nil {
		return nil
	}
	lines, err := rec.Lines(ctx, evs...)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	if _, err := store.AppendAudit(ctx, lines.Tenant, lines.Lines); err != nil {
		return fmt.Errorf("write the audit record: %w", err)
	}
	return nil
}

func streamResource(s eventvault.StreamName) string { return fmt.Sprintf(auditResourceStreamFmt, s) }

func subjectResource(ps eventvault.Pseudonym) string { return fmt.Sprintf(auditResourceSubject, ps) }
