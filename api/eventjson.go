package api

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// The read responses are written by hand rather than by encoding/json,
// which would validate and compact every event's data and metadata again
// (they are json.RawMessage) on every read: most of a read's server CPU.
// They need neither: the API compacts them on append (compactJSON), the
// engine only ever stores what it was given, and the AEAD authenticates
// them on read. The writer produces byte for byte what encoding/json
// produced for these responses, escaping included (eventjson_test.go
// holds the two side by side, and a fuzz target compares them):
//
//	event:  {"id":…,"stream":…,"type":…,"position":N,"global_position":N,
//	         "recorded_at":"RFC 3339 with nanoseconds, UTC",
//	         "data":…,"metadata":…,"erased":true}
//	        data and metadata are left out when empty, erased when false
//	stream: {"stream":…,"version":N,"direction":…,"events":[…],"next":N}
//	        next is left out at the end of the stream
//	all:    {"events":[…],"next":N}

// jsonContentType is what gin's c.JSON sends, and so what the read
// responses have always had.
const jsonContentType = "application/json; charset=utf-8"

// maxPooledBody is the largest buffer given back to the pool: a full page
// of large events is rendered into a fresh one and then dropped, so that
// one big read does not pin its memory.
const maxPooledBody = 4 << 20

// bodyPool lends the buffers read responses are rendered into. Its zero
// value is ready to use.
type bodyPool struct{ pool sync.Pool }

func (p *bodyPool) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 32<<10)
	return &b
}

func (p *bodyPool) put(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		p.pool.Put(b)
	}
}

// writeEvents renders a read response with render into a pooled buffer and
// sends it with status 200, or sends the problem if rendering failed.
func (s *Server) writeEvents(c *gin.Context, render func([]byte) ([]byte, error)) {
	buf := s.bodies.get()
	defer s.bodies.put(buf)
	body, err := render(*buf)
	if err != nil {
		s.writeError(c, fmt.Errorf("render the events: %w", err))
		return
	}
	*buf = body
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.Data(http.StatusOK, jsonContentType, body)
}

// appendStreamJSON appends the response to a stream read.
func appendStreamJSON(b []byte, stream eventvault.StreamName, version int64, direction string, events []eventvault.Event, next *int64) ([]byte, error) {
	b = append(b, `{"stream":`...)
	b = appendString(b, string(stream))
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `,"direction":`...)
	b = appendString(b, direction)
	b = append(b, `,"events":`...)
	b, err := appendEventList(b, events)
	if err != nil {
		return b, err
	}
	if next != nil {
		b = append(b, `,"next":`...)
		b = strconv.AppendInt(b, *next, 10)
	}
	return append(b, '}'), nil
}

// appendAllJSON appends the response to a read of all events.
func appendAllJSON(b []byte, events []eventvault.Event, next int64) ([]byte, error) {
	b = append(b, `{"events":`...)
	b, err := appendEventList(b, events)
	if err != nil {
		return b, err
	}
	b = append(b, `,"next":`...)
	b = strconv.AppendInt(b, next, 10)
	return append(b, '}'), nil
}

// appendEventList appends events as a JSON array.
func appendEventList(b []byte, events []eventvault.Event) ([]byte, error) {
	b = append(b, '[')
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendEvent(b, e); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendEvent appends one event as the API shows it.
func appendEvent(b []byte, e eventvault.Event) ([]byte, error) {
	b = append(b, `{"id":"`...)
	b = appendUUID(b, e.ID)
	b = append(b, `","stream":`...)
	b = appendString(b, string(e.Stream))
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"position":`...)
	b = strconv.AppendInt(b, e.Position, 10)
	b = append(b, `,"global_position":`...)
	b = strconv.AppendInt(b, e.GlobalPosition, 10)
	b = append(b, `,"recorded_at":"`...)
	// AppendText is time.Time's MarshalJSON without the quotes; it fails,
	// as MarshalJSON does, for a year outside 0 to 9999.
	t, err := e.RecordedAt.UTC().AppendText(b)
	if err != nil {
		return b, fmt.Errorf("recorded_at of event %s: %w", e.ID, err)
	}
	b = append(t, '"')
	if len(e.Data) > 0 {
		b = append(b, `,"data":`...)
		b = appendRawJSON(b, e.Data)
	}
	if len(e.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendRawJSON(b, e.Metadata)
	}
	if e.Erased {
		b = append(b, `,"erased":true`...)
	}
	if len(e.PII) > 0 {
		b = append(b, `,"pii":`...)
		b = appendPII(b, e)
	}
	return append(b, '}'), nil
}

// appendPII appends an event's pii member: whose each value that its data
// shows is, {"<subject pseudonym>": ["<JSON Pointer>", …], …}; the one the
// engine rendered already if it did.
func appendPII(b []byte, e eventvault.Event) []byte {
	if e.PIIJSON != nil {
		return append(b, e.PIIJSON...)
	}
	return eventvault.AppendPIIMember(b, e.PII)
}

// appendUUID appends u in its canonical form, as uuid.UUID.String writes it.
func appendUUID(b []byte, u uuid.UUID) []byte {
	b = hex.AppendEncode(b, u[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, u[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, u[10:16])
}

// appendString appends s as a JSON string, as encoding/json writes one.
func appendString(b []byte, s string) []byte { return eventvault.AppendJSONString(b, s) }

// appendRawJSON appends v, compact JSON, as encoding/json renders a
// json.RawMessage: verbatim, except that '<', '>', '&', U+2028 and U+2029
// are escaped (HTML-safe output). In valid JSON they occur only inside
// strings, so replacing them needs no parsing.
func appendRawJSON(b, v []byte) []byte {
	if bytes.IndexByte(v, '<') < 0 && bytes.IndexByte(v, '>') < 0 && bytes.IndexByte(v, '&') < 0 && bytes.IndexByte(v, 0xE2) < 0 {
		return append(b, v...)
	}
	const hexDigits = "0123456789abcdef"
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '<' || c == '>' || c == '&':
			b = append(b, v[start:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xA8:
			// U+2028 (E2 80 A8) and U+2029 (E2 80 A9).
			b = append(b, v[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[v[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

// NDJSONContentType is the bulk encoding of the read endpoints, chosen with
// Accept: one event per line, each as the JSON answer shows it, with the
// page's paging fields in headers (NextHeader, VersionHeader). A client
// decodes it line by line as it arrives, never holding the whole page.
const NDJSONContentType = "application/x-ndjson"

// Paging headers of an NDJSON read.
const (
	// NextHeader is the from of the following page: the JSON answer's
	// next. A stream read leaves it out at the end of the stream.
	NextHeader = "EventVault-Next"
	// VersionHeader is the stream's version on a stream read.
	VersionHeader = "EventVault-Stream-Version"
)
