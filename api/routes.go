package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// get serves h for GET and HEAD on path (RFC 9110, section 9.3.2: HEAD is
// GET without the body), taking the query parameters named in query and
// no body; h are the route's handlers, in order.
func get(g *gin.RouterGroup, path string, query []string, h ...gin.HandlerFunc) {
	hs := append([]gin.HandlerFunc{onlyQuery(query...), takesNoBody("")}, h...)
	g.GET(path, hs...)
	g.HEAD(path, hs...)
}

// onlyQuery refuses a query string that is malformed, names a parameter
// the endpoint does not take, or names one twice: a parameter that is
// ignored (GET /v1/events?subject=x) reads as a filter that was applied.
// It names the parameter, never its value, and an unknown one only if
// safeParamName.
func onlyQuery(allowed ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		values, err := url.ParseQuery(c.Request.URL.RawQuery)
		if err != nil {
			writeProblem(c, http.StatusBadRequest, eventvault.EINVALID, "the query string is malformed: percent-encode its names and values", nil)
			return
		}
		for _, name := range slices.Sorted(maps.Keys(values)) {
			if !slices.Contains(allowed, name) {
				takes := "takes no query parameters"
				if len(allowed) > 0 {
					takes = "takes only " + strings.Join(allowed, ", ")
				}
				unknown := "an unknown query parameter"
				if safeParamName(name) {
					unknown = fmt.Sprintf("unknown query parameter %q", name)
				}
				writeProblem(c, http.StatusBadRequest, eventvault.EINVALID, fmt.Sprintf("%s: this endpoint %s", unknown, takes), nil)
				return
			}
			if n := len(values[name]); n > 1 {
				writeProblem(c, http.StatusBadRequest, eventvault.EINVALID, fmt.Sprintf("query parameter %q is given %d times: give it once", name, n), nil)
				return
			}
		}
		c.Next()
	}
}

// safeParamName reports whether an unknown query parameter's name may be
// echoed: a short identifier (an ASCII letter, then letters, digits and
// '_', at most 20 bytes), the shape of every parameter the API
// takes. Anything else ("?customer-secret-6", "?alice@example.com") may
// be a value sent without a name, and is called "an unknown query
// parameter".
func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func safeParamName(name string) bool {
	if name == "" || len(name) > 20 || !isLetter(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; !(isLetter(b) || b >= '0' && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}

// noRouteDetail says what to do about a path no endpoint has, without
// echoing it: a near-miss path may hold a subject id.
func noRouteDetail(path string) string {
	if strings.HasPrefix(path, "/v1/subjects/") {
		return "no endpoint has this path: a subject id never goes in a path; place and lift legal holds with PUT and DELETE /v1/holds and {\"subject\": ...} in the body"
	}
	return "no endpoint has this path (paths take no trailing slash): the endpoints are listed at GET /v1/openapi.json"
}

// headWithoutBody makes a HEAD answer a GET's status and headers without
// its body: net/http drops the body of a HEAD answer on the wire, but the
// handler's writer is also used without net/http (in tests, behind other
// handlers). Both GET and HEAD answers carry Content-Length: every answer
// of theirs is written in one Write (c.JSON, c.Data), so its length is
// known there; without it net/http would send it for a small GET answer
// and not for the HEAD, whose body it never sees.
func headWithoutBody(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodHead:
		c.Writer = headWriter{c.Writer}
	case http.MethodGet:
		c.Writer = lengthWriter{c.Writer}
	}
	c.Next()
}

// setLength sets Content-Length to n before the first write of an answer
// that has none.
func setLength(w gin.ResponseWriter, n int) {
	if !w.Written() && w.Header().Get("Content-Length") == "" {
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
}

type headWriter struct{ gin.ResponseWriter }

func (w headWriter) Write(b []byte) (int, error) {
	setLength(w.ResponseWriter, len(b))
	w.WriteHeaderNow()
	return len(b), nil
}

func (w headWriter) WriteString(s string) (int, error) {
	setLength(w.ResponseWriter, len(s))
	w.WriteHeaderNow()
	return len(s), nil
}

type lengthWriter struct{ gin.ResponseWriter }

func (w lengthWriter) Write(b []byte) (int, error) {
	setLength(w.ResponseWriter, len(b))
	return w.ResponseWriter.Write(b)
}

func (w lengthWriter) WriteString(s string) (int, error) {
	setLength(w.ResponseWriter, len(s))
	return w.ResponseWriter.WriteString(s)
}

// streamParam returns the path's stream name, checked. The problem for an
// invalid one does not echo it: a path that is not a stream name may be a
// near miss that holds a subject id.
func streamParam(c *gin.Context) (eventvault.StreamName, error) {
	stream := eventvault.StreamName(c.Param("stream"))
	if err := eventvault.ValidateStream(stream); err != nil {
		if len(stream) > eventvault.MaxStreamNameLength {
			return "", err // says the length only
		}
		return "", &eventvault.Error{Code: eventvault.EINVALID, Err: err,
			Message: "invalid stream name: use category-id, such as order-42 (category: letters, digits, '_'; id: letters, digits, '_', '.', ':', '-')"}
	}
	return stream, nil
}
