package engine

import (
	"encoding/binary"
	"encoding/hex"
	"errors"

	"github.com/eventvault/eventvault"
)

// An event's manifest of personal values, sealed with its data under the
// stream key (crypto: the event plaintext's flagPII): which values of the
// data are tokens, and whose. Only the vault writes it, so a token-shaped
// string a client puts in its data is never taken for a token. Binary, as
// a read parses one per marked event, and small, as a read opens it with
// every event (version 2, written since 2026-11-30):
//
//	version (1 byte, 2)
//	uvarint(number of subjects), then each: the pseudonym's 32 bytes
//	uvarint(number of values), then each:
//	    uvarint(subject index) || uvarint(len) || pointer || class (1 byte) || uvarint(offset)
//
// A pseudonym is the 32 bytes its 64 hex digits spell. offset is where the
// token's JSON string (its opening quote) starts in the sealed data, so
// that a read finds it without parsing the data; the token itself is the
// piiTokenLen bytes after that quote, so it is not written twice. class is
// 0 for none, then email, phone, address, free_text.
//
// Version 1, which events sealed before it hold (and which the encoder
// still writes for a pseudonym or token of another shape), writes each
// pseudonym as uvarint(len) || its hex, and each value's token after its
// pointer as uvarint(len) || token.

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
}

const (
	manifestV1 = 1
	manifestV2 = 2
)

// piiTokenLen is the length of every token newToken draws.
var piiTokenLen = len(eventvault.PIITokenPrefix) + 26

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

// encodeManifest writes entries in the format above: version 2 when every
// pseudonym is 64 lowercase hex digits and every token piiTokenLen bytes
// (always, for what the vault writes), else version 1.
func encodeManifest(entries []manifestEntry) []byte {
	var subjects []eventvault.Pseudonym
	index := map[eventvault.Pseudonym]int{}
	v2 := true
	for _, e := range entries {
		if _, ok := index[e.Subject]; !ok {
			index[e.Subject] = len(subjects)
			subjects = append(subjects, e.Subject)
			raw, err := hex.DecodeString(string(e.Subject))
			v2 = v2 && err == nil && len(raw) == pseudonymLen && hex.EncodeToString(raw) == string(e.Subject)
		}
		v2 = v2 && len(e.Token) == piiTokenLen
	}
	version := byte(manifestV1)
	if v2 {
		version = manifestV2
	}
	b := []byte{version}
	b = binary.AppendUvarint(b, uint64(len(subjects)))
	for _, s := range subjects {
		if v2 {
			b, _ = hex.AppendDecode(b, []byte(s)) // checked above
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
		if !v2 {
			b = binary.AppendUvarint(b, uint64(len(e.Token)))
			b = append(b, e.Token...)
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
	if len(m) == 0 || (m[0] != manifestV1 && m[0] != manifestV2) {
		return nil, nil, errManifest
	}
	v2 := m[0] == manifestV2
	r := manifestReader{b: m[1:]}
	subjects := make([]eventvault.Pseudonym, r.uvarint())
	for i := range subjects {
		if v2 {
			subjects[i] = eventvault.Pseudonym(hex.EncodeToString(r.next(pseudonymLen)))
		} else {
			subjects[i] = eventvault.Pseudonym(r.bytes())
		}
	}
	out := make([]manifestEntry, r.uvarint())
	for i := range out {
		si := r.uvarint()
		e := manifestEntry{Pointer: r.bytes(), subjectIndex: si}
		if !v2 {
			e.Token = r.bytes()
		}
		if r.err != nil || si >= len(subjects) || len(r.b) == 0 || int(r.b[0]) >= len(manifestClasses) {
			return nil, nil, errManifest
		}
		e.Subject, e.Class = subjects[si], manifestClasses[r.b[0]]
		r.b = r.b[1:]
		e.Offset = r.offset()
		if v2 {
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
