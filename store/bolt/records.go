package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// The records are stored with their own tags, so that renaming a field of
// the core package never changes the file format.

// keyRecord is a wrapped key as stored (JSON).
type keyRecord struct {
	ID         uuid.UUID `json:"id"`
	Version    uint32    `json:"version"`
	KEKVersion uint32    `json:"kek_version,omitempty"`
	Ciphertext []byte    `json:"ciphertext"`
	CreatedAt  time.Time `json:"created_at"`
}

func toKeyRecord(k eventvault.WrappedKey) keyRecord {
	return keyRecord{ID: k.ID, Version: k.Version, KEKVersion: k.KEKVersion, Ciphertext: k.Ciphertext, CreatedAt: k.CreatedAt}
}

func (r keyRecord) wrappedKey() eventvault.WrappedKey {
	return eventvault.WrappedKey{ID: r.ID, Version: r.Version, KEKVersion: r.KEKVersion, Ciphertext: r.Ciphertext, CreatedAt: r.CreatedAt}
}

func encodeKey(k eventvault.WrappedKey) ([]byte, error) {
	return json.Marshal(toKeyRecord(k))
}

func decodeKey(v []byte) (eventvault.WrappedKey, error) {
	var r keyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("corrupt key record: %w", err)
	}
	return r.wrappedKey(), nil
}

// streamRecord is a stream's head: its version and its wrapped key (JSON),
// the data subject who owns it, and once shredded what remains of its key.
type streamRecord struct {
	Version int64     `json:"version"` // NoStream until the first append
	Key     keyRecord `json:"key"`     // the zero record once shredded
	// Subject is the pseudonym of the stream's owner, or empty.
	Subject eventvault.Pseudonym `json:"subject,omitempty"`
	// Shred is set when the key was destroyed, and never unset.
	Shred *shredRecord `json:"shred,omitempty"`
}

// shredRecord is what a shredded stream keeps of its key: its id, and when.
type shredRecord struct {
	KeyID  uuid.UUID `json:"key_id"`
	At     time.Time `json:"at"`
	Purged bool      `json:"purged,omitempty"`
}

func encodeStream(r streamRecord) ([]byte, error) {
	return json.Marshal(r)
}

func decodeStream(v []byte) (streamRecord, error) {
	var r streamRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return streamRecord{}, fmt.Errorf("corrupt stream record: %w", err)
	}
	return r, nil
}

// tokenRecord is an API token as stored (JSON), keyed by its hash.
type tokenRecord struct {
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Name      string            `json:"name"`
	Root      bool              `json:"root,omitempty"`
	Rules     []eventvault.Rule `json:"rules,omitempty"`
	Policies  []string          `json:"policies,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	ExpiresAt time.Time         `json:"expires_at,omitzero"`
}

func encodeToken(t eventvault.Token) ([]byte, error) {
	return json.Marshal(tokenRecord{ID: t.ID, Tenant: string(t.Tenant), Name: t.Name, Root: t.Root, Rules: t.Rules, Policies: t.Policies, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt})
}

func decodeToken(hash, v []byte) (eventvault.Token, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return eventvault.Token{}, fmt.Errorf("corrupt token record: %w", err)
	}
	return eventvault.Token{
		ID: r.ID, Hash: clone(hash), Tenant: eventvault.TenantID(r.Tenant), Name: r.Name,
		Root: r.Root, Rules: r.Rules, Policies: r.Policies, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
	}, nil
}

// eventFormat is the first byte of an event record.
const eventFormat = 1

// eventHeaderLen is the fixed part of an event record: format, id, global
// position, recorded time.
const eventHeaderLen = 1 + 16 + 8 + 8

// eventRecord is an event as stored under its stream and position.
type eventRecord struct {
	ID             uuid.UUID
	GlobalPosition int64
	RecordedAt     time.Time // microsecond precision
	Type           string
	ContentMAC     []byte
	Payload        []byte
}

// encodeEvent lays out an event record as
//
//	format (1) | id (16) | global position (8) | recorded_at µs (8)
//	| uvarint len | type | uvarint len | content MAC | payload (rest)
func encodeEvent(r eventRecord) []byte {
	b := make([]byte, 0, eventHeaderLen+2*binary.MaxVarintLen64+len(r.Type)+len(r.ContentMAC)+len(r.Payload))
	b = append(b, eventFormat)
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.GlobalPosition))
	b = binary.BigEndian.AppendUint64(b, uint64(r.RecordedAt.UnixMicro()))
	b = binary.AppendUvarint(b, uint64(len(r.Type)))
	b = append(b, r.Type...)
	b = binary.AppendUvarint(b, uint64(len(r.ContentMAC)))
	b = append(b, r.ContentMAC...)
	return append(b, r.Payload...)
}

var errCorruptEvent = errors.New("corrupt event record")

// decodeEvent parses an event record. The result shares no memory with v,
// which bbolt only lends for the transaction.
func decodeEvent(v []byte) (eventRecord, error) {
	if len(v) < eventHeaderLen || v[0] != eventFormat {
		return eventRecord{}, errCorruptEvent
	}
	var r eventRecord
	copy(r.ID[:], v[1:17])
	r.GlobalPosition = int64(binary.BigEndian.Uint64(v[17:25]))
	r.RecordedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(v[25:33]))).UTC()
	rest := v[eventHeaderLen:]
	typ, rest, ok := lengthPrefixed(rest)
	if !ok {
		return eventRecord{}, errCorruptEvent
	}
	mac, rest, ok := lengthPrefixed(rest)
	if !ok {
		return eventRecord{}, errCorruptEvent
	}
	r.Type = string(typ)
	r.ContentMAC = clone(mac)
	r.Payload = clone(rest)
	return r, nil
}

func lengthPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	// A length in more bytes than needed is refused, so that a record has
	// exactly one encoding.
	if k <= 0 || k != len(binary.AppendUvarint(nil, n)) || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// A locator points at an event: position (8) | stream name. The log and
// ids buckets hold locators.
func encodeLocator(stream eventvault.StreamName, pos int64) []byte {
	b := make([]byte, 0, 8+len(stream))
	b = binary.BigEndian.AppendUint64(b, uint64(pos))
	return append(b, stream...)
}

func decodeLocator(v []byte) (eventvault.StreamName, int64, error) {
	if len(v) <= 8 {
		return "", 0, errors.New("corrupt locator")
	}
	return eventvault.StreamName(v[8:]), int64(binary.BigEndian.Uint64(v[:8])), nil
}

func be64(n int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(n))
}

func be32(n uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, n)
}

func u64(b []byte) uint64 {
	return binary.BigEndian.Uint64(b)
}

// clone copies b out of bbolt's memory; nil stays nil, empty stays empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
