package api

import (
	"time"

	"github.com/gin-gonic/gin"
)

// Metrics is what the API reports as it serves: metrics.Registry
// implements it. Routes are gin's templates (c.FullPath()), never a raw
// path, which may hold a subject id or a stream name.
type Metrics interface {
	// ObserveRequest counts one answered request and its duration.
	ObserveRequest(method, route string, status int, d time.Duration)
	// EventsAppended counts events a request appended (not replays).
	EventsAppended(n int)
	// EventsRead counts events a read returned.
	EventsRead(n int)
}

// noMetrics is the Metrics of a server configured without.
type noMetrics struct{}

func (noMetrics) ObserveRequest(string, string, int, time.Duration) {}
func (noMetrics) EventsAppended(int)                                {}
func (noMetrics) EventsRead(int)                                    {}

// observe counts every request by method, route template and status, with
// its duration. A path no route matches counts as "(no route)", and an
// unknown method as "OTHER", so that neither label grows with what
// clients send.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "(no route)"
	}
	s.metrics.ObserveRequest(metricMethod(c.Request.Method), route, c.Writer.Status(), time.Since(start))
}

// metricMethod is method if it is one the API serves, else "OTHER".
func metricMethod(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE":
		return method
	}
	return "OTHER"
}
