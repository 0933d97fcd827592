package engine

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/policies"
)

// AuditLog serves a tenant's audit log to those allowed audit_export.
type AuditLog struct {
	store eventvault.AuditStore
	rec   eventvault.AuditRecorder
	pseud Pseudonymizer
}

// NewAuditLog returns an AuditLog over store; rec records the exports
// themselves (nil: not recorded); pseud gives auditors the pseudonyms
// that records name subjects by (nil: Pseudonym refuses).
func NewAuditLog(store eventvault.AuditStore, rec eventvault.AuditRecorder, pseud Pseudonymizer) *AuditLog {
	return &AuditLog{store: store, rec: rec, pseud: pseud}
}

// Pseudonym returns the pseudonym under which tenant's records name
// subject ("subject:<pseudonym>"), for an export filtered to one subject
// (GDPR Art. 15 requests, a DPO's review). The lookup is recorded, by the
// pseudonym. Errors: EFORBIDDEN without audit_export; EINVALID for a bad
// subject id or a server without a pseudonym key.
func (a *AuditLog) Pseudonym(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, subject string) (eventvault.Pseudonym, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return "", err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.AuditExport}); err != nil {
		return "", err
	}
	if err := eventvault.ValidateSubject(subject); err != nil {
		return "", eventvault.AtPointer(err, "/subject") // POST /v1/audit/pseudonym's body
	}
	if a.pseud == nil {
		return "", eventvault.Errorf(eventvault.EINVALID, "this server has no pseudonym key")
	}
	ps := a.pseud.Pseudonym(tenant, subject)
	if err := eventvault.AppendAuditEvents(ctx, a.rec, a.store, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: "pseudonym_lookup", Resource: subjectResource(ps), Outcome: AuditOutcomeOK}); err != nil {
		return "", err
	}
	return ps, nil
}

// Export writes the bundle of tenant's log (audit.ExportBundle) to w,
// after recording the export in the same log: an export that cannot be
// recorded is not served. Errors: EFORBIDDEN without audit_export on the
// tenant; those of audit.ExportBundle.
func (a *AuditLog) Export(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, req audit.ExportRequest, w io.Writer) error {
	// The deployment's own log (node starts and stops, 401s, root key
	// operations) is the operator's: the root token or the command line.
	if string(tenant) == audit.DeploymentTenant && p.Root {
		tenant = eventvault.DeploymentLog
	} else if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	} else if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.AuditExport}); err != nil {
		return err
	}
	if size, err := a.store.AuditSize(ctx, tenant); err != nil {
		return err
	} else if size == 0 {
		return eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no audit records: nothing was done in it", tenant)
	}
	// Built whole first: an export that is refused or fails is not
	// recorded as one, and one that cannot be recorded is not served.
	var buf bytes.Buffer
	if err := audit.ExportBundle(ctx, &buf, a.store, tenant, req); err != nil {
		return err
	}
	detail := map[string]any{"bytes": buf.Len()}
	for k, v := range map[string]int64{"from": req.From, "to": req.To, "old_size": req.OldSize} {
		if v != 0 {
			detail[k] = v
		}
	}
	if req.Resource != "" {
		detail["resource"] = req.Resource
	}
	if err := eventvault.AppendAuditEvents(ctx, a.rec, a.store, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: "export", Resource: "audit_log", Outcome: AuditOutcomeOK, Detail: detail}); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ParseIndex parses a record index (from, to) or a log size (old_size)
// given as a query parameter: a whole number from 0. Empty is 0.
func ParseIndex(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		what := "a record index"
		if name == "old_size" {
			what = "a log size (the number of records of an earlier export)"
		}
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter %s must be %s, a whole number from 0", name, what)
	}
	return n, nil
}

// Processing returns the records of processing of tenant over [from, to)
// (audit.Summarize), for those allowed audit_export.
// Errors: EFORBIDDEN; EINVALID for from not before to.
func (a *AuditLog) Processing(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, from, to time.Time) (audit.Processing, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return audit.Processing{}, err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.AuditExport}); err != nil {
		return audit.Processing{}, err
	}
	return audit.Summarize(ctx, a.store, tenant, from, to)
}
