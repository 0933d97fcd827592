package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

type allResponse struct {
	Events []eventOut `json:"events"`
	// Next is the from of the following page: the global position after
	// the last event returned, or from itself when the page was empty.
	Next int64 `json:"next"`
}

// readAll reads the tenant's events in global order: ?from=&limit=.
// Paging with next never skips an event that commits later.
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
	events, err := s.engine.ReadAll(c.Request.Context(), principal(c), from, limit)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := allResponse{Events: make([]eventOut, len(events)), Next: from}
	for i, e := range events {
		out.Events[i] = toEventOut(e)
		out.Next = e.GlobalPosition + 1
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}
