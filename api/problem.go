package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

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
	eventvault.EUNAVAILABLE:  http.StatusServiceUnavailable,
	eventvault.EINTERNAL:     http.StatusInternalServerError,
}

// ProblemContentType is the media type of every error body (RFC 9457).
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem body. Code is EventVault's stable error
// code; Fields adds members a client can act on, such as actual_version.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"`
	Code     string `json:"code"`
}

// writeError answers with the problem for err. Internal errors are logged
// with their cause and shown to the client only as "Internal error.".
func (s *Server) writeError(c *gin.Context, err error) {
	code := eventvault.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		s.logger.ErrorContext(c.Request.Context(), "request failed",
			slog.String("method", c.Request.Method), slog.String("route", c.FullPath()),
			slog.String("code", string(code)), slog.Any("err", err))
	}
	if code == eventvault.EUNAUTHORIZED {
		c.Header("WWW-Authenticate", `Bearer realm="eventvault"`)
	}
	if code == eventvault.EUNAVAILABLE {
		c.Header("Retry-After", "5")
	}
	writeProblem(c, status, code, eventvault.ErrorMessage(err), eventvault.ErrorFields(err))
}

func writeProblem(c *gin.Context, status int, code eventvault.Code, detail string, fields map[string]any) {
	body := map[string]any{
		"type":     "urn:eventvault:problem:" + code,
		"title":    http.StatusText(status),
		"status":   status,
		"detail":   detail,
		"instance": instance(c),
		"code":     code,
	}
	for k, v := range fields {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		b = []byte(`{"type":"urn:eventvault:problem:internal","title":"Internal Server Error","status":500,"detail":"Internal error.","code":"internal"}`)
		status = http.StatusInternalServerError
	}
	c.Abort()
	c.Data(status, ProblemContentType, b)
}

// instance is the request path, except on routes whose path holds a subject
// id: personal data is not echoed into bodies that proxies and clients log.
func instance(c *gin.Context) string {
	if strings.Contains(c.FullPath(), ":subject") {
		return c.FullPath()
	}
	return c.Request.URL.Path
}
