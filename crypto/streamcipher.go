package crypto

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// EventRef is the place of an event in the store. A payload sealed for one
// EventRef opens for no other.
type EventRef struct {
	Tenant   eventvault.TenantID
	Stream   eventvault.StreamName
	ID       uuid.UUID
	Position int64
	Type     string
}

// StreamCipher seals and opens the events of one stream with the stream's
// key. It holds the key only inside its AEAD and MAC state; it prints no key
// bytes. It is safe for concurrent use.
type StreamCipher struct {
	tenant  eventvault.TenantID
	stream  eventvault.StreamName
	keyID   uuid.UUID
	version uint32
	aead    cipher.AEAD
	// macKey is behind a pointer so that formatting a StreamCipher value
	// with any verb prints an address, never the bytes.
	macKey *[32]byte
	rand   io.Reader
}

// newStreamCipher returns the cipher of a stream key. The caller keeps and
// zeroes key: the AEAD and the derived MAC key are copies.
func newStreamCipher(tenant eventvault.TenantID, stream eventvault.StreamName, keyID uuid.UUID, version uint32, key []byte, rand io.Reader) (*StreamCipher, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	mk, err := hkdf.Key(sha256.New, key, nil, infoContentMAC, 32)
	if err != nil {
		return nil, err
	}
	c := &StreamCipher{tenant: tenant, stream: stream, keyID: keyID, version: version, aead: aead, macKey: new([32]byte), rand: rand}
	copy(c.macKey[:], mk)
	clear(mk)
	return c, nil
}

// KeyID returns the id of the stream key: the id the store must still hold
// as the stream's key when an append sealed with it commits.
func (c *StreamCipher) KeyID() uuid.UUID { return c.keyID }

// String names the stream and the key id; it prints no key bytes.
func (c StreamCipher) String() string {
	return fmt.Sprintf("StreamCipher(%s/%s key %s v%d)", c.tenant, c.stream, c.keyID, c.version)
}

// GoString is String, so that %#v prints no key state either.
func (c StreamCipher) GoString() string { return c.String() }

// Format prints String whatever the verb, so that no verb reaches the key
// state.
func (c StreamCipher) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs String, so that slog prints no key state either.
func (c StreamCipher) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ContentMAC returns HMAC-SHA256, under a key derived from the stream key,
// of an unambiguous encoding of the event's type, data and metadata. Equal
// content gives equal MACs within a stream, so the store can decide an
// idempotent replay without seeing data; as the MAC is keyed, whoever holds
// the store cannot confirm a guess of low-entropy data. Different streams
// give unrelated MACs.
func (c *StreamCipher) ContentMAC(typ string, data, metadata []byte) []byte {
	m := hmac.New(sha256.New, c.macKey[:])
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(typ)))
	m.Write(n[:])
	io.WriteString(m, typ)
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	m.Write(n[:])
	m.Write(data)
	if metadata == nil {
		m.Write([]byte{0})
	} else {
		m.Write([]byte{flagMetadata})
		binary.BigEndian.PutUint32(n[:], uint32(len(metadata)))
		m.Write(n[:])
		m.Write(metadata)
	}
	return m.Sum(nil)
}

// SealEvent encrypts data and metadata for the place ref names. A nil
// metadata opens as nil, an empty one as empty.
// Errors: EINTERNAL for a ref of another stream or a failing random source.
func (c *StreamCipher) SealEvent(ref EventRef, data, metadata []byte) ([]byte, error) {
	return c.SealEventPII(ref, data, metadata, nil)
}

// SealEventPII is SealEvent for an event that marks personal values: pii
// is the event's manifest of tokens (engine), sealed with its data so that
// only the vault, never a client, can say which values are tokens. A nil
// pii seals exactly as SealEvent.
func (c *StreamCipher) SealEventPII(ref EventRef, data, metadata, pii []byte) ([]byte, error) {
	const op = "crypto.StreamCipher.SealEvent"
	if ref.Tenant != c.tenant || ref.Stream != c.stream {
		return nil, internalError(op, nil, "the cipher of stream %s cannot seal an event of stream %s", c.stream, ref.Stream)
	}
	h := header{kind: kindEvent, keyID: c.keyID, keyVersion: c.version}
	ptLen := plaintextLen(data, metadata, pii)
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+ptLen+tagSize)
	h.appendTo(out[:0])
	nonce := out[headerSize : headerSize+nonceSize]
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return nil, internalError(op, err, "could not read a random nonce for event %s", ref.ID)
	}
	pt := appendPlaintext(out[headerSize+nonceSize:], data, metadata, pii)
	// Seal in place: pt starts where the sealed bytes go.
	return c.aead.Seal(out, nonce, pt, eventAAD(h, ref)), nil
}

// OpenEvent authenticates and decrypts a payload sealed for ref.
// Errors: EINTERNAL wrapping ErrAuthentication if the payload was altered,
// truncated, moved from another place, sealed with another key or is of an
// unknown format version.
func (c *StreamCipher) OpenEvent(ref EventRef, payload []byte) (data, metadata []byte, err error) {
	data, metadata, _, err = c.OpenEventPII(ref, payload)
	return data, metadata, err
}

// OpenEventPII is OpenEvent that also returns the event's manifest of
// tokens (nil for an event that marks none). Errors: as OpenEvent.
func (c *StreamCipher) OpenEventPII(ref EventRef, payload []byte) (data, metadata, pii []byte, err error) {
	return c.openEvent(ref, payload, false)
}

// OpenEventPIIInPlace is OpenEventPII that decrypts into payload's own
// memory instead of a new slice, for a caller that owns payload and has no
// further use for the sealed bytes (a page just read from the store):
// data, metadata and pii alias payload, whose bytes are overwritten, with
// the plaintext when it authenticates and with zeros when it does not.
// Nothing else may read or write payload meanwhile. Errors: as OpenEvent.
func (c *StreamCipher) OpenEventPIIInPlace(ref EventRef, payload []byte) (data, metadata, pii []byte, err error) {
	return c.openEvent(ref, payload, true)
}

// openEvent is OpenEventPII, decrypting in place or into a new slice.
func (c *StreamCipher) openEvent(ref EventRef, payload []byte, inPlace bool) (data, metadata, pii []byte, err error) {
	const op = "crypto.StreamCipher.OpenEvent"
	if ref.Tenant != c.tenant || ref.Stream != c.stream {
		return nil, nil, nil, internalError(op, nil, "the cipher of stream %s cannot open an event of stream %s", c.stream, ref.Stream)
	}
	failed := func(why string) *eventvault.Error {
		return authError(op, "event %s at position %d of stream %s failed authentication: %s", ref.ID, ref.Position, ref.Stream, why)
	}
	h, err := parseHeader(payload)
	if err != nil {
		return nil, nil, nil, failed(describeHeaderError(err))
	}
	switch {
	case h.kind != kindEvent:
		return nil, nil, nil, failed(fmt.Sprintf("the envelope holds a %s, not an event", h.kind))
	case h.keyID != c.keyID || h.keyVersion != c.version:
		return nil, nil, nil, failed(fmt.Sprintf("sealed with key %s v%d, not the stream's key %s v%d", h.keyID, h.keyVersion, c.keyID, c.version))
	case len(payload) < sealedMin:
		return nil, nil, nil, failed("truncated envelope")
	}
	nonce, sealed := payload[headerSize:headerSize+nonceSize], payload[headerSize+nonceSize:]
	var dst []byte
	if inPlace {
		// The AEAD's documented in-place use: dst is sealed[:0].
		dst = sealed[:0]
	}
	aad := aadPool.Get().(*[]byte)
	*aad = appendEventAAD((*aad)[:0], h, ref)
	pt, err := c.aead.Open(dst, nonce, sealed, *aad)
	if cap(*aad) <= maxPooledAAD {
		aadPool.Put(aad)
	}
	if err != nil {
		return nil, nil, nil, failed("altered, moved or sealed with another key")
	}
	data, metadata, pii, err = parsePlaintext(pt)
	if err != nil {
		// Authentic but malformed: a bug in whatever sealed it.
		return nil, nil, nil, internalError(op, err, "event %s at position %d of stream %s has a malformed payload", ref.ID, ref.Position, ref.Stream)
	}
	return data, metadata, pii, nil
}

// The event plaintext is flags (1 byte) || uvarint(len(data)) || data ||
// [uvarint(len(pii)) || pii] || metadata. flagMetadata set means metadata
// is present (possibly empty); clear means nil metadata, and nothing may
// follow data (and pii). flagPII set means a manifest of tokens follows
// data; clear (every event that marks no personal value) means none, so
// such events seal byte for byte as before PII existed.
const (
	flagMetadata = 0x01
	flagPII      = 0x02
)

var errMalformedPlaintext = errors.New("malformed event plaintext")

func plaintextLen(data, metadata, pii []byte) int {
	var n [binary.MaxVarintLen64]byte
	l := 1 + binary.PutUvarint(n[:], uint64(len(data))) + len(data) + len(metadata)
	if pii != nil {
		l += binary.PutUvarint(n[:], uint64(len(pii))) + len(pii)
	}
	return l
}

func appendPlaintext(b, data, metadata, pii []byte) []byte {
	var flags byte
	if metadata != nil {
		flags = flagMetadata
	}
	if pii != nil {
		flags |= flagPII
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = append(b, data...)
	if pii != nil {
		b = binary.AppendUvarint(b, uint64(len(pii)))
		b = append(b, pii...)
	}
	return append(b, metadata...)
}

// readChunk reads uvarint(len) || bytes from b, canonical varints only.
func readChunk(b []byte) (chunk, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	var canonical [binary.MaxVarintLen64]byte
	if k <= 0 || k != binary.PutUvarint(canonical[:], n) || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n) : k+int(n)], b[k+int(n):], true
}

func parsePlaintext(pt []byte) (data, metadata, pii []byte, err error) {
	if len(pt) < 2 || pt[0]&^(flagMetadata|flagPII) != 0 {
		return nil, nil, nil, errMalformedPlaintext
	}
	data, rest, ok := readChunk(pt[1:])
	if !ok {
		return nil, nil, nil, errMalformedPlaintext
	}
	if pt[0]&flagPII != 0 {
		if pii, rest, ok = readChunk(rest); !ok || len(pii) == 0 {
			return nil, nil, nil, errMalformedPlaintext
		}
	}
	metadata = rest
	if pt[0]&flagMetadata == 0 {
		if len(metadata) != 0 {
			return nil, nil, nil, errMalformedPlaintext
		}
		metadata = nil
	}
	return data, metadata, pii, nil
}
