package engine

import (
	"context"
	"io"
	"strconv"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/policies"
)

// AuditLog serves a tenant's audit log to those allowed audit_export.
type AuditLog struct {
	store eventvault.AuditStore
	rec   eventvault.AuditRecorder
}

// NewAuditLog returns an AuditLog over store; rec records the exports
// themselves (nil: not recorded).
func NewAuditLog(store eventvault.AuditStore, rec eventvault.AuditRecorder) *AuditLog {
	return &AuditLog{store: store, rec: rec}
}

// Export writes the bundle of tenant's log (audit.ExportBundle) to w,
// after recording the export in the same log: an export that cannot be
// recorded is not served. Errors: EFORBIDDEN without audit_export on the
// tenant; those of audit.ExportBundle.
func (a *AuditLog) Export(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, req audit.ExportRequest, w io.Writer) error {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.AuditExport}); err != nil {
		return err
	}
	detail := map[string]any{"from": req.From, "to": req.To, "old_size": req.OldSize}
	if req.Resource != "" {
		detail["resource"] = req.Resource
	}
	if err := appendAudit(ctx, a.rec, a.store, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: "export", Resource: "audit_log", Outcome: AuditOutcomeOK, Detail: detail}); err != nil {
		return err
	}
	return audit.ExportBundle(ctx, w, a.store, tenant, req)
}

// ParseIndex parses a record index or size given as a query parameter.
func ParseIndex(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s must be a record index, a whole number from 0", name)
	}
	return n, nil
}
