package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// appendRequest is the body of POST /v1/streams/{stream}/events.
type appendRequest struct {
	ExpectedVersion json.RawMessage `json:"expected_version"`
	// Subject names the data subject who owns the stream; erasing the
	// subject shreds it. Kept only as a pseudonym. A pointer, so that a
	// subject given empty (an application's unset variable) is refused
	// rather than read as "no owner".
	Subject *string   `json:"subject"`
	Events  []eventIn `json:"events"`
}

type eventIn struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
	// PII marks values of data as personal: JSON Pointer (RFC 6901) into
	// data → whose value it is and its class (docs/pii.md).
	PII map[string]piiMarkIn `json:"pii"`
}

type piiMarkIn struct {
	Subject string `json:"subject"`
	Class   string `json:"class"`
}

// ObjectShape says what a mark holds, in the problem for a mark that is
// not an object (null included).
func (piiMarkIn) ObjectShape() string { return `{"subject": ..., "class": ...}` }

type appendResponse struct {
	Stream   string          `json:"stream"`
	Version  int64           `json:"version"`
	Replayed bool            `json:"replayed"`
	Events   []appendedEvent `json:"events"`
}

type appendedEvent struct {
	ID string `json:"id"`
	eventvault.Positions
}

// appendEvents appends a batch: 201 with the positions written, or 200 with
// the original positions when the same batch was appended before.
func (s *Server) appendEvents(c *gin.Context) {
	stream, err := streamParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var req appendRequest
	if err := decodeBody(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	expected, err := parseExpectedVersion(req.ExpectedVersion)
	if err != nil {
		s.writeError(c, eventvault.AtPointer(err, "/expected_version"))
		return
	}
	if req.Events == nil {
		s.writeError(c, eventvault.FieldErrorf("/events", "events is missing: send {\"events\": [{\"id\": ..., \"type\": ..., \"data\": ...}]}"))
		return
	}
	events, err := newEvents(req.Events)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var subject string
	if req.Subject != nil {
		if err := eventvault.ValidateNewSubject(*req.Subject); err != nil {
			s.writeError(c, eventvault.AtPointer(err, "/subject"))
			return
		}
		subject = *req.Subject
	}
	res, err := s.events.AppendForSubject(c.Request.Context(), principal(c), stream, subject, expected, events)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := appendResponse{Stream: string(stream), Version: res.Version, Replayed: res.Replayed, Events: make([]appendedEvent, len(res.Events))}
	for i, p := range res.Events {
		out.Events[i] = appendedEvent{ID: events[i].ID.String(), Positions: p}
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	} else {
		s.metrics.EventsAppended(len(res.Events))
	}
	c.JSON(status, out)
}

// newEvents turns the decoded events into the engine's, which checks the
// batch (size, types, JSON) and compacts data and metadata.
func newEvents(in []eventIn) ([]eventvault.NewEvent, error) {
	out := make([]eventvault.NewEvent, len(in))
	for i, e := range in {
		if e.ID == "" {
			return nil, eventvault.FieldErrorf(fmt.Sprintf("/events/%d/id", i), "events[%d].id is missing: give every event a UUID of your choice, which makes retries idempotent", i)
		}
		id, err := uuid.Parse(e.ID)
		if err != nil || len(e.ID) != 36 {
			return nil, eventvault.FieldErrorf(fmt.Sprintf("/events/%d/id", i), "events[%d].id (at /events/%d/id) is not a UUID such as 3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55", i, i)
		}
		out[i] = eventvault.NewEvent{ID: id, Type: e.Type, Data: jsonValue(e.Data), Metadata: jsonValue(e.Metadata)}
		for _, ptr := range slices.Sorted(maps.Keys(e.PII)) {
			m := e.PII[ptr]
			out[i].PII = append(out[i].PII, eventvault.PIIMark{Pointer: ptr, Subject: m.Subject, Class: eventvault.PIIClass(m.Class)})
		}
	}
	return out, nil
}

// jsonValue returns raw, or nil for an absent value or JSON null. The
// decoder has checked it is valid JSON.
func jsonValue(raw json.RawMessage) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	return raw
}

// readStream reads one stream: ?from=&limit=&direction=forward|backward.
// Forward reads start at 0 by default; backward reads at the last event.
func (s *Server) readStream(c *gin.Context) {
	stream, err := streamParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	direction := c.DefaultQuery("direction", "forward")
	if direction != "forward" && direction != "backward" {
		s.writeError(c, eventvault.Errorf(eventvault.EINVALID, "query parameter direction must be forward or backward"))
		return
	}
	backward := direction == "backward"
	def := int64(0)
	if backward {
		def = -1
	}
	from, err := queryIntOrMinusOne(c, "from", def)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit, err := queryLimit(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	slice, err := s.events.ReadStream(c.Request.Context(), principal(c), stream, eventvault.ReadOptions{From: from, Limit: limit, Backward: backward})
	if err != nil {
		s.writeError(c, err)
		return
	}
	// next is the from of the following page, absent at the end. A page
	// may hold fewer than limit events before the end (their payloads
	// reached eventvault.MaxPageBytes), so the end is the stream's first or
	// last position, not a short page.
	var next *int64
	if n := len(slice.Events); n > 0 {
		p := slice.Events[n-1].Position + 1
		if backward {
			p = slice.Events[n-1].Position - 1
		}
		if p >= 0 && p <= slice.Version {
			next = &p
		}
	}
	s.metrics.EventsRead(len(slice.Events))
	if enc := bulkEncoding(c); enc != "" {
		s.writeEventBulk(c, enc, slice.Events, slice.Version, next)
		return
	}
	s.writeEvents(c, func(b []byte) ([]byte, error) {
		return appendStreamJSON(b, stream, slice.Version, direction, slice.Events, next)
	})
}
