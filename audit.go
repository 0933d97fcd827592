package eventvault

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// DeploymentLog is the tenant of the deployment's own audit log: node
// starts and stops, and requests whose tenant is unknown (a 401). It is
// no valid tenant id, so no tenant can write or read it.
const DeploymentLog TenantID = ""

// AuditLines are audit records (canonical JSON lines, package audit) that
// must be written in the same transaction as the action they record: a
// store writes them, at the next indexes of Tenant's log, in the first
// write transaction that commits with them, and in no other. An action
// that commits no write transaction writes none (nothing happened).
//
// A record names its own index, which only the store knows when it writes
// it: a line holds AuditIndexPlaceholder where the index goes, and the
// store writes it with the placeholder's 0 replaced by the index. (The
// placeholder cannot occur elsewhere in a canonical line: a quote inside
// a string value is escaped.)
const AuditIndexPlaceholder = `"index":0,"time":`

// AuditLineAt returns line with its index placeholder set to index (a line
// without one is returned as it is).
func AuditLineAt(line []byte, index int64) []byte {
	return bytes.Replace(line, []byte(AuditIndexPlaceholder), fmt.Appendf(nil, `"index":%d,"time":`, index), 1)
}

type AuditLines struct {
	Tenant TenantID
	Lines  [][]byte

	mu      sync.Mutex
	written bool
	first   int64
}

// Take returns the lines for a transaction about to commit, and false if
// they were written by an earlier one.
func (a *AuditLines) Take() ([][]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Lines, !a.written
}

// Written records that the transaction holding the lines committed them
// at first, first+1, ...
func (a *AuditLines) Written(first int64) {
	a.mu.Lock()
	a.written, a.first = true, first
	a.mu.Unlock()
}

// WrittenAt reports where the lines were written, if they were.
func (a *AuditLines) WrittenAt() (first int64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first, a.written
}

type auditKey struct{}

// WithAudit returns ctx carrying lines for the store to write with the
// next write transaction it commits under ctx (see AuditLines).
func WithAudit(ctx context.Context, lines *AuditLines) context.Context {
	return context.WithValue(ctx, auditKey{}, lines)
}

// AuditFrom returns the lines ctx carries, nil if none.
func AuditFrom(ctx context.Context) *AuditLines {
	a, _ := ctx.Value(auditKey{}).(*AuditLines)
	return a
}

// AuditStore keeps each tenant's audit log: an append-only sequence of
// record lines, the Merkle tree hashes over it (RFC 6962, as
// golang.org/x/mod/sumdb/tlog stores them) and signed checkpoints. Nothing
// in it is ever changed or removed; the server's database role may only
// insert (PostgreSQL enforces it).
type AuditStore interface {
	// AppendAudit writes lines at the next indexes of tenant's log in a
	// transaction of its own and returns the first index. Errors:
	// EUNAVAILABLE when the log cannot be written.
	AppendAudit(ctx context.Context, tenant TenantID, lines [][]byte) (first int64, err error)
	// AuditSize is the number of records in tenant's log.
	AuditSize(ctx context.Context, tenant TenantID) (int64, error)
	// AuditRecords returns the records at indexes [from, to), in order.
	// Errors: EINVALID for a range outside [0, size].
	AuditRecords(ctx context.Context, tenant TenantID, from, to int64) ([][]byte, error)
	// AuditHashes returns the stored hashes at the given storage indexes
	// (tlog.StoredHashIndex), in the order asked. Errors: ENOTFOUND for
	// one not stored.
	AuditHashes(ctx context.Context, tenant TenantID, indexes []int64) ([][]byte, error)
	// AddAuditHashes stores hashes at storage indexes from, from+1, ...
	// (those tlog.StoredHashes gives for the records being integrated);
	// ECONFLICT if one is stored already.
	AddAuditHashes(ctx context.Context, tenant TenantID, from int64, hashes [][]byte) error
	// AddAuditCheckpoint stores a signed checkpoint of size records;
	// ECONFLICT if one of that size exists.
	AddAuditCheckpoint(ctx context.Context, tenant TenantID, size int64, note []byte) error
	// LatestAuditCheckpoint returns the largest checkpoint. Errors:
	// ENOTFOUND if there is none.
	LatestAuditCheckpoint(ctx context.Context, tenant TenantID) (size int64, note []byte, err error)
	// AuditTenants lists the tenants whose log holds records, the
	// deployment's own log (DeploymentLog) included.
	AuditTenants(ctx context.Context) ([]TenantID, error)
}

// AuditEvent is one security-relevant action as the engine describes it;
// an AuditRecorder turns it into a record line (package audit). Detail
// holds counts, positions, versions, reason classes: never event data, a
// key, a token or a personal value (subjects only as pseudonyms).
type AuditEvent struct {
	Tenant   TenantID // DeploymentLog for the deployment's own log
	Actor    string   // Principal.Actor, "operator", or "node:<id>"
	Action   string
	Resource string
	Outcome  string // "ok", "denied" or "failed"
	Detail   map[string]any
}

// AuditRecorder turns events into record lines, stamped with the time and
// the request id ctx carries.
type AuditRecorder interface {
	Lines(ctx context.Context, events ...AuditEvent) (*AuditLines, error)
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the HTTP request id that audit
// records name.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id ctx carries, "" if none.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithAuditEvents returns ctx carrying the record lines of evs (WithAudit),
// for the store to write with the action's transaction; ctx as it is when
// rec is nil (auditing off).
func WithAuditEvents(ctx context.Context, rec AuditRecorder, evs ...AuditEvent) (context.Context, error) {
	if rec == nil {
		return ctx, nil
	}
	lines, err := rec.Lines(ctx, evs...)
	if err != nil {
		return ctx, fmt.Errorf("audit record: %w", err)
	}
	return WithAudit(ctx, lines), nil
}

// AppendAuditEvents writes the records of evs in a transaction of their
// own: for what spans many transactions (a key rotation, recorded before
// it starts) or none (an export). Nothing when rec or store is nil.
func AppendAuditEvents(ctx context.Context, rec AuditRecorder, store AuditStore, evs ...AuditEvent) error {
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
