package eventvault

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Personal data kept apart (docs/pii.md): an append marks values of an
// event's data as personal, each with the data subject it belongs to; the
// engine replaces each by a token (random, never derived from the value)
// and stores the value apart, encrypted under the subject's key, a level-2
// data key wrapped by the tenant KEK like a stream key. The types below are
// what the stores see of it: pseudonyms, tokens, JSON Pointers and
// ciphertext, never a value or an unwrapped key.

// PIIClass names the kind of a personal value, so that policies can decide
// per class and masking knows its rule.
type PIIClass string

// The field classes an append may name (docs/pii.md gives each its masking
// rule). The empty class is a value of no stated kind.
const (
	PIIEmail    PIIClass = "email"
	PIIPhone    PIIClass = "phone"
	PIIAddress  PIIClass = "address"
	PIIFreeText PIIClass = "free_text"
)

// ErrSubjectErased is wrapped by the EERASED of a store asked to give an
// erased data subject a key or a value: the erasure fence of subjects.
var ErrSubjectErased = errors.New("the data subject was erased")

// SubjectErasedError returns the EERASED error of the erasure fence of
// subjects. It names no subject.
func SubjectErasedError(op string) *Error {
	return &Error{Code: EERASED, Op: op, Err: ErrSubjectErased,
		Message: "the data subject was erased: their key was destroyed, and they never get a new one under the same pseudonym"}
}

// ValidPIIClass reports whether c is a class an append may name ("" too).
func ValidPIIClass(c PIIClass) bool {
	switch c {
	case "", PIIEmail, PIIPhone, PIIAddress, PIIFreeText:
		return true
	}
	return false
}

// Limits of marking. MaxPIIPerEvent is the most values one event may mark
// (the 400 of a larger map names the limit); MaxPIIPointerLength bounds one
// JSON Pointer, in bytes; MaxPIIBytesPerEvent bounds the values one event
// marks, together, in bytes of their JSON: personal values are kept apart
// and fetched beside a page, so that a page of events marking values costs
// at most a page's events times this beside its own bytes.
const (
	MaxPIIPerEvent      = 32
	MaxPIIPointerLength = 512
	MaxPIIBytesPerEvent = 64 << 10
)

// PIIMark marks one value of an event's data as personal and names whose
// it is. The subject id is in clear only on its way in: the vault keeps its
// pseudonym.
type PIIMark struct {
	// Pointer (RFC 6901) names the value in the event's data.
	Pointer string
	Subject string
	Class   PIIClass
}

// PIITokenPrefix starts every token: "evpii_" and 26 characters of base32
// (128 random bits).
const PIITokenPrefix = "evpii_"

// PIIValue is one version of one personal value as stored: sealed under the
// subject key KeyID, with associated data binding tenant, subject, token,
// pointer, class and version (crypto.SubjectCipher). Version 1 is the value
// appended; each rectification (GDPR Art. 16) adds the next.
type PIIValue struct {
	Token   string
	Subject Pseudonym
	// Stream and EventID are where the token was appended; Pointer (RFC
	// 6901) is where in the event's data.
	Stream     StreamName
	EventID    uuid.UUID
	Pointer    string
	Class      PIIClass
	Version    int64
	KeyID      uuid.UUID
	Ciphertext []byte
	CreatedAt  time.Time
}

// SubjectKeyState is a subject's key as a read sees it, with its
// restriction (GDPR Art. 18).
type SubjectKeyState struct {
	Key WrappedKey
	// Restricted is set while a restriction of processing stands.
	Restricted bool
	// Generation moves on with every rectification of the subject's
	// values (0 for a new key): a reader that cached a value's ciphertext
	// at one generation refetches it at another. It only grows, and on
	// PostgreSQL never takes a value twice, also on two histories of one
	// database (migration 0013).
	Generation int64
}

// PIIPage is what one read of tokens returns: the current version of each
// token's value that is still held, and the keys of their subjects. A token
// that is absent is erased (its subject's values were destroyed).
type PIIPage struct {
	Values map[string]PIIValue
	Keys   map[Pseudonym]SubjectKeyState
}

// Restriction is a restriction of processing (GDPR Art. 18) on a subject:
// while it stands, the subject's values are redacted for every principal
// without an explicit grant.
type Restriction struct {
	Subject  Pseudonym
	Reason   string
	PlacedAt time.Time
	PlacedBy string // actor
}

// SubjectKeyRow is a subject's wrapped key with the subject it belongs to.
type SubjectKeyRow struct {
	Subject Pseudonym
	Key     WrappedKey
}

// CheckSubjectRewrap returns EINVALID unless next re-wraps old under a
// newer KEK version.
func CheckSubjectRewrap(old, next WrappedKey) error {
	if err := CheckRewrap(old, next); err != nil {
		return err
	}
	if next.KEKVersion <= old.KEKVersion {
		return Errorf(EINVALID, "a re-wrap of subject key %s moves it to a newer KEK version, not from %d to %d", old.ID, old.KEKVersion, next.KEKVersion)
	}
	return nil
}

// SubjectErasure is what EraseSubjectPII destroyed.
type SubjectErasure struct {
	// KeyID is the subject key destroyed, by this call or (Before) an
	// earlier one; uuid.Nil if the subject had none.
	KeyID uuid.UUID
	// Values is how many stored value versions were deleted.
	Values int
	// Before is set when an earlier erasure destroyed KeyID and this one
	// destroyed nothing (an erasure request resumed after its first run
	// destroyed the key, or a second request).
	Before bool
}

// PIIStore keeps subject keys and personal values apart from events. Like
// every store interface it sees pseudonyms, tokens and ciphertext only.
//
// It enforces the erasure fence of subjects: a subject whose key was
// destroyed never gets a key again (EERASED), so old ciphertext never meets
// a new key under the same pseudonym. A subject erased before it ever had
// a key is not fenced: there is no ciphertext of it to protect.
type PIIStore interface {
	// SubjectKey returns the subject's wrapped key.
	// Errors: ENOTFOUND if the subject has none yet; EERASED if it was
	// erased; EINVALID for a malformed tenant or pseudonym.
	SubjectKey(ctx context.Context, tenant TenantID, subject Pseudonym) (WrappedKey, error)
	// CreateSubjectKey stores k as the subject's key unless one exists,
	// and returns the one stored (k, or the one that won a race).
	// Errors: EERASED if the subject or the tenant was erased (nothing is
	// stored); EINVALID for a malformed tenant or pseudonym or an empty key.
	CreateSubjectKey(ctx context.Context, tenant TenantID, subject Pseudonym, k WrappedKey) (WrappedKey, error)
	// SubjectStates returns, in one round trip, the key, restriction and
	// generation of each subject that has a key row; an erased subject's
	// state has a zero Key. Subjects without a key row are left out. It
	// also returns the tenant's PII generation they were read at: a value
	// that moves on, on every node, with any change to a key row that
	// exists (an erasure, a re-wrap, a rectification) or to a restriction,
	// but not with a new subject's key. The states still hold for a page
	// whose PIIGeneration (StreamPage, AllPage) is the same; a subject they
	// leave out is to be asked for again.
	SubjectStates(ctx context.Context, tenant TenantID, subjects []Pseudonym) (map[Pseudonym]SubjectKeyState, int64, error)
	// PIIValues returns, in one round trip, the current version of each
	// token's value that is held and the key and restriction of every
	// subject they belong to. Unknown tokens are left out.
	PIIValues(ctx context.Context, tenant TenantID, tokens []string) (PIIPage, error)
	// SubjectPII returns every version of every value of the subject, by
	// token then version, with the subject's key and restriction.
	// Errors: EERASED if the subject was erased; ENOTFOUND if it has no key.
	SubjectPII(ctx context.Context, tenant TenantID, subject Pseudonym) ([]PIIValue, SubjectKeyState, error)
	// RectifyPII stores v as the next version of its token's value, and
	// moves the subject's generation on. v's Version must be the token's
	// newest plus one.
	// Errors: ENOTFOUND for a token the tenant does not hold (never, or
	// erased) or of another subject; ECONFLICT if v.Version is not the
	// next (a concurrent rectification won); EERASED if the subject key
	// is not v.KeyID any more.
	RectifyPII(ctx context.Context, tenant TenantID, v PIIValue) error
	// PutRestriction places or replaces the subject's restriction.
	PutRestriction(ctx context.Context, tenant TenantID, r Restriction) error
	// DeleteRestriction lifts it. Errors: ENOTFOUND if there is none.
	DeleteRestriction(ctx context.Context, tenant TenantID, subject Pseudonym) error
	// Restriction returns it. Errors: ENOTFOUND if there is none.
	Restriction(ctx context.Context, tenant TenantID, subject Pseudonym) (Restriction, error)
	// SubjectKeysBefore returns, in byte order of their pseudonyms, up to
	// limit of the tenant's live subject keys wrapped under a KEK version
	// older than kekVersion, of subjects after after ("" for the first
	// page): what a KEK rotation re-wraps. Errors: EINVALID for a
	// malformed tenant or a limit that is not positive.
	SubjectKeysBefore(ctx context.Context, tenant TenantID, kekVersion uint32, after Pseudonym, limit int) ([]SubjectKeyRow, error)
	// RewrapSubjectKey replaces a subject's wrapped key, as a KEK rotation
	// does, if the stored row still equals old (SameKeyRow); next keeps
	// old's id and version, under a newer KEK version.
	// Errors: ECONFLICT if the row changed since old was read; ENOTFOUND
	// if the subject has no key; EERASED if it was erased; EINVALID if next
	// changes the id or version or is not under a newer KEK version.
	RewrapSubjectKey(ctx context.Context, tenant TenantID, subject Pseudonym, old, next WrappedKey) error
	// EraseSubjectPII destroys the subject's key and deletes every version
	// of every value of the subject, and fences the pseudonym (it never
	// gets a key again). Idempotent: erasing again destroys nothing and
	// returns the key the first erasure destroyed, with Before set. A
	// subject that has no key (never had one) has nothing to destroy and
	// is not fenced: it writes nothing and returns a zero SubjectErasure,
	// so that an id under which nothing was held can take data later.
	// The audit records ctx carries (WithAudit) are written with the
	// erasure only if this call destroyed a key.
	EraseSubjectPII(ctx context.Context, tenant TenantID, subject Pseudonym, at time.Time) (SubjectErasure, error)
}

// ValidatePIIValues returns EINVALID for values no store can keep: each
// needs a token, a pseudonym, a pointer, a version >= 1, a key id and a
// ciphertext.
func ValidatePIIValues(tenant TenantID, values []PIIValue) error {
	if err := ValidateTenant(tenant); err != nil {
		return err
	}
	for _, v := range values {
		if err := ValidatePseudonym(v.Subject); err != nil {
			return err
		}
		if len(v.Token) <= len(PIITokenPrefix) || len(v.Token) > 64 || v.Version < 1 || v.KeyID == uuid.Nil || len(v.Ciphertext) == 0 || len(v.Pointer) > MaxPIIPointerLength {
			return Errorf(EINVALID, "a personal value needs a token, a version from 1, a subject key id, a ciphertext and a pointer of at most %d bytes", MaxPIIPointerLength)
		}
	}
	return nil
}
