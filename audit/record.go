package audit

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
)

// RecordVersion is the only record format version this package writes and
// reads.
const RecordVersion = 1

// Outcomes of an audited action.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Actions the server records. Action is an open set (any lower-case word of
// a-z and '_'), so that a new action needs no new release of the verifier;
// these are the ones EventVault writes today.
const (
	ActionAppend           = "append"
	ActionRead             = "read"
	ActionReadAll          = "read_all"
	ActionDenied           = "denied"
	ActionShred            = "shred"
	ActionShredTenant      = "shred_tenant"
	ActionErasureRequested = "erasure_requested"
	ActionErasureState     = "erasure_state"
	ActionHoldPlaced       = "hold_placed"
	ActionHoldLifted       = "hold_lifted"
	ActionKEKRotated       = "kek_rotated"
	ActionRootRotated      = "root_rotated"
	ActionRootRetired      = "root_retired"
	ActionCryptoPeriod     = "crypto_period"
	ActionTokenIssued      = "token_issued"
	ActionTokenRevoked     = "token_revoked"
	ActionPolicyWritten    = "policy_written"
	ActionPolicyDeleted    = "policy_deleted"
	ActionExport           = "export"
	ActionNodeStarted      = "node_started"
	ActionNodeStopped      = "node_stopped"
)

// Record is one security-relevant action: one leaf of its tenant's Merkle
// tree. Its leaf bytes are exactly [Record.MarshalLine]'s output, and its leaf
// hash is tlog.RecordHash of those bytes (RFC 6962 §2.1: SHA-256(0x00 ||
// line)).
//
// A record never holds event data, a key, a token or a personal value: a data
// subject appears only as a pseudonym ("subject:<hex>"), so the log never
// stands in the way of an erasure.
type Record struct {
	// Version is RecordVersion; zero means RecordVersion when marshalling.
	Version int
	// Tenant whose log holds the record (the rules of eventvault.ValidateTenant).
	Tenant string
	// Index is the record's 0-based position in the tenant's log: its leaf
	// index in the tenant's tree.
	Index int64
	// Time is when the action happened. It is written in UTC with
	// microsecond precision (RFC 3339, always six fractional digits);
	// MarshalLine truncates finer precision.
	Time time.Time
	// Actor is who acted: an API token id ("tok_…"), a JWT caller's keyed
	// hash ("jwt_…"), "operator" (a CLI command) or "node:<id>".
	Actor string
	// Action is what happened: one of the Action constants, or another
	// lower-case word of a-z and '_'.
	Action string
	// Resource is what it happened to: "stream:order-1", "tenant",
	// "token:tok_…", "policy:app", "subject:<pseudonym hex>", … (no personal
	// value, ever).
	Resource string
	// Outcome is OutcomeOK, OutcomeDenied or OutcomeFailed.
	Outcome string
	// RequestID ties the record to the request's log lines; empty for
	// actions no request caused (node_started).
	RequestID string
	// Detail holds a few facts about the action: counts, positions, a
	// reason class, a configuration digest. Keys are 1 to 64 characters of
	// a-z, 0-9 and '_'; values are strings or integers (int or int64 when
	// marshalling; ParseLine gives int64). At most MaxDetail entries. Never
	// data, keys, tokens or personal values.
	Detail map[string]any
}

// MaxDetail bounds the number of entries in Record.Detail.
const MaxDetail = 32

// maxField bounds any string of a record, in bytes.
const maxField = 1024

// ErrMalformedRecord is wrapped by every error of ParseLine and MarshalLine
// about the record itself.
var ErrMalformedRecord = errors.New("malformed audit record")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedRecord, fmt.Sprintf(format, args...))
}

// MarshalLine returns the record as one line of canonical compact JSON, with
// no trailing newline. The keys come in this fixed order, every key always
// present:
//
//	{"version":1,"tenant":"acme","index":0,"time":"2026-11-30T07:42:41.123456Z",
//	 "actor":"tok_…","action":"append","resource":"stream:order-1","outcome":"ok",
//	 "request_id":"…","detail":{"count":2,"first":0}}
//
// (shown wrapped). Strings escape only '"', '\\' and the control characters
// (as \n, \r, \t or \u00xx, lower-case hex); everything else is literal
// UTF-8. Detail keys are sorted; integers are plain decimal. These bytes are
// the Merkle leaf: store and export them as they are, never re-encoded.
func (r Record) MarshalLine() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"version":1,"tenant":`...)
	b = appendString(b, r.Tenant)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, r.Index, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().Truncate(time.Microsecond).AppendFormat(b, timeLayout)
	b = append(b, `","actor":`...)
	b = appendString(b, r.Actor)
	b = append(b, `,"action":`...)
	b = appendString(b, r.Action)
	b = append(b, `,"resource":`...)
	b = appendString(b, r.Resource)
	b = append(b, `,"outcome":`...)
	b = appendString(b, r.Outcome)
	b = append(b, `,"request_id":`...)
	b = appendString(b, r.RequestID)
	b = append(b, `,"detail":{`...)
	keys := make([]string, 0, len(r.Detail))
	for k := range r.Detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		switch v := r.Detail[k].(type) {
		case string:
			b = appendString(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		}
	}
	b = append(b, "}}"...)
	return b, nil
}

// timeLayout is RFC 3339 in UTC with exactly six fractional digits.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func (r Record) validate() error {
	if r.Version != 0 && r.Version != RecordVersion {
		return malformed("version %d; this build knows version %d", r.Version, RecordVersion)
	}
	if err := eventvault.ValidateTenant(eventvault.TenantID(r.Tenant)); err != nil && r.Tenant != DeploymentTenant {
		return malformed("tenant %q is not a valid tenant id", r.Tenant)
	}
	if r.Index < 0 {
		return malformed("negative index %d", r.Index)
	}
	if r.Time.IsZero() {
		return malformed("no time")
	}
	if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
		return malformed("time %s is outside years 1 to 9999", r.Time)
	}
	if r.Actor == "" {
		return malformed("no actor")
	}
	if !isWord(r.Action) {
		return malformed("action %q is not a word of a-z and '_'", r.Action)
	}
	switch r.Outcome {
	case OutcomeOK, OutcomeDenied, OutcomeFailed:
	default:
		return malformed("outcome %q is none of ok, denied, failed", r.Outcome)
	}
	for _, s := range []string{r.Actor, r.Resource, r.RequestID} {
		if len(s) > maxField || !utf8.ValidString(s) {
			return malformed("a field is longer than %d bytes or not UTF-8", maxField)
		}
	}
	if len(r.Detail) > MaxDetail {
		return malformed("%d detail entries; the limit is %d", len(r.Detail), MaxDetail)
	}
	for k, v := range r.Detail {
		if !isDetailKey(k) {
			return malformed("detail key %q is not 1 to 64 characters of a-z, 0-9 and '_'", k)
		}
		switch v := v.(type) {
		case int, int64:
		case string:
			if len(v) > maxField || !utf8.ValidString(v) {
				return malformed("detail %s is longer than %d bytes or not UTF-8", k, maxField)
			}
		default:
			return malformed("detail %s is a %T; only strings and integers are allowed", k, v)
		}
	}
	return nil
}

func isWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}

func isDetailKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a canonical JSON string. s is valid UTF-8
// (validate checked).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
