package eventvault

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
)

// TombstoneStream is the reserved stream every shred and every erasure
// writes its tombstone to, in the tenant's global order. Its category,
// TombstoneCategory, is reserved: no client appends to it or shreds it.
const (
	TombstoneCategory                = "eventvault"
	TombstoneStream       StreamName = TombstoneCategory + "-tombstones"
	TombstoneType                    = "eventvault.Tombstone"
	TombstoneKindShred               = "shred"
	TombstoneKindErasure             = "erasure"
	MaxFilterEntries                 = 50
	MaxConsumerNameLength            = 100
)

// Tombstone is the data of a tombstone event: what was erased, never a
// personal value. A consumer that derived rows from the named streams (or
// from events of the named subject pseudonym) drops or anonymises them,
// then acknowledges past the tombstone's global position (GDPR Art. 17(2)
// and 19: recipients are told of an erasure).
type Tombstone struct {
	Kind string `json:"kind"` // TombstoneKindShred or TombstoneKindErasure
	// Streams are the streams whose keys were destroyed.
	Streams []StreamName `json:"streams"`
	// SubjectPseudonym names the erased subject (erasures only).
	SubjectPseudonym Pseudonym `json:"subject_pseudonym,omitempty"`
	// CertificateID is the erasure request id the certificate carries
	// (erasures), or the id of the destroyed stream key (a shred).
	CertificateID string    `json:"certificate_id"`
	At            time.Time `json:"at"`
	// PersonalValues is set when the erasure destroyed the subject's key
	// of personal values kept apart (PII): those may appear in events of
	// any stream, so every consumer, whatever its filter, drops what it
	// derived from values of this pseudonym.
	PersonalValues bool `json:"personal_values,omitempty"`
}

// CoversTombstone reports whether a consumer with this filter may hold
// data the tombstone erased: one of its streams passes the filter, or it
// erased personal values, which may sit in any stream.
func (f FeedFilter) CoversTombstone(ts Tombstone) bool {
	return ts.PersonalValues || f.CoversStreams(ts.Streams)
}

// FeedFilter selects events of a feed: by stream category and by event
// type; an empty list selects every one. Tombstones pass the type filter
// always, and the category filter when one of their streams passes it.
type FeedFilter struct {
	Categories []string `json:"categories"`
	Types      []string `json:"types"`
}

var categoryRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// Validate returns EINVALID for a filter with too many entries, a
// category that is not one (letters, digits, '_', starting with a letter)
// or an invalid event type.
func (f FeedFilter) Validate() error { return f.validate("") }

// ValidateAt is Validate for a filter given in a request body at pointer
// (a JSON Pointer such as "/filter"): its error names the entry by its
// pointer (Fields["pointer"], as FieldErrorf), such as
// "/filter/categories/2".
func (f FeedFilter) ValidateAt(pointer string) error { return f.validate(pointer) }

func (f FeedFilter) validate(pointer string) error {
	fail := func(at, format string, args ...any) error {
		if pointer == "" {
			return Errorf(EINVALID, format, args...)
		}
		return FieldErrorf(pointer+at, format, args...)
	}
	if len(f.Categories) > MaxFilterEntries {
		return fail("/categories", "a filter takes at most %d categories and %d types", MaxFilterEntries, MaxFilterEntries)
	}
	if len(f.Types) > MaxFilterEntries {
		return fail("/types", "a filter takes at most %d categories and %d types", MaxFilterEntries, MaxFilterEntries)
	}
	for i, c := range f.Categories {
		if len(c) > MaxStreamNameLength || !categoryRE.MatchString(c) {
			return fail(fmt.Sprintf("/categories/%d", i), "categories[%d] is not a stream category: letters, digits and '_', starting with a letter (the part of a stream name before its first '-')", i)
		}
	}
	for i, t := range f.Types {
		if err := ValidateEventType(t); err != nil {
			return fail(fmt.Sprintf("/types/%d", i), "types[%d]: %s", i, ErrorMessage(err))
		}
	}
	return nil
}

// MatchesStream reports whether the category filter selects stream.
func (f FeedFilter) MatchesStream(s StreamName) bool {
	return len(f.Categories) == 0 || slices.Contains(f.Categories, s.Category())
}

// MatchesEnvelope reports whether an event of stream and type passes the
// filter on its envelope alone. A tombstone passes here; whether its
// streams pass is decided once it is opened (CoversTombstone).
func (f FeedFilter) MatchesEnvelope(s StreamName, typ string) bool {
	if s == TombstoneStream {
		return true
	}
	return f.MatchesStream(s) && (len(f.Types) == 0 || slices.Contains(f.Types, typ))
}

// CoversStreams reports whether the filter selects any of streams: a
// consumer with such a filter may hold data derived from them.
func (f FeedFilter) CoversStreams(streams []StreamName) bool {
	for _, s := range streams {
		if f.MatchesStream(s) {
			return true
		}
	}
	return false
}

// Consumer is a durable subscription: a named feed filter whose
// checkpoint, the global position it has acknowledged up to (exclusive),
// is kept on the server.
type Consumer struct {
	Tenant TenantID
	Name   string
	Filter FeedFilter
	// Checkpoint is the next global position the consumer has not
	// acknowledged: every event below it is acknowledged.
	Checkpoint int64
	CreatedAt  time.Time
	CreatedBy  string // actor
	// AckedAt is when the checkpoint last moved; zero before.
	AckedAt time.Time
}

var consumerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateConsumerName returns EINVALID unless name is 1 to
// MaxConsumerNameLength letters, digits, '_', '.', '-', starting with a
// letter or digit.
func ValidateConsumerName(name string) error {
	if len(name) > MaxConsumerNameLength || !consumerNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid consumer name: use 1 to %d letters, digits, '_', '.' and '-', starting with a letter or digit (it names a projection, never a person)", MaxConsumerNameLength)
	}
	return nil
}

// Propagation tracks an erasure request's tombstone through the feed: the
// request stays ErasurePropagating until every consumer whose filter
// covers the erased streams has acknowledged past TombstonePosition.
type Propagation struct {
	Tenant    TenantID
	RequestID uuid.UUID
	// TombstonePosition is the global position of the request's tombstone.
	TombstonePosition int64
	Streams           []StreamName
	// Pending names the consumers that must still acknowledge.
	Pending []string
	Acks    []ConsumerAck
	Removed []ConsumerRemoval
	// Certificate is the erasure's certificate (JSON, unsigned) as it
	// stood when the tombstone was written; it is completed and signed
	// once nothing is pending.
	Certificate []byte
	// Done is set once nothing is pending and the certificate is issued.
	Done      bool
	CreatedAt time.Time
}

// ConsumerAck is a consumer's acknowledgement past a tombstone.
type ConsumerAck struct {
	Consumer       string    `json:"consumer"`
	Checkpoint     int64     `json:"checkpoint"`
	AcknowledgedAt time.Time `json:"acknowledged_at"`
}

// ConsumerRemoval is an admin's removal of a consumer that had not
// acknowledged a tombstone: stated in the certificate.
type ConsumerRemoval struct {
	Consumer   string    `json:"consumer"`
	Checkpoint int64     `json:"checkpoint"`
	RemovedAt  time.Time `json:"removed_at"`
	RemovedBy  string    `json:"removed_by"`
}

// FeedStore is what the feed reads: read-all, and where the tenant's log
// ends.
type FeedStore interface {
	EventStore
	// NextGlobalPosition returns the global position the tenant's next
	// event will take; every event below it is committed. 0 for a tenant
	// without events. Errors: EINVALID for a malformed tenant.
	NextGlobalPosition(ctx context.Context, tenant TenantID) (int64, error)
}

// SubscriptionStore keeps durable consumers and the propagation of
// erasures to them, per tenant.
type SubscriptionStore interface {
	// PutConsumer stores c, or replaces the filter of the consumer of that
	// name (its checkpoint and creation stay), and returns what is stored
	// with created true for a new one. Errors: EINVALID for a malformed
	// tenant or name.
	PutConsumer(ctx context.Context, c Consumer) (stored Consumer, created bool, err error)
	// Consumer returns one consumer. Errors: ENOTFOUND.
	Consumer(ctx context.Context, tenant TenantID, name string) (Consumer, error)
	// Consumers returns the tenant's consumers by name.
	Consumers(ctx context.Context, tenant TenantID) ([]Consumer, error)
	// AckConsumer moves the consumer's checkpoint to checkpoint at time
	// at, if that is forward (a stale acknowledgement changes nothing),
	// and returns the consumer as stored. Errors: ENOTFOUND.
	AckConsumer(ctx context.Context, tenant TenantID, name string, checkpoint int64, at time.Time) (Consumer, error)
	// DeleteConsumer removes a consumer. Errors: ENOTFOUND.
	DeleteConsumer(ctx context.Context, tenant TenantID, name string) error

	// CreatePropagation stores p unless its request has one, and returns
	// the one stored.
	CreatePropagation(ctx context.Context, p Propagation) (Propagation, error)
	// Propagation returns a request's propagation. Errors: ENOTFOUND.
	Propagation(ctx context.Context, tenant TenantID, request uuid.UUID) (Propagation, error)
	// OpenPropagations returns the tenant's propagations not Done.
	OpenPropagations(ctx context.Context, tenant TenantID) ([]Propagation, error)
	// UpdatePropagation applies change to the request's propagation and
	// stores the result, atomically with respect to other updates of it.
	// Errors: ENOTFOUND; change's error.
	UpdatePropagation(ctx context.Context, tenant TenantID, request uuid.UUID, change func(*Propagation) error) (Propagation, error)
}
