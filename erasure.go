package eventvault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// ErrTenantShredded is wrapped by the EERASED of a store asked to give a
// shredded tenant anything new (a key, a stream, an event, a token, a
// policy), and of a stream of such a tenant: the erasure fence of
// tenants. Callers tell it from a shredded stream with errors.Is, so that
// they never advise writing to another stream of the tenant.
var ErrTenantShredded = errors.New("the tenant was shredded")

// TenantShreddedError returns the EERASED error of the erasure fence of
// tenants, wrapping ErrTenantShredded and cause (which may be nil).
func TenantShreddedError(op string, tenant TenantID, cause error) *Error {
	err := ErrTenantShredded
	if cause != nil {
		err = fmt.Errorf("%w: %w", ErrTenantShredded, cause)
	}
	return &Error{Code: EERASED, Op: op, Err: err, Fields: map[string]any{"tenant": string(tenant), "erased": true},
		Message: fmt.Sprintf("tenant %s was shredded: its keys are destroyed, nothing of it can be read or written again, and it never gets a key, stream, token or policy again", tenant)}
}

// MaxSubjectLength bounds a data subject id, in bytes.
const MaxSubjectLength = 200

// ValidateSubject returns EINVALID for an empty or over-long subject id. The
// id itself is personal data: it is never stored, logged or echoed back, only
// its pseudonym.
func ValidateSubject(subject string) error {
	if subject == "" {
		return Errorf(EINVALID, "subject is empty: name the data subject with the id your system uses for them")
	}
	if len(subject) > MaxSubjectLength {
		return Errorf(EINVALID, "subject is %d bytes long; the limit is %d", len(subject), MaxSubjectLength)
	}
	return nil
}

// ValidateNewSubject is ValidateSubject for a subject id an append
// assigns (a stream's owner, a marked value's subject), which erasure
// requests must later name byte for byte: it also refuses white space
// around the id (or nothing but white space: an unset field padded) and
// control characters (NUL, a line break), which make one subject two
// pseudonyms ("sam" and "sam ") or an id no command line can give. The
// subject-rights endpoints take any id ValidateSubject does, so that an id
// stored before this check can still be erased. Errors: EINVALID.
func ValidateNewSubject(subject string) error {
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if strings.TrimSpace(subject) != subject {
		return Errorf(EINVALID, "subject has white space around it (or is nothing but white space): give the data subject's id exactly, as your erasure requests will")
	}
	if strings.IndexFunc(subject, unicode.IsControl) >= 0 {
		return Errorf(EINVALID, "subject holds a control character (such as NUL or a line break): give the data subject's id as printable text")
	}
	return nil
}

// Pseudonym is a data subject's id as EventVault keeps it: a keyed hash
// (HMAC-SHA256) of tenant and subject id. Without the pseudonym key it
// cannot be reversed or confirmed by guessing; it is safe to store and log.
type Pseudonym string

// MaxPseudonymLength bounds a pseudonym as the stores keep it, in bytes. A
// pseudonym is hex HMAC-SHA256 (64 bytes); the bound only keeps junk out.
const MaxPseudonymLength = 128

// ValidatePseudonym returns EINVALID for an empty or over-long pseudonym.
func ValidatePseudonym(p Pseudonym) error {
	if p == "" {
		return Errorf(EINVALID, "the subject pseudonym is empty")
	}
	if len(p) > MaxPseudonymLength {
		return Errorf(EINVALID, "a subject pseudonym is at most %d bytes, not %d", MaxPseudonymLength, len(p))
	}
	return nil
}

// ErasureState is where an erasure request stands.
type ErasureState string

// The states of an erasure request.
const (
	ErasureReceived ErasureState = "received"
	// ErasurePropagating: the keys are destroyed and the tombstone is in
	// the feed; registered consumers that may hold derived data have not
	// all acknowledged it yet (GDPR Art. 19).
	ErasurePropagating ErasureState = "propagating"
	ErasureCompleted   ErasureState = "completed"
	ErasureRejected    ErasureState = "rejected"
)

// ErasureRequest is a data subject's request under GDPR Art. 17, tracked
// from received to completed (or rejected, under a legal hold).
type ErasureRequest struct {
	ID          uuid.UUID
	Tenant      TenantID
	Subject     Pseudonym
	State       ErasureState
	Reason      string // why it was rejected
	RequestedBy string // token id
	ReceivedAt  time.Time
	// CompletedAt is when the request completed (or was rejected): when its
	// keys were destroyed (the certificate's erased_at), or, for one that
	// was propagating, when the last consumer acknowledged or was removed.
	CompletedAt time.Time
	// Certificate is the signed certificate (JSON), once completed.
	Certificate []byte
}

// Validate returns EINVALID for a request no store can keep: an invalid
// tenant or pseudonym, a nil id or an unknown state.
func (r ErasureRequest) Validate() error {
	if err := ValidateTenant(r.Tenant); err != nil {
		return err
	}
	if err := ValidatePseudonym(r.Subject); err != nil {
		return err
	}
	if r.ID == uuid.Nil {
		return Errorf(EINVALID, "an erasure request needs an id")
	}
	switch r.State {
	case ErasureReceived, ErasurePropagating, ErasureCompleted, ErasureRejected:
		return nil
	}
	return Errorf(EINVALID, "erasure request %s: unknown state %q (use received, propagating, completed or rejected)", r.ID, r.State)
}

// ErasureCertificateType is the DSSE payload type of a certificate.
const ErasureCertificateType = "application/vnd.eventvault.erasure-certificate+json"

// ErasureCertificate is the signed statement that an erasure was carried
// out: what was destroyed, when and on whose request. It holds no personal
// data: the subject appears only as its pseudonym.
type ErasureCertificate struct {
	Version          int            `json:"version"` // 1
	RequestID        string         `json:"request_id"`
	Tenant           TenantID       `json:"tenant"`
	SubjectPseudonym Pseudonym      `json:"subject_pseudonym"`
	DestroyedKeys    []DestroyedKey `json:"destroyed_keys"`
	StreamCount      int            `json:"stream_count"`
	ReceivedAt       time.Time      `json:"received_at"`
	ErasedAt         time.Time      `json:"erased_at"`
	ErasedBy         string         `json:"erased_by"` // token id of the requester
	Issuer           string         `json:"issuer"`    // signing key id
	// HeldNothing is true when no data was held under the pseudonym when
	// the request was carried out: nothing was erased. A subject id the
	// tenant never used, and a misspelt one, look the same.
	HeldNothing bool `json:"held_nothing"`
	// TombstonePosition is the global position of the erasure's tombstone
	// in the feed (absent on a server without a feed); ConsumersAcknowledged
	// the registered consumers that acknowledged past it, and when;
	// ConsumersRemoved those an admin removed before they did (issue 14,
	// GDPR Art. 19). The server signs both lists as [] when empty, never
	// null or absent; certificates signed before that may leave them out.
	TombstonePosition     *int64            `json:"tombstone_position,omitempty"`
	ConsumersAcknowledged []ConsumerAck     `json:"consumers_acknowledged"`
	ConsumersRemoved      []ConsumerRemoval `json:"consumers_removed"`
	// Statement says in words what the certificate attests.
	Statement string `json:"statement"`
}

// Erasure outcomes, as the API reports them on a completed request.
const (
	OutcomeErased      = "erased"       // data held under the subject was erased
	OutcomeNothingHeld = "nothing_held" // no data was held under the subject
)

// Outcome is OutcomeNothingHeld for a certificate that erased no stream
// and destroyed no key (certificates issued before held_nothing existed say
// so by their count), else OutcomeErased.
func (c ErasureCertificate) Outcome() string {
	if c.HeldNothing || (c.StreamCount == 0 && len(c.DestroyedKeys) == 0) {
		return OutcomeNothingHeld
	}
	return OutcomeErased
}

// DestroyedKey is one key an erasure destroyed.
type DestroyedKey struct {
	Kind  string    `json:"kind"` // "stream", "subject" or "tenant"
	KeyID uuid.UUID `json:"key_id"`
}

// Shred records the destruction of a stream's key.
type Shred struct {
	Stream     StreamName
	KeyID      uuid.UUID // the key destroyed
	ShreddedAt time.Time
	// Subject owns the stream, or is empty.
	Subject Pseudonym
	// Purged is true when the events' rows were deleted too.
	Purged bool
}

// TenantShred records the destruction of a tenant's KEK.
type TenantShred struct {
	Tenant     TenantID
	KeyIDs     []uuid.UUID // every KEK version destroyed
	ShreddedAt time.Time
}

// Hold is a legal hold on a subject: while it stands, erasure requests for
// the subject are rejected with its reason.
type Hold struct {
	Subject  Pseudonym
	Reason   string
	PlacedAt time.Time
	PlacedBy string // token id
}

// ErasureStore keeps what crypto-shredding and erasure requests need. Like
// every store interface it sees pseudonyms, never subject ids.
type ErasureStore interface {
	// ShredStream destroys the stream's key at time at, so its events can
	// never be decrypted again, and with purge deletes their rows too.
	// The stream is remembered as shredded (the erasure fence): it never
	// gets a new key, and appends to it are refused. Shredding a shredded
	// stream returns the first shred (purging now if asked).
	// Errors: ENOTFOUND for a stream that has never existed.
	ShredStream(ctx context.Context, tenant TenantID, stream StreamName, purge bool, at time.Time) (Shred, error)
	// StreamsOfSubject lists the streams the subject owns, shredded or not,
	// in byte order of their names.
	StreamsOfSubject(ctx context.Context, tenant TenantID, subject Pseudonym) ([]StreamName, error)
	// ShredTenant destroys every KEK version of the tenant: nothing of it
	// can be read again, and it never gets a new KEK. Idempotent.
	// Errors: ENOTFOUND for a tenant the store has never held (so that a
	// mistyped id fences nothing).
	ShredTenant(ctx context.Context, tenant TenantID, at time.Time) (TenantShred, error)
	StreamOwners

	// PutHold places or replaces a legal hold.
	PutHold(ctx context.Context, tenant TenantID, h Hold) error
	// DeleteHold lifts a hold. Errors: ENOTFOUND if there is none.
	DeleteHold(ctx context.Context, tenant TenantID, subject Pseudonym) error
	// Hold returns the subject's hold. Errors: ENOTFOUND if there is none.
	Hold(ctx context.Context, tenant TenantID, subject Pseudonym) (Hold, error)

	// CreateErasureRequest stores a new request. Ids are scoped to the
	// tenant. Errors: ECONFLICT if the id exists.
	CreateErasureRequest(ctx context.Context, r ErasureRequest) error
	// UpdateErasureRequest replaces the state, reason, completion time and
	// certificate of a stored request. Errors: ENOTFOUND.
	UpdateErasureRequest(ctx context.Context, r ErasureRequest) error
	// ErasureRequest returns a request by id. Errors: ENOTFOUND.
	ErasureRequest(ctx context.Context, tenant TenantID, id uuid.UUID) (ErasureRequest, error)
	// LatestErasureRequest returns the subject's most recent request.
	// Errors: ENOTFOUND if it has none.
	LatestErasureRequest(ctx context.Context, tenant TenantID, subject Pseudonym) (ErasureRequest, error)
}

// StreamOwners tells whom a stream belongs to.
type StreamOwners interface {
	// StreamOwner returns the pseudonym of the stream's owner, or an empty
	// pseudonym if it has none. A shredded (or purged) stream keeps its
	// owner. Errors: ENOTFOUND for a stream that has never existed;
	// EINVALID for a malformed tenant or stream name.
	StreamOwner(ctx context.Context, tenant TenantID, stream StreamName) (Pseudonym, error)
}
