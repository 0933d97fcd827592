package engine

import (
	"encoding/binary"
	"errors"

	"github.com/eventvault/eventvault"
)

// An event's manifest of personal values, sealed with its data under the
// stream key (crypto: the event plaintext's flagPII): which values of the
// data are tokens, and whose. Only the vault writes it, so a token-shaped
// string a client puts in its data is never taken for a token. Binary, as
// a read parses one per marked event:
//
//	version (1 byte, 1)
//	uvarint(number of subjects), then each: uvarint(len) || pseudonym
//	uvarint(number of values), then each:
//	    uvarint(subject index) || uvarint(len) || pointer || uvarint(len) || token || class (1 byte) || uvarint(offset)
//
// class is 0 for none, then email, phone, address, free_text; offset is
// where the token's JSON string (its opening quote) starts in the sealed
// data, so that a read finds it without parsing the data.

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

const manifestVersion = 1

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

// encodeManifest writes entries in the format above.
func encodeManifest(entries []manifestEntry) []byte {
	var subjects []eventvault.Pseudonym
	index := map[eventvault.Pseudonym]int{}
	for _, e := range entries {
		if _, ok := index[e.Subject]; !ok {
			index[e.Subject] = len(subjects)
			subjects = append(subjects, e.Subject)
		}
	}
	b := []byte{manifestVersion}
	b = binary.AppendUvarint(b, uint64(len(subjects)))
	for _, s := range subjects {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(index[e.Subject]))
		b = binary.AppendUvarint(b, uint64(len(e.Pointer)))
		b = append(b, e.Pointer...)
		b = binary.AppendUvarint(b, uint64(len(e.Token)))
		b = append(b, e.Token...)
		b = append(b, classByte(e.Class))
		b = binary.AppendUvarint(b, uint64(e.Offset))
	}
	return b
}

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

func (r *manifestReader) bytes() string {
	n := r.uvarint()
	if n > len(r.b) {
		r.err, r.b = errManifest, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeManifest reads a manifest: its subjects and its entries, in order.
func decodeManifest(m []byte) ([]eventvault.Pseudonym, []manifestEntry, error) {
	if len(m) == 0 || m[0] != manifestVersion {
		return nil, nil, errManifest
	}
	r := manifestReader{b: m[1:]}
	subjects := make([]eventvault.Pseudonym, r.uvarint())
	for i := range subjects {
		subjects[i] = eventvault.Pseudonym(r.bytes())
	}
	out := make([]manifestEntry, r.uvarint())
	for i := range out {
		si := r.uvarint()
		e := manifestEntry{Pointer: r.bytes(), Token: r.bytes(), subjectIndex: si}
		if r.err != nil || si >= len(subjects) || len(r.b) == 0 || int(r.b[0]) >= len(manifestClasses) {
			return nil, nil, errManifest
		}
		e.Subject, e.Class = subjects[si], manifestClasses[r.b[0]]
		r.b = r.b[1:]
		e.Offset = r.offset()
		out[i] = e
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, nil, errManifest
	}
	return subjects, out, nil
}
