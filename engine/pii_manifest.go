package engine

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/eventvault/eventvault"
)

// An event's manifest of personal values, sealed with its data under the
// stream key (crypto: the event plaintext's flagPII): which values of the
// data are tokens, and whose. Only the vault writes it, so a token-shaped
// string a client puts in its data is never taken for a token.
// Binary, as
// a read parses one per marked event, and small, as a read opens it with
// every event (version 3, written since 2026-11-30 afternoon):
//
//	version (1 byte, 3)
//	uvarint(number of subjects), then each: the pseudonym's 32 bytes
//	uvarint(number of values), then each:
//	    uvarint(subject index) || uvarint(len) || pointer || token (16 bytes) || class (1 byte) || uvarint(offset)
//
// A pseudonym is the 32 bytes its 64 hex digits spell; a token the 16
// random bytes its base32 spells (after PIITokenPrefix). offset is where
// the value's placeholder, the empty JSON string "", starts in the sealed
// data, so that a read finds it without parsing the data: the sealed data
// holds neither the value nor its token, and a read puts there what its
// policy shows (the value, its mask, the token redacted, erased). class is
// 0 for none, then email, phone, address, free_text.
//
// Earlier versions still read, as events sealed before hold them:
// version 2 is version 3 without the token bytes, the sealed data holding
// the token's JSON string at the offset instead of ""; version 1 (which
// the encoder still writes for a pseudonym or token of another shape)
// writes each pseudonym as uvarint(len) || its hex, and each value's token
// after its pointer as uvarint(len) || token, the data holding the token's
// string at the offset as in version 2.

// manifestEntry is one marked value of an event.
type manifestEntry struct {
	Pointer string
	Token   string
	Class   eventvault.PIIClass
	Subject eventvault.Pseudonym
	Offset  int
	// subjectIndex is, once decoded, Subject's index in the manifest's
	// list of subjects.
	subjectIndex int
	// compact is, once decoded, whether the sealed data holds "" at
	// Offset (version 3) rather than the token's string.
	compact bool
}

// placeholder is what the sealed data holds, as a JSON string, at the
// entry's offset: "" in version 3, else the token.
func (e manifestEntry) placeholder() string {
	if e.compact {
		return ""
	}
	return e.Token
}

// span is the length of the placeholder's JSON string in the sealed data.
func (e manifestEntry) span() int { return len(e.placeholder()) + 2 }

const (
	manifestV1 = 1
	manifestV2 = 2
	manifestV3 = 3
)

// piiTokenLen is the length of every token newToken draws, of
// piiTokenBytes random bytes.
var piiTokenLen = len(eventvault.PIITokenPrefix) + 26

const piiTokenBytes = 16

var manifestClasses = []eventvault.PIIClass{"", eventvault.PIIEmail, eventvault.PIIPhone, eventvault.PIIAddress, eventvault.PIIFreeText}

var errManifest = errors.New("malformed manifest of personal values")

func classByte(c eventvault.PIIClass) byte {
	for i, k := range manifestClasses {
		if k == c {
			return byte(i)
		}
	}
	return 0
}

// manifestVersion is the version encodeManifest writes entries in:
// version 3 when every pseudonym is 64 lowercase hex digits and every
// token is PIITokenPrefix and the base32 of 16 bytes (always, for what the
// vault writes), else version 1. The sealed data holds "" at each offset
// for version 3, the token's string else.
func manifestVersion(entries []manifestEntry) byte {
	for _, e := range entries {
		if _, ok := pseudonymBytes(e.Subject); !ok {
			return manifestV1
		}
		if _, ok := tokenBytes(e.Token); !ok {
			return manifestV1
		}
	}
	return manifestV3
}

// pseudonymBytes returns the 32 bytes that p's 64 lowercase hex digits
// spell.
func pseudonymBytes(p eventvault.Pseudonym) ([]byte, bool) {
	raw, err := hex.DecodeString(string(p))
	return raw, err == nil && len(raw) == pseudonymLen && hex.EncodeToString(raw) == string(p)
}

// tokenBytes returns the 16 bytes that token spells after PIITokenPrefix.
func tokenBytes(token string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(token, eventvault.PIITokenPrefix)
	if !ok || len(token) != piiTokenLen {
		return nil, false
	}
	raw, err := tokenEncoding.DecodeString(rest)
	return raw, err == nil && len(raw) == piiTokenBytes && tokenEncoding.EncodeToString(raw) == rest
}

// encodeManifest writes entries in the format above, in version (3, 2 or
// 1; manifestVersion says which the vault writes, and whether the sealed
// data holds "" or the token at each offset).
func encodeManifest(entries []manifestEntry, version byte) []byte {
	var subjects []eventvault.Pseudonym
	index := map[eventvault.Pseudonym]int{}
	for _, e := range entries {
		if _, ok := index[e.Subject]; !ok {
			index[e.Subject] = len(subjects)
			subjects = append(subjects, e.Subject)
		}
	}
	b := []byte{version}
	b = binary.AppendUvarint(b, uint64(len(subjects)))
	for _, s := range subjects {
		if version != manifestV1 {
			raw, _ := pseudonymBytes(s) // checked by manifestVersion
			b = append(b, raw...)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(index[e.Subject]))
		b = binary.AppendUvarint(b, uint64(len(e.Pointer)))
		b = append(b, e.Pointer...)
		switch version {
		case manifestV1:
			b = binary.AppendUvarint(b, uint64(len(e.Token)))
			b = append(b, e.Token...)
		case manifestV3:
			raw, _ := tokenBytes(e.Token) // checked by manifestVersion
			b = append(b, raw...)
		}
		b = append(b, classByte(e.Class))
		b = binary.AppendUvarint(b, uint64(e.Offset))
	}
	return b
}

// pseudonymLen is the length in bytes of a pseudonym (HMAC-SHA-256).
const pseudonymLen = 32

// manifestReader reads the format above.
type manifestReader struct {
	b   []byte
	err error
}

// uvarint reads a count or a length: it cannot exceed what is left.
func (r *manifestReader) uvarint() int { return r.read(uint64(len(r.b))) }

// offset reads an offset into the event's data.
func (r *manifestReader) offset() int { return r.read(1 << 31) }

func (r *manifestReader) read(limit uint64) int {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > limit {
		r.err, r.b = errManifest, nil
		return 0
	}
	r.b = r.b[k:]
	return int(n)
}

// next reads n bytes.
func (r *manifestReader) next(n int) []byte {
	if n > len(r.b) {
		r.err, r.b = errManifest, nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// bytes reads uvarint(len) || bytes.
func (r *manifestReader) bytes() string { return string(r.next(r.uvarint())) }

// decodeManifest reads the manifest m of an event whose sealed data is
// data: its subjects and its entries, in order. A version 2 entry's token
// is read from data at its offset.
func decodeManifest(m, data []byte) ([]eventvault.Pseudonym, []manifestEntry, error) {
	if len(m) == 0 || m[0] < manifestV1 || m[0] > manifestV3 {
		return nil, nil, errManifest
	}
	version := m[0]
	r := manifestReader{b: m[1:]}
	subjects := make([]eventvault.Pseudonym, r.uvarint())
	for i := range subjects {
		if version != manifestV1 {
			subjects[i] = eventvault.Pseudonym(hex.EncodeToString(r.next(pseudonymLen)))
		} else {
			subjects[i] = eventvault.Pseudonym(r.bytes())
		}
	}
	out := make([]manifestEntry, r.uvarint())
	for i := range out {
		si := r.uvarint()
		e := manifestEntry{Pointer: r.bytes(), subjectIndex: si, compact: version == manifestV3}
		switch version {
		case manifestV1:
			e.Token = r.bytes()
		case manifestV3:
			if raw := r.next(piiTokenBytes); raw != nil {
				e.Token = eventvault.PIITokenPrefix + tokenEncoding.EncodeToString(raw)
			}
		}
		if r.err != nil || si >= len(subjects) || len(r.b) == 0 || int(r.b[0]) >= len(manifestClasses) {
			return nil, nil, errManifest
		}
		e.Subject, e.Class = subjects[si], manifestClasses[r.b[0]]
		r.b = r.b[1:]
		e.Offset = r.offset()
		if version == manifestV2 {
			// The token is the string at the offset; the caller checks
			// its quotes, as for a version 1 token.
			if e.Offset+1+piiTokenLen > len(data) {
				return nil, nil, errManifest
			}
			e.Token = string(data[e.Offset+1 : e.Offset+1+piiTokenLen])
		}
		out[i] = e
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, nil, errManifest
	}
	return subjects, out, nil
}
