package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// FormatVersion is the envelope format this package writes and reads.
const FormatVersion byte = 1

// Sizes of the envelope, in bytes.
const (
	headerSize = 1 + 1 + 16 + 4                   // version, kind, key id, key version
	keySize    = chacha20poly1305.KeySize         // 32
	nonceSize  = chacha20poly1305.NonceSizeX      // 24
	tagSize    = chacha20poly1305.Overhead        // 16
	sealedMin  = headerSize + nonceSize + tagSize // the shortest sealed envelope
)

// Purpose labels, the first field of every associated data. They also name the
// format version, so that a later format never shares associated data with v1.
const (
	labelTenantKEK   = "eventvault/v1/tenant-kek"
	labelStreamKey   = "eventvault/v1/stream-key"
	labelEvent       = "eventvault/v1/event"
	infoContentMAC   = "eventvault/v1/content-mac"
	labelSubjectKey  = "eventvault/v1/subject-key"
	labelPIIValue    = "eventvault/v1/pii-value"
	infoPIIDigest    = "eventvault/v1/pii-digest"
	streamKeyVersion = 1 // stream keys are never rotated: KEK rotation re-wraps them
)

// kind says what an envelope holds. It is the second header byte.
type kind byte

const (
	kindTenantKEK  kind = 1 // a tenant KEK wrapped by the root key
	kindStreamKey  kind = 2 // a stream key wrapped by the tenant KEK
	kindEvent      kind = 3 // an event's data and metadata, sealed with the stream key
	kindSubjectKey kind = 4 // a subject key wrapped by the tenant KEK
	kindPIIValue   kind = 5 // a personal value, sealed with the subject key
)

func (k kind) String() string {
	switch k {
	case kindTenantKEK:
		return "tenant-kek"
	case kindStreamKey:
		return "stream-key"
	case kindEvent:
		return "event"
	case kindSubjectKey:
		return "subject-key"
	case kindPIIValue:
		return "pii-value"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// header starts every envelope. keyID and keyVersion name the key the
// envelope is bound to: the stream key for an event, the tenant KEK for a
// wrapped stream key, and the tenant KEK itself for a KEK wrapped by the root
// (the root provider versions its own ciphertext).
type header struct {
	kind       kind
	keyID      uuid.UUID
	keyVersion uint32
}

// Reasons parseHeader refuses an envelope. They never leave the package bare:
// callers turn them into an *eventvault.Error that names the ciphertext.
var (
	errShortEnvelope = errors.New("envelope shorter than its header")
	errUnknownKind   = errors.New("unknown envelope kind")
)

// versionError is an envelope of a format version this build cannot read.
type versionError struct{ version byte }

func (e *versionError) Error() string {
	return fmt.Sprintf("envelope format version %d; this build reads version %d", e.version, FormatVersion)
}

// parseHeader reads the header at the start of b. It checks the format
// version and that the kind is known, nothing else.
func parseHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, errShortEnvelope
	}
	if b[0] != FormatVersion {
		return header{}, &versionError{version: b[0]}
	}
	h := header{kind: kind(b[1]), keyVersion: binary.BigEndian.Uint32(b[18:22])}
	switch h.kind {
	case kindTenantKEK, kindStreamKey, kindEvent, kindSubjectKey, kindPIIValue:
	default:
		return header{}, errUnknownKind
	}
	copy(h.keyID[:], b[2:18])
	return h, nil
}

// appendTo appends the header's 22 bytes to b.
func (h header) appendTo(b []byte) []byte {
	b = append(b, FormatVersion, byte(h.kind))
	b = append(b, h.keyID[:]...)
	return binary.BigEndian.AppendUint32(b, h.keyVersion)
}

// describeHeaderError says in client-safe words why a header did not parse.
func describeHeaderError(err error) string {
	var v *versionError
	switch {
	case errors.As(err, &v):
		return v.Error()
	case errors.Is(err, errUnknownKind):
		return "unknown envelope kind"
	default:
		return "truncated envelope"
	}
}

// aadBuilder builds header || field(label) || field(f)... where
// field(b) = uint32 big-endian len(b) || b. Each field is length-prefixed, so
// no two different lists of fields give the same bytes.
type aadBuilder []byte

func newAAD(h header, label string, size int) aadBuilder {
	a := make(aadBuilder, 0, headerSize+4+len(label)+size)
	a = h.appendTo(a)
	return a.string(label)
}

func (a aadBuilder) bytes(f []byte) aadBuilder {
	a = binary.BigEndian.AppendUint32(a, uint32(len(f)))
	return append(a, f...)
}

func (a aadBuilder) string(f string) aadBuilder {
	a = binary.BigEndian.AppendUint32(a, uint32(len(f)))
	return append(a, f...)
}

func (a aadBuilder) uint32(v uint32) aadBuilder {
	a = binary.BigEndian.AppendUint32(a, 4)
	return binary.BigEndian.AppendUint32(a, v)
}

func (a aadBuilder) int64(v int64) aadBuilder {
	a = binary.BigEndian.AppendUint32(a, 8)
	return binary.BigEndian.AppendUint64(a, uint64(v))
}

// tenantKEKAAD is what a tenant KEK is bound to under the root key.
func tenantKEKAAD(h header, tenant eventvault.TenantID) []byte {
	return newAAD(h, labelTenantKEK, 4*3+len(tenant)+16+4).
		string(string(tenant)).bytes(h.keyID[:]).uint32(h.keyVersion)
}

// streamKeyAAD is what a stream key is bound to under the tenant KEK; h names
// the KEK.
func streamKeyAAD(h header, tenant eventvault.TenantID, stream eventvault.StreamName, streamKeyID uuid.UUID) []byte {
	return newAAD(h, labelStreamKey, 4*4+len(tenant)+len(stream)+16+4).
		string(string(tenant)).string(string(stream)).bytes(streamKeyID[:]).uint32(h.keyVersion)
}

// eventAAD is what an event payload is bound to: its place in the store.
func eventAAD(h header, ref EventRef) []byte {
	return appendEventAAD(make([]byte, 0, headerSize+4*6+len(labelEvent)+len(ref.Tenant)+len(ref.Stream)+16+8+len(ref.Type)), h, ref)
}

// appendEventAAD appends eventAAD(h, ref) to b.
func appendEventAAD(b []byte, h header, ref EventRef) []byte {
	a := aadBuilder(h.appendTo(b)).string(labelEvent)
	return a.string(string(ref.Tenant)).string(string(ref.Stream)).bytes(ref.ID[:]).int64(ref.Position).string(ref.Type)
}

// aadPool holds buffers for the associated data of events opened, which
// an AEAD (an interface) would otherwise take as a new allocation each;
// buffers that grew past maxPooledAAD are not kept.
var aadPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

const maxPooledAAD = 1024
