package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/engine"
)

// Feed bounds, in seconds.
const (
	DefaultHeartbeat = 15
	MaxHeartbeat     = 60
	// sseWriteTimeout bounds each write of a feed: the server's
	// WriteTimeout would otherwise end every stream after a minute.
	sseWriteTimeout = 30 * time.Second
)

// MaxFeedDuration bounds one feed connection. The caller was
// authenticated when it opened: the feed then ends (without an error
// message), the client reconnects with Last-Event-ID (EventSource does so
// by itself after retry), and a revoked token or a changed policy applies
// within this bound.
const MaxFeedDuration = 10 * time.Minute

// eventStreamContentType is the media type of Server-Sent Events (HTML
// Living Standard, section 9.2).
const eventStreamContentType = "text/event-stream"

// subscribe serves the feed as Server-Sent Events: GET /v1/subscribe
// ?from=N|end&categories=a,b&types=X,Y&heartbeat=S. It catches up from
// from (default 0), then goes live; each event is one SSE message whose
// id is its global position and whose data is the event as read-all
// renders it. A reconnect's Last-Event-ID resumes after that position and
// overrides from. A comment line (": heartbeat") goes out after heartbeat
// seconds without an event (default 15, 1 to 60), so that proxies keep
// the connection open. A connection lasts at most MaxFeedDuration. Errors before the stream starts are problems; a
// stream that fails later ends with an "event: error" message.
func (s *Server) subscribe(c *gin.Context) {
	from, err := feedFrom(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	filter := eventvault.FeedFilter{Categories: queryList(c, "categories"), Types: queryList(c, "types")}
	heartbeat, err := queryInt(c, "heartbeat", DefaultHeartbeat)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if heartbeat < 1 || heartbeat > MaxHeartbeat {
		s.writeError(c, eventvault.Errorf(eventvault.EINVALID, "heartbeat must be between 1 and %d seconds", MaxHeartbeat))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), MaxFeedDuration)
	defer cancel()
	defer context.AfterFunc(s.drain, cancel)() // a shutdown ends the feed
	sub, err := s.events.Subscribe(ctx, principal(c), from, filter)
	if err != nil {
		s.writeError(c, err)
		return
	}
	defer sub.Close()
	// The answer streams: no Content-Length (headWithoutBody's writer
	// would set one from the first write).
	if lw, ok := c.Writer.(lengthWriter); ok {
		c.Writer = lw.ResponseWriter
	}
	rc := http.NewResponseController(c.Writer)
	h := c.Writer.Header()
	h.Set("Content-Type", eventStreamContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Status(http.StatusOK)
	buf := fmt.Appendf(nil, "retry: 2000\n: feed from global position %d\n\n", sub.Position())
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := c.Writer.Write(buf); err != nil {
			return // the client went away
		}
		c.Writer.Flush()
		events, err := sub.Next(ctx, time.Duration(heartbeat)*time.Second)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.logger.WarnContext(ctx, "feed ended", "route", c.FullPath(), "error", err)
			msg := "the feed failed; reconnect with Last-Event-ID to resume"
			if code := eventvault.ErrorCode(err); code == eventvault.EFORBIDDEN {
				msg = "read_all is no longer granted to this caller"
			}
			buf = fmt.Appendf(buf[:0], "event: error\ndata: {\"code\":%q,\"detail\":%q}\n\n", eventvault.ErrorCode(err), msg)
			_, _ = c.Writer.Write(buf)
			c.Writer.Flush()
			return
		case len(events) == 0:
			buf = append(buf[:0], ": heartbeat\n\n"...)
			continue
		}
		s.metrics.EventsRead(len(events))
		buf = buf[:0]
		for _, ev := range events {
			buf = append(buf, "id: "...)
			buf = strconv.AppendInt(buf, ev.GlobalPosition, 10)
			buf = append(buf, "\ndata: "...)
			if buf, err = appendEvent(buf, ev); err != nil {
				s.logger.ErrorContext(ctx, "feed: render event", "error", err)
				return
			}
			buf = append(buf, "\n\n"...)
		}
	}
}

// feedFrom is where a feed starts: after the Last-Event-ID of a reconnect,
// else at ?from= (a global position, or "end"), else 0.
func feedFrom(c *gin.Context) (int64, error) {
	if id := c.GetHeader("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			return 0, eventvault.Errorf(eventvault.EINVALID, "Last-Event-ID must be the id of an event of this feed: its global position, an integer >= 0")
		}
		return n + 1, nil
	}
	if v, _ := c.GetQuery("from"); v == "end" {
		return engine.FromEnd, nil
	}
	if v, ok := c.GetQuery("from"); ok && v != "" && !decimalInteger(v) {
		return 0, eventvault.Errorf(eventvault.EINVALID, "query parameter from must be a global position (decimal digits) or end")
	}
	from, err := queryInt(c, "from", 0)
	if err != nil {
		return 0, err
	}
	if from < 0 {
		return 0, eventvault.Errorf(eventvault.EINVALID, "from must be a global position >= 0, or end")
	}
	return from, nil
}

// queryList reads a comma-separated query parameter; absent or empty is
// no entry.
func queryList(c *gin.Context, name string) []string {
	v, _ := c.GetQuery(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// queryWait reads read-all's wait, in seconds (0 to engine.MaxWait).
func queryWait(c *gin.Context) (time.Duration, error) {
	w, err := queryInt(c, "wait", 0)
	if err != nil {
		return 0, err
	}
	if w < 0 || time.Duration(w)*time.Second > engine.MaxWait {
		return 0, eventvault.Errorf(eventvault.EINVALID, "wait must be between 0 and %d seconds", int(engine.MaxWait/time.Second))
	}
	return time.Duration(w) * time.Second, nil
}
