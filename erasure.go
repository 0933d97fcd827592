package eventvault

import (
	"time"

	"github.com/google/uuid"
)

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

// Pseudonym is a data subject's id as EventVault keeps it: a keyed hash
// (HMAC-SHA256) of tenant and subject id. Without the pseudonym key it
// cannot be reversed or confirmed by guessing; it is safe to store and log.
type Pseudonym string

// ErasureState is where an erasure request stands.
type ErasureState string

// The states of an erasure request.
const (
	ErasureReceived  ErasureState = "received"
	ErasureCompleted ErasureState = "completed"
	ErasureRejected  ErasureState = "rejected"
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
	CompletedAt time.Time
	// Certificate is the signed certificate (JSON), once completed.
	Certificate []byte
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
}

// DestroyedKey is one key an erasure destroyed.
type DestroyedKey struct {
	Kind  string    `json:"kind"` // "stream", "subject" or "tenant"
	KeyID uuid.UUID `json:"key_id"`
}
