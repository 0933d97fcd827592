package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// SubjectExportFormat names the schema of a subject export (docs/pii.md).
const SubjectExportFormat = "eventvault.subject-export.v1"

// MaxExportEvents bounds the events one subject export holds; a subject
// with more is refused (ETOOLARGE) rather than answered in part.
const MaxExportEvents = 100000

// SubjectExport is everything held about one data subject, as GDPR Art. 15
// (access) and Art. 20 (portability) ask, in the schema of docs/pii.md. It
// is the one body that holds the subject's values in clear: it is meant for
// the subject.
type SubjectExport struct {
	Format           string               `json:"format"`
	Tenant           eventvault.TenantID  `json:"tenant"`
	SubjectPseudonym eventvault.Pseudonym `json:"subject_pseudonym"`
	ExportedAt       time.Time            `json:"exported_at"`
	// Erased is true once the subject was erased (their key destroyed, or
	// their latest erasure request completed with outcome "erased") and
	// nothing was held for them since: no value, no event but erased ones.
	// Nothing personal is left.
	Erased          bool              `json:"erased"`
	PersonalData    []ExportedValue   `json:"personal_data"`
	Events          []ExportedEvent   `json:"events"`
	Restriction     *ExportedState    `json:"restriction"`
	LegalHold       *ExportedState    `json:"legal_hold"`
	ErasureRequests []ExportedErasure `json:"erasure_requests"`
	// AuditRecords are the audit log's records about the subject (resource
	// "subject:<pseudonym>"), as canonical lines (docs/audit.md).
	AuditRecords []json.RawMessage `json:"audit_records"`
}

// ExportedValue is one personal value with its history.
type ExportedValue struct {
	Token   string                `json:"token"`
	Stream  eventvault.StreamName `json:"stream"`
	EventID uuid.UUID             `json:"event_id"`
	Pointer string                `json:"pointer"`
	Class   eventvault.PIIClass   `json:"class,omitempty"`
	// Current is the value every read resolves the token to.
	Current json.RawMessage `json:"current"`
	// Versions are every version, the first appended, each later one a
	// rectification.
	Versions []ExportedVersion `json:"versions"`
}

// ExportedVersion is one version of a value.
type ExportedVersion struct {
	Version    int64           `json:"version"`
	Value      json.RawMessage `json:"value"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// ExportedEvent is an event that refers to the subject (of a stream the
// subject owns, or holding one of the subject's tokens): the subject's
// values in clear, other subjects' redacted.
type ExportedEvent struct {
	ID             uuid.UUID             `json:"id"`
	Stream         eventvault.StreamName `json:"stream"`
	Type           string                `json:"type"`
	Position       int64                 `json:"position"`
	GlobalPosition int64                 `json:"global_position"`
	RecordedAt     time.Time             `json:"recorded_at"`
	Data           json.RawMessage       `json:"data,omitempty"`
	Metadata       json.RawMessage       `json:"metadata,omitempty"`
	Erased         bool                  `json:"erased,omitempty"`
}

// ExportedState is a restriction of processing or a legal hold on the
// subject: why, since when and by whom (an actor id).
type ExportedState struct {
	Reason   string    `json:"reason"`
	PlacedAt time.Time `json:"placed_at"`
	PlacedBy string    `json:"placed_by"`
}

// ExportedErasure is the subject's latest erasure request.
type ExportedErasure struct {
	ID          uuid.UUID               `json:"id"`
	State       eventvault.ErasureState `json:"state"`
	Reason      string                  `json:"reason,omitempty"`
	ReceivedAt  time.Time               `json:"received_at"`
	CompletedAt *time.Time              `json:"completed_at,omitempty"`
	// Outcome is the completed request's outcome, from its certificate:
	// eventvault.OutcomeErased or OutcomeNothingHeld; empty before it
	// completes.
	Outcome string `json:"outcome,omitempty"`
}

// Export gathers everything held about the subject (GDPR Art. 15, 20) and
// records the export in the audit log before it is returned.
// Errors: EFORBIDDEN without subject_rights; EINVALID for a bad subject id;
// ETOOLARGE past MaxExportEvents; EUNAVAILABLE when the export cannot be
// recorded.
func (s *Subjects) Export(ctx context.Context, p eventvault.Principal, subject string) (SubjectExport, error) {
	ps, err := s.subject(p, subject)
	if err != nil {
		return SubjectExport{}, err
	}
	x := SubjectExport{Format: SubjectExportFormat, Tenant: p.Tenant, SubjectPseudonym: ps, ExportedAt: s.clock(),
		PersonalData: []ExportedValue{}, Events: []ExportedEvent{}, ErasureRequests: []ExportedErasure{}, AuditRecords: []json.RawMessage{}}
	values, st, err := s.store.SubjectPII(ctx, p.Tenant, ps)
	// erased: the subject's key was destroyed, or their latest erasure
	// request erased them; x.Erased also needs nothing held since.
	var erased bool
	switch eventvault.ErrorCode(err) {
	case "", eventvault.ENOTFOUND:
	case eventvault.EERASED:
		erased = true
	default:
		return SubjectExport{}, fmt.Errorf("export: %w", err)
	}
	if len(values) > 0 {
		if x.PersonalData, err = s.exportValues(ctx, p.Tenant, ps, values, st); err != nil {
			return SubjectExport{}, err
		}
	}
	if x.Events, err = s.exportEvents(ctx, p, ps, values); err != nil {
		return SubjectExport{}, err
	}
	if r, err := s.store.Restriction(ctx, p.Tenant, ps); err == nil {
		x.Restriction = &ExportedState{Reason: r.Reason, PlacedAt: r.PlacedAt.UTC(), PlacedBy: r.PlacedBy}
	} else if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		return SubjectExport{}, fmt.Errorf("export: %w", err)
	}
	if h, err := s.store.Hold(ctx, p.Tenant, ps); err == nil {
		x.LegalHold = &ExportedState{Reason: h.Reason, PlacedAt: h.PlacedAt.UTC(), PlacedBy: h.PlacedBy}
	} else if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		return SubjectExport{}, fmt.Errorf("export: %w", err)
	}
	if r, err := s.store.LatestErasureRequest(ctx, p.Tenant, ps); err == nil {
		er := ExportedErasure{ID: r.ID, State: r.State, Reason: r.Reason, ReceivedAt: r.ReceivedAt}
		if !r.CompletedAt.IsZero() {
			er.CompletedAt = &r.CompletedAt
		}
		if cert, ok := CertificateOf(r); ok {
			er.Outcome = cert.Outcome()
			erased = erased || er.Outcome == eventvault.OutcomeErased
		}
		x.ErasureRequests = append(x.ErasureRequests, er)
	} else if eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		return SubjectExport{}, fmt.Errorf("export: %w", err)
	}
	x.Erased = erased && nothingLeft(x)
	if x.AuditRecords, err = s.auditRecords(ctx, p.Tenant, ps); err != nil {
		return SubjectExport{}, err
	}
	// Recorded before it is answered, or not answered.
	if err := eventvault.AppendAuditEvents(ctx, s.audit, s.store, eventvault.AuditEvent{Tenant: p.Tenant, Actor: p.Actor(), Action: AuditSubjectExported,
		Resource: subjectResource(ps), Outcome: AuditOutcomeOK, Detail: map[string]any{"values": len(x.PersonalData), "events": len(x.Events)}}); err != nil {
		return SubjectExport{}, err
	}
	return x, nil
}

// nothingLeft reports whether x holds no personal value and only erased
// events: what an erasure that completed leaves, unless data was appended
// for the subject since (a new stream may name them: only marked values
// are fenced).
func nothingLeft(x SubjectExport) bool {
	if len(x.PersonalData) > 0 {
		return false
	}
	for _, ev := range x.Events {
		if !ev.Erased {
			return false
		}
	}
	return true
}

func (s *Subjects) exportValues(ctx context.Context, tenant eventvault.TenantID, ps eventvault.Pseudonym, values []eventvault.PIIValue, st eventvault.SubjectKeyState) ([]ExportedValue, error) {
	c, err := s.events.subjects.OpenSubjectCipher(ctx, tenant, ps, st.Key)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var out []ExportedValue
	for _, v := range values {
		if len(out) == 0 || out[len(out)-1].Token != v.Token {
			out = append(out, ExportedValue{Token: v.Token, Stream: v.Stream, EventID: v.EventID, Pointer: v.Pointer, Class: v.Class})
		}
		ev := &out[len(out)-1]
		plain, err := c.OpenValue(evcrypto.PIIRef{Tenant: tenant, Subject: ps, Token: v.Token, Pointer: ev.Pointer, Class: ev.Class, Version: v.Version}, v.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		ev.Versions = append(ev.Versions, ExportedVersion{Version: v.Version, Value: plain, RecordedAt: v.CreatedAt.UTC()})
		ev.Current = plain
	}
	return out, nil
}

// exportEvents reads the streams the subject owns, whole, and the events
// of other streams that hold the subject's tokens, through openEvents with
// a decider that shows the subject's own values and redacts everyone
// else's.
func (s *Subjects) exportEvents(ctx context.Context, p eventvault.Principal, ps eventvault.Pseudonym, values []eventvault.PIIValue) ([]ExportedEvent, error) {
	owned, err := s.store.StreamsOfSubject(ctx, p.Tenant, ps)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	whole := map[eventvault.StreamName]bool{}
	for _, st := range owned {
		whole[st] = true
	}
	wanted := map[uuid.UUID]bool{}
	streams := slices.Clone(owned)
	for _, v := range values {
		wanted[v.EventID] = true
		if !slices.Contains(streams, v.Stream) {
			streams = append(streams, v.Stream)
		}
	}
	slices.Sort(streams)
	decide := func(f piiField) fieldAction {
		if f.subject == ps {
			return fieldDecrypt
		}
		return fieldRedact
	}
	out := []ExportedEvent{}
	for _, stream := range streams {
		for from := int64(0); ; {
			page, err := s.store.ReadStream(ctx, p.Tenant, stream, eventvault.ReadOptions{From: from, Limit: MaxReadLimit})
			if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("export: read %s: %w", stream, err)
			}
			var c *evcrypto.StreamCipher
			if page.ShreddedAt.IsZero() && len(page.Events) > 0 {
				if c, err = s.events.keys.OpenStreamCipher(ctx, p.Tenant, stream, page.Key); err != nil {
					return nil, fmt.Errorf("export: key of stream %s: %w", stream, err)
				}
			}
			var keep []eventvault.StoredEvent
			for _, se := range page.Events {
				if whole[stream] || wanted[se.ID] {
					keep = append(keep, se)
				}
			}
			evs, err := s.events.openEvents(ctx, p, keep, unknownPIIGeneration, func(eventvault.StreamName) *evcrypto.StreamCipher { return c }, decide, false)
			if err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
			for _, ev := range evs {
				out = append(out, ExportedEvent{ID: ev.ID, Stream: ev.Stream, Type: ev.Type, Position: ev.Position, GlobalPosition: ev.GlobalPosition,
					RecordedAt: ev.RecordedAt.UTC(), Data: ev.Data, Metadata: ev.Metadata, Erased: ev.Erased})
			}
			if len(out) > MaxExportEvents {
				return nil, eventvault.Errorf(eventvault.ETOOLARGE, "the subject's events number more than %d, the limit of one export", MaxExportEvents)
			}
			// A page may be short before the end (eventvault.MaxPageBytes):
			// the stream ends at its version.
			if len(page.Events) == 0 || page.Events[len(page.Events)-1].Position >= page.Version {
				break
			}
			from = page.Events[len(page.Events)-1].Position + 1
		}
	}
	return out, nil
}

// auditRecords returns the tenant's audit records about the subject.
func (s *Subjects) auditRecords(ctx context.Context, tenant eventvault.TenantID, ps eventvault.Pseudonym) ([]json.RawMessage, error) {
	size, err := s.store.AuditSize(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("export: audit log: %w", err)
	}
	out := []json.RawMessage{}
	const chunk = 10000
	for from := int64(0); from < size; from += chunk {
		lines, err := s.store.AuditRecords(ctx, tenant, from, min(from+chunk, size))
		if err != nil {
			return nil, fmt.Errorf("export: audit log: %w", err)
		}
		for _, l := range lines {
			if r, err := audit.ParseLine(l); err == nil && r.Resource == subjectResource(ps) {
				out = append(out, json.RawMessage(l))
			}
		}
	}
	return out, nil
}
