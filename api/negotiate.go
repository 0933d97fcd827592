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
	jsonOffers = offers("", "application/json")
	// eventPageOffers are the event reads': the JSON page, then the bulk
	// encodings (eventframes.go, eventjson.go).
	eventPageOffers = offers("", "application/json", FramesContentType, NDJSONContentType)
	routeOffers     = map[routeKey]offerSet{
		{"GET", "/v1/streams/:stream/events"}:  eventPageOffers,
		{"HEAD", "/v1/streams/:stream/events"}: eventPageOffers,
		{"GET", "/v1/events"}:                  eventPageOffers,
		{"HEAD", "/v1/events"}:                 eventPageOffers,
		{"GET", "/v1/subscribe"}: offers("the feed streams Server-Sent Events; a JSON page that waits for the next event is GET /v1/events?from=N&wait=30",
			EventStreamContentType),
	}
)

// routeKey is a route: its method and gin's path template.
type routeKey struct{ method, path string }

// offerSet is what a route answers in: names, the media types, the default
// first; types, each of them and each again with charset=utf-8, which some
// clients put in Accept; and a hint for the 406 that says where else to
// find it.
type offerSet struct {
	names []string
	types []contenttype.MediaType
	hint  string
}

func offers(hint string, names ...string) offerSet {
	set := offerSet{names: names, hint: hint}
	for _, t := range names {
		set.types = append(set.types, contenttype.NewMediaType(t))
	}
	for _, t := range names {
		set.types = append(set.types, contenttype.NewMediaType(t+";charset=utf-8"))
	}
	return set
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
	set, routed := routeOffers[routeKey{c.Request.Method, c.FullPath()}]
	if !routed {
		set = jsonOffers
	}
	chosen := set.names[0]
	// What most clients send ("*/*", or the default itself) takes the
	// default without a parse.
	if len(accept) != 1 || (accept[0] != "*/*" && accept[0] != chosen) {
		mt, _, err := contenttype.GetAcceptableMediaTypeFromHeader(strings.Join(accept, ","), set.types)
		switch {
		case err == nil:
			chosen = mt.MIME()
		case errors.Is(err, contenttype.ErrNoAcceptableTypeFound):
			detail := "Accept names no media type this endpoint answers in: it answers in " + strings.Join(set.names, ", ") + "; list one of them in Accept, or leave Accept out"
			if set.hint != "" {
				detail += " (" + set.hint + ")"
			}
			writeProblem(c, http.StatusNotAcceptable, eventvault.EINVALID, detail, map[string]any{"available": set.names})
			return
		}
	}
	if routed {
		// Only a route of its own offers reads the choice (negotiated).
		c.Set(mediaKey, chosen)
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
