package api

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// MaxHeaderBytes bounds a request's header fields (and request line): the
// server answers a larger request 431, as a problem. Set
// http.Server.MaxHeaderBytes to ServerMaxHeaderBytes, above it, so that
// the server's own check (a text/plain answer written before any handler)
// is a backstop that ProblemListener rewrites.
const MaxHeaderBytes = 64 << 10

// ServerMaxHeaderBytes is the http.Server.MaxHeaderBytes to serve with.
const ServerMaxHeaderBytes = 2 * MaxHeaderBytes

// headerLimit answers 431 to a request whose header is over MaxHeaderBytes.
func headerLimit(c *gin.Context) {
	r := c.Request
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	if n > MaxHeaderBytes {
		writeProblem(c, http.StatusRequestHeaderFieldsTooLarge, eventvault.ETOOLARGE, fmt.Sprintf("the request's header fields are larger than %d bytes: send fewer or smaller ones", MaxHeaderBytes), nil)
		return
	}
	c.Next()
}

// ProblemListener wraps l so that the answers net/http writes by itself,
// before any handler runs, are problem bodies too: 431 for a header over
// http.Server.MaxHeaderBytes, 400 for a request it cannot parse, 501 for
// an unknown transfer coding, and the 400 to an HTTP request sent to a TLS
// port. net/http writes each as one text/plain answer in one write, then
// closes the connection; the wrapper recognises exactly those writes and
// replaces them, and passes every other byte through. Wrap the listener
// beneath TLS (ServeTLS takes the wrapped one): under TLS net/http answers
// nothing in plain text but the last case, so headerLimit is what answers
// an oversized header with a problem there.
//
// Each such answer carries a request id, as every answer does: a new one
// (the request was not parsed, so a client's X-Request-Id is not read), in
// the X-Request-Id header and the body's http_request_id, and logged to
// logger (nil: not logged) with the status and code, never a byte of the
// request.
func ProblemListener(l net.Listener, logger *slog.Logger) net.Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return problemListener{l, logger}
}

type problemListener struct {
	net.Listener
	logger *slog.Logger
}

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c, logger: l.logger}, nil
}

type problemConn struct {
	net.Conn
	logger *slog.Logger
}

// The text/plain answers net/http writes before a handler runs
// (net/http/server.go, conn.serve).
var (
	plainErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	plainHTTPSError   = []byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
)

func (c *problemConn) Write(b []byte) (int, error) {
	if out, ok := rewriteServerError(b, c.logger); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite lets net/http half-close the connection after a 431, as it
// does on the bare TCP connection.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rewriteServerError returns the problem answer for one of net/http's own
// error answers, and false for any other bytes.
func rewriteServerError(b []byte, logger *slog.Logger) ([]byte, bool) {
	if bytes.Equal(b, plainHTTPSError) {
		return problemAnswer(http.StatusBadRequest, eventvault.EINVALID, "this port speaks HTTPS: send the request over TLS", logger), true
	}
	rest, ok := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' && rest[3] != '\r' {
		return nil, false
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil || status < 400 {
		return nil, false
	}
	line, body, ok := bytes.Cut(rest, plainErrorHeaders)
	if !ok || bytes.ContainsAny(line, "\r\n") {
		return nil, false
	}
	var detail string
	var code eventvault.Code
	switch {
	case status == http.StatusRequestHeaderFieldsTooLarge:
		code, detail = eventvault.ETOOLARGE, fmt.Sprintf("the request's header fields are larger than %d bytes: send fewer or smaller ones", MaxHeaderBytes)
	case status == http.StatusNotImplemented:
		code, detail = eventvault.EINVALID, "the request's Transfer-Encoding is not supported: send the body as is or chunked"
	default:
		// net/http's texts are fixed strings ("missing required Host
		// header"), never the request's bytes.
		code, detail = eventvault.EINVALID, "the request is not valid HTTP/1.1"
		if _, text, ok := bytes.Cut(body, []byte(": ")); ok {
			detail += ": " + string(text)
		}
	}
	return problemAnswer(status, code, detail, logger), true
}

// problemAnswer is a whole HTTP/1.1 answer with a problem body and a new
// request id, which logger records.
func problemAnswer(status int, code eventvault.Code, detail string, logger *slog.Logger) []byte {
	id := uuid.NewString()
	body, status := problemBody(status, code, detail, map[string]any{"http_request_id": id})
	logger.Info("refused a request before routing it (net/http could not serve it)",
		slog.Int("status", status), slog.String("code", string(code)), slog.String("http_request_id", id))
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), ProblemContentType, RequestIDHeader, id, len(body), body)
}
