package api

import (
	"context"
	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// readAll reads the tenant's events in global order: ?from=&limit=&wait=.
// Paging with next never skips an event that commits later. With wait
// (seconds, 0 to 30), an empty page is held until an event commits or
// wait passes: the long-poll variant of the feed.
func (s *Server) readAll(c *gin.Context) {
	from, err := queryInt(c, "from", 0)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit, err := queryLimit(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	wait, err := queryWait(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// A shutdown cuts the wait short: the page is read again at once.
	wctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	defer context.AfterFunc(s.drain, cancel)()
	events, err := s.events.ReadAllWait(wctx, principal(c), from, limit, wait)
	if err != nil && s.drain.Err() != nil && c.Request.Context().Err() == nil {
		events, err = s.events.ReadAllWait(c.Request.Context(), principal(c), from, limit, 0)
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	// next is the from of the following page: the global position after
	// the last event returned, or from itself when the page was empty.
	next := from
	if n := len(events); n > 0 {
		next = events[n-1].GlobalPosition + 1
	}
	s.metrics.EventsRead(len(events))
	if enc := bulkEncoding(c); enc != "" {
		s.writeEventBulk(c, enc, events, eventvault.NoStream-1, &next)
		return
	}
	s.writeEvents(c, func(b []byte) ([]byte, error) {
		return appendAllJSON(b, events, next)
	})
}
