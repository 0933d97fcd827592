package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// FramesContentType is the binary bulk encoding of the read endpoints,
// chosen with Accept: each event one length-prefixed frame, so that a
// client reads a page without parsing its data, as a database driver reads
// rows. The paging fields are headers, as for NDJSON. Integers are
// big-endian; a frame is
//
//	u32 length of the rest of the frame
//	16  id (the UUID's bytes)
//	i64 position, i64 global position, i64 recorded_at (Unix nanoseconds, UTC)
//	u8  flags: 1 erased (then data and metadata are empty)
//	u16 length, stream name
//	u16 length, type
//	u32 length, data (compact JSON as stored; empty for none)
//	u32 length, metadata (compact JSON as stored; empty for none)
//	u32 length, pii (whose each personal value shown is, as the JSON
//	    answer's "pii" member; empty for none; absent from frames written
//	    before it was added)
//
// Data and metadata are the bytes the JSON answer shows, without its
// HTML escaping. A reader must skip bytes past the fields it knows at the
// end of a frame: later versions may add fields there.
const FramesContentType = "application/vnd.eventvault.frames"

// frameFixed is the size of a frame's fixed fields after its length.
const frameFixed = 16 + 8*3 + 1

// bulkEncoding is the encoding a read answers in, as negotiate chose it:
// FramesContentType or NDJSONContentType, "" for JSON.
func bulkEncoding(c *gin.Context) string {
	if mt := negotiated(c); mt == FramesContentType || mt == NDJSONContentType {
		return mt
	}
	return ""
}

// appendFrame appends one event as a frame.
func appendFrame(b []byte, e eventvault.Event) ([]byte, error) {
	if len(e.Stream) > math.MaxUint16 || len(e.Type) > math.MaxUint16 || len(e.Data) > math.MaxUint32-frameFixed || len(e.Metadata) > math.MaxUint32-frameFixed {
		return b, fmt.Errorf("event %s does not fit a frame", e.ID)
	}
	at := e.RecordedAt.UTC()
	if at.Year() < 1678 || at.Year() > 2261 {
		return b, fmt.Errorf("recorded_at of event %s is outside what a frame holds", e.ID)
	}
	n := frameFixed + 2 + len(e.Stream) + 2 + len(e.Type) + 4 + len(e.Data) + 4 + len(e.Metadata) + 4
	if uint64(n) > math.MaxUint32 {
		return b, fmt.Errorf("event %s does not fit a frame", e.ID)
	}
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, 0) // the length, set at the end
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Position))
	b = binary.BigEndian.AppendUint64(b, uint64(e.GlobalPosition))
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	var flags byte
	if e.Erased {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Stream)))
	b = append(b, e.Stream...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	b = append(b, e.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Metadata)))
	b = append(b, e.Metadata...)
	piiAt := len(b)
	b = binary.BigEndian.AppendUint32(b, 0)
	if len(e.PII) > 0 {
		b = appendPII(b, e)
		binary.BigEndian.PutUint32(b[piiAt:], uint32(len(b)-piiAt-4))
	}
	if uint64(len(b)-start-4) > math.MaxUint32 {
		return b[:start], fmt.Errorf("event %s does not fit a frame", e.ID)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// FrameEvent is one decoded frame. Data and Metadata alias the frame
// passed to ParseFrame.
type FrameEvent struct {
	ID             [16]byte
	Position       int64
	GlobalPosition int64
	RecordedAt     time.Time
	Erased         bool
	Stream, Type   string
	Data, Metadata []byte
	// PII is the frame's pii field (a JSON object), or nil.
	PII []byte
}

// errShortFrame is a frame that ends inside a field.
var errShortFrame = errors.New("frame ends inside a field")

// ParseFrame decodes a frame's body, the bytes after its length. Bytes past
// the known fields are skipped.
func ParseFrame(f []byte) (FrameEvent, error) {
	var e FrameEvent
	if len(f) < frameFixed {
		return e, errShortFrame
	}
	copy(e.ID[:], f)
	e.Position = int64(binary.BigEndian.Uint64(f[16:]))
	e.GlobalPosition = int64(binary.BigEndian.Uint64(f[24:]))
	e.RecordedAt = time.Unix(0, int64(binary.BigEndian.Uint64(f[32:]))).UTC()
	e.Erased = f[40]&1 != 0
	f = f[frameFixed:]
	var s, t []byte
	var ok bool
	if s, f, ok = cutField(f, 2); !ok {
		return e, errShortFrame
	}
	if t, f, ok = cutField(f, 2); !ok {
		return e, errShortFrame
	}
	if e.Data, f, ok = cutField(f, 4); !ok {
		return e, errShortFrame
	}
	if e.Metadata, f, ok = cutField(f, 4); !ok {
		return e, errShortFrame
	}
	if len(f) > 0 { // frames written before the field have none
		if e.PII, _, ok = cutField(f, 4); !ok {
			return e, errShortFrame
		}
		if len(e.PII) == 0 {
			e.PII = nil
		}
	}
	e.Stream, e.Type = string(s), string(t)
	return e, nil
}

// cutField cuts a field with a 2- or 4-byte length off f.
func cutField(f []byte, size int) (field, rest []byte, ok bool) {
	if len(f) < size {
		return nil, f, false
	}
	var n uint64
	if size == 2 {
		n = uint64(binary.BigEndian.Uint16(f))
	} else {
		n = uint64(binary.BigEndian.Uint32(f))
	}
	f = f[size:]
	if uint64(len(f)) < n {
		return nil, f, false
	}
	return f[:n:n], f[n:], true
}

// writeEventBulk sends events in encoding (FramesContentType or
// NDJSONContentType) with status 200 and the paging headers given (version
// below NoStream leaves VersionHeader out, next nil NextHeader). The page is
// rendered into a pooled buffer and written at once with its length, as
// the JSON answer is (see headWithoutBody).
func (s *Server) writeEventBulk(c *gin.Context, encoding string, events []eventvault.Event, version int64, next *int64) {
	buf := s.bodies.get()
	defer s.bodies.put(buf)
	b := *buf
	if encoding == FramesContentType {
		// The page's size, so that the buffer grows once, not by doubling.
		need := 0
		for i := range events {
			need += 4 + frameFixed + 2 + len(events[i].Stream) + 2 + len(events[i].Type) + 4 + len(events[i].Data) + 4 + len(events[i].Metadata) + 4
		}
		b = slices.Grow(b, need)
	}
	for _, e := range events {
		var err error
		if encoding == FramesContentType {
			b, err = appendFrame(b, e)
		} else {
			b, err = appendEvent(b, e)
			b = append(b, '\n')
		}
		if err != nil {
			s.writeError(c, fmt.Errorf("render the events: %w", err))
			return
		}
	}
	*buf = b
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if version >= eventvault.NoStream {
		h.Set(VersionHeader, strconv.FormatInt(version, 10))
	}
	if next != nil {
		h.Set(NextHeader, strconv.FormatInt(*next, 10))
	}
	c.Data(http.StatusOK, encoding, b)
}
