package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/eventvault/eventvault"
)

// DeploymentTenant names the deployment's own log (node starts and stops,
// root key operations, refusals of callers with no tenant) in records and
// checkpoints: no tenant id starts with '_'.
const DeploymentTenant = "_deployment"

// LogTenant is the name a store's log (eventvault.DeploymentLog or a
// tenant) has in records and checkpoints.
func LogTenant(t eventvault.TenantID) string {
	if t == eventvault.DeploymentLog {
		return DeploymentTenant
	}
	return string(t)
}

// Recorder turns the engine's events into record lines, stamped with the
// time and the request id of the context: it implements
// eventvault.AuditRecorder. Each line holds eventvault.AuditIndexPlaceholder
// for the store to set.
type Recorder struct {
	Now func() time.Time // time.Now when nil
}

// Lines implements eventvault.AuditRecorder. Events must share a log.
// Detail values are written as strings or integers (a bool as "true" or
// "false"). Errors: a malformed record (ErrMalformedRecord).
func (r *Recorder) Lines(ctx context.Context, events ...eventvault.AuditEvent) (*eventvault.AuditLines, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("audit: no event to record")
	}
	now := time.Now
	if r != nil && r.Now != nil {
		now = r.Now
	}
	at := now()
	out := &eventvault.AuditLines{Tenant: events[0].Tenant, Lines: make([][]byte, 0, len(events))}
	for _, ev := range events {
		if ev.Tenant != out.Tenant {
			return nil, fmt.Errorf("audit: events of logs %q and %q in one write", out.Tenant, ev.Tenant)
		}
		actor := ev.Actor
		if actor == "" {
			actor = "anonymous"
		}
		rec := Record{Tenant: LogTenant(ev.Tenant), Time: at, Actor: actor, Action: ev.Action, Resource: ev.Resource,
			Outcome: ev.Outcome, RequestID: eventvault.RequestIDFrom(ctx), Detail: detail(ev.Detail)}
		line, err := rec.MarshalLine()
		if err != nil {
			return nil, err
		}
		out.Lines = append(out.Lines, line)
	}
	return out, nil
}

// detail makes d's values strings or int64s.
func detail(d map[string]any) map[string]any {
	if len(d) == 0 {
		return nil
	}
	out := make(map[string]any, len(d))
	for k, v := range d {
		switch v := v.(type) {
		case int:
			out[k] = int64(v)
		case int64:
			out[k] = v
		case int32:
			out[k] = int64(v)
		case uint64:
			out[k] = int64(v)
		case uint32:
			out[k] = int64(v)
		case bool:
			out[k] = fmt.Sprint(v)
		case string:
			out[k] = v
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
