// Package eventvault holds the words of EventVault's design (tenant, stream,
// event, expected version, principal, the errors) and the interfaces between
// its parts. It imports nothing of EventVault's own: the stores, the key
// hierarchy (crypto), the engine, the HTTP API and the command all depend on
// it, never the other way round.
//
// The store interfaces here carry only ciphertext and wrapped keys. Plaintext
// and unwrapped keys never cross them.
package eventvault

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
)

// TenantID names an isolated customer of the vault. Nothing crosses tenants.
type TenantID string

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateTenant returns EINVALID unless t is 1 to 63 characters of lower-case
// letters, digits, '_' and '-', starting with a letter or digit.
func ValidateTenant(t TenantID) error {
	if !tenantRE.MatchString(string(t)) {
		return Errorf(EINVALID, "invalid tenant: use 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
	}
	return nil
}

// MaxStreamNameLength bounds a stream name, in bytes.
const MaxStreamNameLength = 200

// StreamName names an ordered sequence of events, as `category-id`
// (`order-42`). Names are stored in clear: they must never hold personal data.
type StreamName string

var streamRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[A-Za-z0-9_.:-]+$`)

// ValidateStream returns EINVALID unless s has the form category-id: a
// category of letters, digits and '_' starting with a letter, a '-', and an id
// of letters, digits and '_', '.', ':', '-'; at most MaxStreamNameLength bytes.
func ValidateStream(s StreamName) error {
	if len(s) > MaxStreamNameLength {
		return Errorf(EINVALID, "stream name is %d bytes long; the limit is %d", len(s), MaxStreamNameLength)
	}
	if !streamRE.MatchString(string(s)) {
		return Errorf(EINVALID, "invalid stream name: use category-id, such as order-42 (category: letters, digits, '_'; id: letters, digits, '_', '.', ':', '-')")
	}
	return nil
}

// Category returns the part of the stream name before the first '-'.
func (s StreamName) Category() string {
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			return string(s[:i])
		}
	}
	return string(s)
}

// MaxEventTypeLength bounds an event type, in bytes.
const MaxEventTypeLength = 200

var typeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*$`)

// ValidateEventType returns EINVALID unless t is a non-empty name of letters,
// digits, '_', '.', ':' and '-' starting with a letter. Types are stored in
// clear (they stay after a shred), so they must never hold personal data.
func ValidateEventType(t string) error {
	if t == "" {
		return Errorf(EINVALID, "event type is empty: every event needs a type, such as OrderPlaced")
	}
	if len(t) > MaxEventTypeLength {
		return Errorf(EINVALID, "event type is %d bytes long; the limit is %d", len(t), MaxEventTypeLength)
	}
	if !typeRE.MatchString(t) {
		return Errorf(EINVALID, "invalid event type: use letters, digits, '_', '.', ':', '-', starting with a letter")
	}
	return nil
}

// Truncate returns s cut to its first n bytes, marked with "…" when cut, so
// that a message quoting what a client sent stays short.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ExpectedVersion is the optimistic concurrency condition of an append.
type ExpectedVersion struct {
	kind     expectKind
	position int64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExact
)

// The expected versions without a position.
var (
	// ExpectAny appends whatever the stream's state.
	ExpectAny = ExpectedVersion{kind: expectAny}
	// ExpectNoStream appends only if the stream has no events.
	ExpectNoStream = ExpectedVersion{kind: expectNoStream}
	// ExpectExists appends only if the stream has at least one event.
	ExpectExists = ExpectedVersion{kind: expectExists}
)

// ExpectPosition appends only if the stream's last event is at position p.
func ExpectPosition(p int64) ExpectedVersion {
	return ExpectedVersion{kind: expectExact, position: p}
}

// NoStream is the version of a stream without events.
const NoStream int64 = -1

// Position returns the exact position expected and true, or 0 and false for
// any, no_stream and exists.
func (v ExpectedVersion) Position() (int64, bool) {
	return v.position, v.kind == expectExact
}

// Check reports whether a stream at version current (NoStream if it has no
// events) satisfies v.
func (v ExpectedVersion) Check(current int64) bool {
	switch v.kind {
	case expectAny:
		return true
	case expectNoStream:
		return current == NoStream
	case expectExists:
		return current != NoStream
	default:
		return current == v.position
	}
}

// String returns the wire form: any, no_stream, exists or the position.
func (v ExpectedVersion) String() string {
	switch v.kind {
	case expectAny:
		return "any"
	case expectNoStream:
		return "no_stream"
	case expectExists:
		return "exists"
	default:
		return fmt.Sprint(v.position)
	}
}

// JSON is v as an append's body gives it: its position (an int64) for an
// exact version, else the word (String).
func (v ExpectedVersion) JSON() any {
	if v.kind == expectExact {
		return v.position
	}
	return v.String()
}

// ConflictError returns the ECONFLICT error for an append whose expected
// version does not hold. It speaks the API's words: Fields["actual_version"]
// is the stream's last position (an int64), or the string "no_stream" for a
// stream without events (actual is NoStream), and the message's advice is
// always an expected_version the API takes. op names the function that
// builds it.
func ConflictError(op string, stream StreamName, expected ExpectedVersion, actual int64) *Error {
	e := &Error{Code: ECONFLICT, Op: op, Err: ErrVersionConflict,
		Fields: map[string]any{"stream": string(stream), "expected_version": expected.JSON(), "actual_version": actual}}
	if actual == NoStream {
		e.Fields["actual_version"] = ExpectNoStream.String()
		e.Message = fmt.Sprintf("stream %s has no events; the append expected %s. Retry with expected_version \"no_stream\" (or \"any\")", stream, expected)
		return e
	}
	e.Message = fmt.Sprintf("stream %s is at version %d; the append expected %s. Read the stream, then retry with expected_version %d", stream, actual, expected, actual)
	return e
}

// Event is a decrypted event as the API shows it.
type Event struct {
	ID             uuid.UUID
	Stream         StreamName
	Type           string
	Data           []byte // JSON
	Metadata       []byte // JSON, or nil
	Position       int64
	GlobalPosition int64
	RecordedAt     time.Time
	// Erased is true when the event's key was shredded: the envelope
	// remains, so global order holds, but Data and Metadata are gone.
	Erased bool
	// PII says whose each personal value that Data shows to this reader
	// in clear or masked is, per subject: so that a consumer that copies
	// a value can find it again when an erasure's tombstone names the
	// subject's pseudonym (GDPR Art. 17, 19). Values shown redacted or
	// erased are not listed (their place shows the token, or nothing).
	// Subjects in the order of the event's manifest, pointers by offset;
	// nil when Data shows none. Readers share it: never modify it.
	PII []SubjectValues
	// PIIJSON is PII as AppendPIIMember renders it, when the reader had it
	// rendered already (nil otherwise: render PII). Readers share it.
	PIIJSON []byte
}

// SubjectValues names the personal values of one data subject that an
// event's data shows: the subject's pseudonym and the JSON Pointer (RFC
// 6901) of each value's place in the data. It holds no value.
type SubjectValues struct {
	Subject  Pseudonym
	Pointers []string
}

// AppendPIIMember appends the JSON of an event's pii member (Event.PII):
// {"<subject pseudonym>": ["<JSON Pointer>", …], …}, subjects and pointers
// in pii's order, strings as encoding/json writes them (HTML-safe).
func AppendPIIMember(b []byte, pii []SubjectValues) []byte {
	b = append(b, '{')
	for i, v := range pii {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, string(v.Subject))
		b = append(b, ':', '[')
		for k, p := range v.Pointers {
			if k > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, p)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// AppendJSONString appends s as a JSON string, as encoding/json writes one
// (RFC 8259; '<', '>' and '&' escaped, invalid UTF-8 replaced by U+FFFD).
func AppendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// NewEvent is an event proposed for append. Its ID is chosen by the client,
// which makes a retried append idempotent.
type NewEvent struct {
	ID       uuid.UUID
	Type     string
	Data     []byte // JSON
	Metadata []byte // JSON, or nil
	// PII marks values of Data as personal (docs/pii.md): each is stored
	// apart, under its subject's key, and Data keeps a token in its place.
	PII []PIIMark
}

// Positions are where one appended event landed.
type Positions struct {
	Position       int64 `json:"position"`
	GlobalPosition int64 `json:"global_position"`
}

// AppendResult is the outcome of an append.
type AppendResult struct {
	Stream StreamName
	// Events holds one entry per appended event, in order.
	Events []Positions
	// Version is the stream's version after the append (its last position).
	Version int64
	// Replayed is true when every event had been appended before with the
	// same content, and nothing new was written.
	Replayed bool
}

// Capability is something a principal may do, granted by a policy.
type Capability string

// The capabilities of docs/design.md ("Access").
const (
	CapAppend      Capability = "append"
	CapRead        Capability = "read"
	CapReadPII     Capability = "read_pii"
	CapErase       Capability = "erase"
	CapAuditExport Capability = "audit_export"
	CapAdmin       Capability = "admin"
)

// Principal is who calls: established by authentication, it carries the
// tenant every action is confined to and the policy rules that grant
// capabilities.
type Principal struct {
	Tenant TenantID
	// TokenID is an API token's public id, never the token; "" for a
	// principal from a JWT.
	TokenID string
	// Subject is a JWT's "iss" and "sub" claims, as "iss#sub"; "" for an
	// API token. A sub may be personal (an e-mail address): it decides
	// policies but is never logged or recorded; ActorID is.
	Subject string
	// ActorID names a JWT caller in logs and records without its subject:
	// "jwt_" and 16 hex digits of a keyed hash of Subject (jwtauth).
	ActorID string
	Name    string
	// Root is the dev root token: admin over every tenant.
	Root bool
	// Rules are an API token's inline rules (the form before policy
	// documents), decided as the equivalent policy policies.FromRules
	// writes.
	Rules []Rule
	// Policies name the tenant's policy documents that decide what the
	// principal may do: attached to an API token, or mapped from a JWT's
	// groups claim.
	Policies []string
	// Grants are the principal's policy documents compiled, attached after
	// authentication (policies.Resolver); nil when they are not resolved,
	// and then its Rules alone decide.
	Grants Grants
}

// Grants are compiled policy documents: policies.Set implements it.
type Grants interface {
	// Documents names the documents and their versions, as "name@v3".
	Documents() []string
}

// Actor names the principal in logs and records: the API token's public
// id, or a JWT caller's ActorID; never a JWT's subject.
func (p Principal) Actor() string {
	switch {
	case p.TokenID != "":
		return p.TokenID
	case p.ActorID != "":
		return p.ActorID
	case p.Subject != "":
		return "jwt"
	}
	return ""
}

// Rule grants capabilities on the streams whose names match Streams, a glob
// ('*' matches any run of characters).
type Rule struct {
	Capabilities []Capability `json:"capabilities"`
	Streams      string       `json:"streams"`
}
