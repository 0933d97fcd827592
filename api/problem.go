package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[eventvault.Code]int{
	eventvault.EINVALID:      http.StatusBadRequest,
	eventvault.EUNAUTHORIZED: http.StatusUnauthorized,
	eventvault.EFORBIDDEN:    http.StatusForbidden,
	eventvault.ENOTFOUND:     http.StatusNotFound,
	eventvault.ECONFLICT:     http.StatusConflict,
	eventvault.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	eventvault.EERASED:       http.StatusGone,
	// Not erased by a request: this node's data is older than the root
	// key versions still in use (a backup restored after a crypto-period).
	eventvault.EKEYRETIRED:   http.StatusServiceUnavailable,
	eventvault.EUNAVAILABLE:  http.StatusServiceUnavailable,
	eventvault.EINTERNAL:     http.StatusInternalServerError,
	codeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	codeTooManyRequests:      http.StatusTooManyRequests,
}

// ProblemContentType is the media type of every error body (RFC 9457).
const ProblemContentType = "application/problem+json"

// writeError answers with the problem for err. Internal errors are logged
// with their cause and shown to the client only as "Internal error.".
func (s *Server) writeError(c *gin.Context, err error) {
	code := eventvault.ErrorCode(err)
	if code == eventvault.EINTERNAL && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The request's own context ended (its caller went away, or its
		// deadline under admission control passed) in a part that did
		// not say so with a code: not a bug, and not a 500.
		err = &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "the request's deadline passed, or its caller went away, before it was done; retry after the seconds in Retry-After", Err: err}
		code = eventvault.EUNAVAILABLE
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "request failed",
			slog.String("method", c.Request.Method), slog.String("route", c.FullPath()),
			slog.String("http_request_id", requestIDOf(c)),
			slog.String("code", string(code)), slog.Any("err", err))
	}
	if code == eventvault.EUNAUTHORIZED {
		c.Header("WWW-Authenticate", `Bearer realm="eventvault"`)
	}
	if (code == eventvault.EUNAUTHORIZED || code == eventvault.EFORBIDDEN) && s.denials != nil {
		// A 401 has no tenant: it goes to the deployment's log.
		p := principal(c)
		route := c.FullPath()
		if route == "" {
			route = "(no route)"
		}
		s.denials.Denied(p.Tenant, p.Actor(), "route:"+c.Request.Method+" "+route, string(code))
	}
	if code == eventvault.EUNAVAILABLE {
		c.Header("Retry-After", "5")
	}
	if code == codeUnsupportedMediaType {
		c.Header("Accept-Encoding", acceptedEncodings)
	}
	writeProblem(c, status, code, eventvault.ErrorMessage(err), eventvault.ErrorFields(err))
}

func writeProblem(c *gin.Context, status int, code eventvault.Code, detail string, fields map[string]any) {
	if id := requestIDOf(c); id != "" {
		with := make(map[string]any, len(fields)+1)
		for k, v := range fields {
			with[k] = v
		}
		with["http_request_id"] = id
		fields = with
	}
	body, status := problemBody(status, code, detail, fields)
	c.Abort()
	c.Data(status, ProblemContentType, body)
}

// problemBody renders an RFC 9457 problem: type, title, status, detail and
// EventVault's stable code, then fields a client can act on (such as
// actual_version), which never replace those five members. Every problem
// the server emits, in a handler or before the router, is rendered here.
// It returns the body and its status: 500 if fields did not marshal.
func problemBody(status int, code eventvault.Code, detail string, fields map[string]any) ([]byte, int) {
	body := map[string]any{
		"type":   "urn:eventvault:problem:" + code,
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
		"code":   code,
	}
	for k, v := range fields {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		// Fields are the core's own values (numbers, strings, times);
		// one that does not marshal is a bug, and the client is told only
		// that.
		return []byte(`{"type":"urn:eventvault:problem:internal","title":"Internal Server Error","status":500,"detail":"Internal error.","code":"internal"}`), http.StatusInternalServerError
	}
	return b, status
}
