package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// healthz reports that the process serves HTTP.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz reports whether the store answers within two seconds.
func (s *Server) readyz(c *gin.Context) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.writeError(c, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "the store is not reachable", Err: err})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
