package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/elnormous/contenttype"
	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// EventStreamContentType is the feed's media type: Server-Sent Events
// (HTML Living Standard, section 9.2).
const EventStreamContentType = "text/event-stream"

// The representations a route answers in, the default first: what a
// request without Accept, or with */*, gets. A route not in routeOffers
// answers in JSON alone.
var (
	jsonOffers = offers("application/json")
	// eventPageOffers are the event reads': the JSON page, then the bulk
	// encodings (eventframes.go, eventjson.go).
	eventPageOffers = offerSet{offers("application/json", FramesContentType, NDJSONContentType), ""}
	routeOffers     = map[string]offerSet{
		"GET /v1/streams/:stream/events":  eventPageOffers,
		"HEAD /v1/streams/:stream/events": eventPageOffers,
		"GET /v1/events":                  eventPageOffers,
		"HEAD /v1/events":                 eventPageOffers,
		"GET /v1/subscribe": {offers(EventStreamContentType),
			"the feed streams Server-Sent Events; a JSON page that waits for the next event is GET /v1/events?from=N&wait=30"},
	}
)

// offerSet is what a route answers in, and a hint for the 406 that says
// where else to find it.
type offerSet struct {
	types []contenttype.MediaType
	hint  string
}

// offers returns the media types a route answers in, each also with
// charset=utf-8, which some clients put in Accept; the charset-free one
// comes first.
func offers(types ...string) []contenttype.MediaType {
	out := make([]contenttype.MediaType, 0, 2*len(types))
	for _, t := range types {
		out = append(out, contenttype.NewMediaType(t))
	}
	for _, t := range types {
		out = append(out, contenttype.NewMediaType(t+";charset=utf-8"))
	}
	return out
}

// mediaKey is the gin context key of the media type negotiate chose.
const mediaKey = "eventvault.media"

// negotiate chooses the representation of a route's answer from the
// request's Accept (RFC 9110, section 12.5.1), among what the route
// answers in (routeOffers): the acceptable media type of highest weight
// (q=0 refuses one; equal weights go to the one Accept lists first), the
// first offer when there is no Accept. An Accept that names none of them
// is 406, a problem that lists what the route answers in; one that does
// not parse is disregarded, as the RFC allows. A path no route has is left
// to its 404. Problems are application/problem+json whatever Accept says.
func negotiate(c *gin.Context) {
	accept := c.Request.Header.Values("Accept")
	if len(accept) == 0 || c.FullPath() == "" {
		return
	}
	set, ok := routeOffers[c.Request.Method+" "+c.FullPath()]
	if !ok {
		set.types = jsonOffers
	}
	mt, _, err := contenttype.GetAcceptableMediaTypeFromHeader(strings.Join(accept, ","), set.types)
	switch {
	case err == nil:
		c.Set(mediaKey, mt.MIME())
	case errors.Is(err, contenttype.ErrNoAcceptableTypeFound):
		names := make([]string, 0, len(set.types)/2)
		for _, o := range set.types[:len(set.types)/2] {
			names = append(names, o.MIME())
		}
		detail := "Accept names no media type this endpoint answers in: it answers in " + strings.Join(names, ", ") + "; list one of them in Accept, or leave Accept out"
		if set.hint != "" {
			detail += " (" + set.hint + ")"
		}
		writeProblem(c, http.StatusNotAcceptable, eventvault.EINVALID, detail, map[string]any{"available": names})
	}
}

// negotiated returns the media type negotiate chose for the request:
// the route's first offer when Accept is absent or disregarded.
func negotiated(c *gin.Context) string {
	if mt := c.GetString(mediaKey); mt != "" {
		return mt
	}
	return "application/json"
}
