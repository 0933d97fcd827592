package engine

import (
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
	AuditReadPII           = "read_pii"
	AuditSubjectExported   = "subject_exported"
	AuditPIIRectified      = "pii_rectified"
	AuditRestrictionPlaced = "restriction_placed"
	AuditRestrictionLifted = "restriction_lifted"
	AuditOutcomeOK         = "ok"
	AuditOutcomeDenied     = "denied"
	AuditOutcomeFailed     = "failed"
	auditResourceTenant    = "tenant"
	auditResourceStreamFmt = "stream:%s"
	auditResourceSubject   = "subject:%s"
)

func streamResource(s eventvault.StreamName) string { return fmt.Sprintf(auditResourceStreamFmt, s) }

func subjectResource(ps eventvault.Pseudonym) string { return fmt.Sprintf(auditResourceSubject, ps) }
