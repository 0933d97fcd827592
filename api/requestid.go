package api

import (
	"context"
	"regexp"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// RequestIDHeader carries the id of a request, in both directions: a
// client may send its own (a short token of safe characters), or the
// server makes one. The answer always carries it, and so do the access log
// record and every problem body the router writes (member
// http_request_id), so that a client's report can be found in the log.
const RequestIDHeader = "X-Request-Id"

// requestIDRE is what a client's request id may be: short, and of
// characters that need no escaping in a log line, a header or JSON.
var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

const requestIDKey = "eventvault.request_id"

// setRequestID takes the client's X-Request-Id when it is a safe token,
// else makes a random one, and puts it in the answer's header, the gin
// context and the request's context.
func setRequestID(c *gin.Context) string {
	id := c.GetHeader(RequestIDHeader)
	if !requestIDRE.MatchString(id) {
		id = uuid.NewString()
	}
	c.Set(requestIDKey, id)
	c.Header(RequestIDHeader, id)
	c.Request = c.Request.WithContext(eventvault.WithRequestID(c.Request.Context(), id))
	return id
}

// requestIDOf returns the id setRequestID gave the request, or "".
func requestIDOf(c *gin.Context) string {
	id, _ := c.Get(requestIDKey)
	s, _ := id.(string)
	return s
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string { return eventvault.RequestIDFrom(ctx) }
