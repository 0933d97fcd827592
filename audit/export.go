package audit

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/policies"
)

// ExportRequest selects what ExportBundle writes. From and To are record
// indexes, [From, To); To 0 means up to the latest checkpoint. Resource,
// when set, keeps only the records about that resource
// ("subject:<pseudonym hex>", "stream:order-7"), each with its inclusion
// proof. OldSize adds a consistency proof from the auditor's checkpoint of
// that size.
type ExportRequest struct {
	From, To int64
	Resource string
	OldSize  int64
}

// ValidateResource returns EINVALID unless r is a resource as records name
// them: a kind, a colon, then a value of that kind, at most 200 bytes in
// all ("subject:9f2c…", "stream:order-7", "token:tok_…", "policy:app",
// "consumer:emails"). A subject is named only by its pseudonym (64
// lower-case hex digits, crypto/pseudonym): anything else there may be a
// subject id, which the export's own record and its header would keep for
// ever. The kinds are closed for the same reason: a value of an unknown
// kind could hold anything. No message echoes the value.
func ValidateResource(r string) error {
	kind, value, ok := strings.Cut(r, ":")
	if !ok || kind == "" || value == "" || len(r) > 200 {
		return eventvault.Errorf(eventvault.EINVALID, "resource must be <kind>:<value> as records name it, such as subject:<pseudonym hex> or stream:order-7, at most 200 bytes")
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c <= ' ' || c > '~' {
			return eventvault.Errorf(eventvault.EINVALID, "resource holds a byte that no resource name has: printable ASCII only")
		}
	}
	var err error
	switch kind {
	case "subject":
		if !pseudonym.Valid(value) {
			return eventvault.Errorf(eventvault.EINVALID, "resource subject:<value> takes the subject's pseudonym (%d lower-case hex digits), never the subject id: "+
				"get it with POST /v1/audit/pseudonym {\"subject\": \"<id>\"} (the id in the body; its answer's resource is the filter to use)", pseudonym.Length)
		}
	case "stream":
		err = eventvault.ValidateStream(eventvault.StreamName(value))
	case "token":
		if !validTokenID(value) {
			err = eventvault.Errorf(eventvault.EINVALID, "a token id is tok_ and 16 lower-case hex digits, as GET /v1/tokens lists them")
		}
	case "policy":
		err = policies.ValidateName(value)
	case "consumer":
		err = eventvault.ValidateConsumerName(value)
	default:
		return eventvault.Errorf(eventvault.EINVALID, "resource kind is not one records name: use subject, stream, token, policy or consumer (subject:<pseudonym hex>, stream:order-7)")
	}
	if err != nil {
		return eventvault.Errorf(eventvault.EINVALID, "resource %s:<value>: %s", kind, eventvault.ErrorMessage(err))
	}
	return nil
}

// validTokenID reports whether id is a token id as auth issues them.
func validTokenID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "tok_")
	if !ok || len(hexPart) != 16 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxExportRecords bounds one export; page through a longer log with From
// and To.
const MaxExportRecords = 1_000_000

// ExportBundle writes the bundle of tenant's log against its latest
// checkpoint. Errors: ENOTFOUND when the log has no checkpoint yet;
// EINVALID for a range outside it or an OldSize above it.
func ExportBundle(ctx context.Context, w io.Writer, store eventvault.AuditStore, tenant eventvault.TenantID, req ExportRequest) error {
	size, note, err := store.LatestAuditCheckpoint(ctx, tenant)
	if err != nil {
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			return eventvault.Errorf(eventvault.ENOTFOUND, "the audit log has no signed checkpoint yet: checkpoints are published every few seconds (-audit-checkpoint-interval); try again shortly")
		}
		return err
	}
	to := req.To
	if to == 0 {
		to = size
	}
	switch {
	case req.From < 0 || to < req.From:
		return eventvault.Errorf(eventvault.EINVALID, "from (%d) and to (%d, exclusive; absent or 0: the latest checkpoint's size, %d) must give a range of record indexes with from < to", req.From, to, size)
	case to == req.From:
		return eventvault.Errorf(eventvault.EINVALID, "from and to give no records (to is exclusive): ask for at least one, to > from")
	case to > size:
		return eventvault.Errorf(eventvault.EINVALID, "to is %d, past the latest checkpoint's %d records: export up to %d, or wait for the next checkpoint", to, size, size)
	case to-req.From > MaxExportRecords:
		return eventvault.Errorf(eventvault.ETOOLARGE, "%d records asked; one export holds at most %d: page with from and to", to-req.From, MaxExportRecords)
	case req.OldSize < 0 || req.OldSize > size:
		return eventvault.Errorf(eventvault.EINVALID, "old_size %d is not a size of this log (0 to %d)", req.OldSize, size)
	}
	lines, err := store.AuditRecords(ctx, tenant, req.From, to)
	if err != nil {
		return err
	}
	e := Export{Checkpoint: note, Hashes: Hashes(ctx, store, tenant), First: req.From, Count: int64(len(lines)), OldSize: req.OldSize}
	if req.Resource != "" {
		if err := ValidateResource(req.Resource); err != nil {
			return err
		}
		e.Filter = "resource=" + req.Resource
		var kept [][]byte
		first := int64(0)
		for i, line := range lines {
			r, err := ParseLine(line)
			if err != nil {
				return fmt.Errorf("record %d: %w", req.From+int64(i), err)
			}
			if r.Resource == req.Resource || strings.HasPrefix(r.Resource, req.Resource+"#") {
				if len(kept) == 0 {
					first = r.Index
				}
				kept = append(kept, line)
			}
		}
		lines, e.First, e.Count = kept, first, int64(len(kept))
	}
	e.Records = func(yield func([]byte, error) bool) {
		for _, l := range lines {
			if !yield(l, nil) {
				return
			}
		}
	}
	return WriteBundle(w, e)
}
