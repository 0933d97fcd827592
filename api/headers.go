package api

import (
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// singletonHeaders are the request header fields the server reads as one
// value. Given twice, a gateway and this server may each honour another
// one (the first Authorization, the last Content-Type), so a repeated one
// is refused rather than picked. net/http itself refuses two Host fields
// and two Content-Length fields that differ, and merges identical
// Content-Length fields into one.
var singletonHeaders = []string{"Authorization", "Content-Type", "Content-Encoding", "Content-Length", "X-Request-Id"}

// oneOfEach answers 400 to a request that repeats a singleton header,
// before anything else reads it. It names the header, never its values.
func oneOfEach(c *gin.Context) {
	for _, name := range singletonHeaders {
		if n := len(c.Request.Header.Values(name)); n > 1 {
			writeProblem(c, http.StatusBadRequest, eventvault.EINVALID, fmt.Sprintf("header %s is given %d times: send it once", name, n), nil)
			return
		}
	}
	c.Next()
}

// takesNoBody refuses a request body on an endpoint that takes none
// (GET, HEAD, and DELETE of a stream), rather than ignore it: a body that
// is ignored reads as options that were applied (DELETE /v1/streams/x with
// {"purge": true} would shred without purging). A body is there if
// Content-Length is above 0, or if a chunked body holds a byte. hint, if
// not empty, is added to the problem.
func takesNoBody(hint string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if hasBody(c.Request) {
			detail := "this endpoint takes no body: send the request without one"
			if hint != "" {
				detail += "; " + hint
			}
			writeProblem(c, http.StatusBadRequest, eventvault.EINVALID, detail, nil)
			return
		}
		c.Next()
	}
}

func hasBody(r *http.Request) bool {
	if r.ContentLength > 0 {
		return true
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	// Unknown length (chunked): read one byte.
	var b [1]byte
	n, _ := io.ReadAtLeast(r.Body, b[:], 1)
	return n > 0
}
