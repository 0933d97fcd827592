package eventvault

import (
	"crypto/subtle"
	"fmt"

	"github.com/google/uuid"
)

// PriorEvent is an event of an append's batch that the store holds already,
// found by its id anywhere in the tenant.
type PriorEvent struct {
	Stream         StreamName
	Position       int64
	GlobalPosition int64
	// ContentMAC is the MAC stored with the event. A store may leave it nil
	// for an event of another stream: Replay never compares it.
	ContentMAC []byte
}

// Replay decides an append some of whose event ids the store holds already;
// every store calls it, so a retry means the same on each. prior holds what
// the store found for the batch's ids in the whole tenant, looked up while
// the append holds the stream's lock; an id the store does not hold is
// absent.
//
// The rule: a batch is a replay when every one of its ids is stored in
// req.Stream with the same content MAC, whatever the order of the batch and
// whichever earlier appends stored them. So a retry of a batch in its
// original order, in another order, or of only some of its events (a
// strict subset) is a replay of those events: nothing is written, and the
// result holds the original positions in the order of the request, Version
// the highest of them, and Replayed set. The expected version is not
// checked: the append it retries checked it.
//
// ok is false, with no error, when the store holds none of the ids (a new
// append). Anything else is ECONFLICT, checked in this order:
//   - an id stored in another stream; the message does not name that
//     stream, which the caller may not be allowed to know exists;
//   - an id stored in this stream with another content MAC;
//   - a batch that mixes stored ids and new ones.
//
// MACs are compared in constant time. op names the store method that calls
// Replay; it becomes the Op of the error.
func Replay(op string, req AppendRequest, prior map[uuid.UUID]PriorEvent) (res AppendResult, ok bool, err error) {
	if len(prior) == 0 {
		return AppendResult{}, false, nil
	}
	res = AppendResult{Stream: req.Stream, Events: make([]Positions, 0, len(req.Events)), Version: NoStream, Replayed: true}
	var firstNew uuid.UUID
	for _, e := range req.Events {
		p, stored := prior[e.ID]
		switch {
		case !stored:
			if firstNew == uuid.Nil {
				firstNew = e.ID
			}
			continue
		case p.Stream != req.Stream:
			return AppendResult{}, false, &Error{
				Code: ECONFLICT, Op: op,
				Message: fmt.Sprintf("event id %s is already used by another stream; choose a new id for a new event", e.ID),
				Fields:  map[string]any{"event_id": e.ID.String()},
			}
		case subtle.ConstantTimeCompare(p.ContentMAC, e.ContentMAC) != 1:
			return AppendResult{}, false, &Error{
				Code: ECONFLICT, Op: op,
				Message: fmt.Sprintf("event %s was appended before with other content; an event id cannot be reused, choose a new id for a new event", e.ID),
				Fields:  map[string]any{"event_id": e.ID.String()},
			}
		}
		res.Events = append(res.Events, Positions{Position: p.Position, GlobalPosition: p.GlobalPosition})
		res.Version = max(res.Version, p.Position)
	}
	switch {
	case len(res.Events) == 0:
		return AppendResult{}, false, nil
	case firstNew != uuid.Nil:
		return AppendResult{}, false, &Error{
			Code: ECONFLICT, Op: op,
			Message: fmt.Sprintf("%d of the batch's %d events were appended before, and event %s was not: retry only events appended before, or give new events new ids in a batch of their own",
				len(res.Events), len(req.Events), firstNew),
			Fields: map[string]any{"event_id": firstNew.String()},
		}
	}
	return res, true, nil
}
