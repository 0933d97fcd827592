package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// decodeEventStream reads a text/event-stream body for the contract:
// every line is a field or a comment, every data line one JSON event.
func decodeEventStream(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "", strings.HasPrefix(line, ": "), strings.HasPrefix(line, "id: "), strings.HasPrefix(line, "retry: "), strings.HasPrefix(line, "event: "):
		case strings.HasPrefix(line, "data: "):
			var v map[string]any
			if err := json.Unmarshal([]byte(line[len("data: "):]), &v); err != nil {
				return nil, fmt.Errorf("line %d: data is not a JSON object: %w", i+1, err)
			}
		default:
			return nil, fmt.Errorf("line %d is not an SSE field: %q", i+1, line)
		}
	}
	return string(b), nil
}

// streamFor is how long a recorded request to the feed runs before the
// test hangs up.
const streamFor = 300 * time.Millisecond

// doOrStream is do, but a request to the feed is recorded for streamFor
// and then cancelled, as a client hanging up.
func (a *testAPI) doOrStream(method, path, token string, body []byte) *httptest.ResponseRecorder {
	a.t.Helper()
	if !strings.HasPrefix(path, "/v1/subscribe?") && path != "/v1/subscribe" {
		return a.do(method, path, token, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamFor)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.serve(req)
}

// admin is a token with every capability in tenant.
func (a *testAPI) admin(tenant string) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": tenant, "name": "admin",
		"rules": []any{map[string]any{"capabilities": []string{"admin"}, "streams": "*"}}}, http.StatusCreated, &out)
	return out.Token
}

func (a *testAPI) appendN(token, stream string, n int) {
	a.t.Helper()
	evs := make([]any, n)
	for i := range evs {
		evs[i] = event("OrderPlaced", map[string]any{"i": i})
	}
	a.doJSON(http.MethodPost, "/v1/streams/"+stream+"/events", token, map[string]any{"events": evs}, http.StatusCreated, nil)
}

// sseMessage is one message of the feed.
type sseMessage struct {
	id    int64
	event feedEvent
	kind  string // "event: " field, if any
}

type feedEvent struct {
	ID             string          `json:"id"`
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	GlobalPosition int64           `json:"global_position"`
	Data           json.RawMessage `json:"data"`
	Erased         bool            `json:"erased"`
}

// sseClient reads the feed of a real listener.
type sseClient struct {
	t        *testing.T
	resp     *http.Response
	r        *bufio.Reader
	comments []string
}

func openFeed(t *testing.T, base, token, query string, header http.Header) *sseClient {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/subscribe"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open feed: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != eventStreamContentType {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("open feed %s: %d %q %s", query, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next message, failing after timeout.
func (c *sseClient) next(timeout time.Duration) sseMessage {
	c.t.Helper()
	type result struct {
		m   sseMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		var m sseMessage
		m.id = -1
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				done <- result{err: err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && (m.id >= 0 || m.kind != ""):
				done <- result{m: m}
				return
			case strings.HasPrefix(line, ": "):
				c.comments = append(c.comments, line)
			case strings.HasPrefix(line, "id: "):
				m.id, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				m.kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &m.event); err != nil {
					done <- result{err: err}
					return
				}
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			c.t.Fatalf("read feed: %v", r.err)
		}
		return r.m
	case <-time.After(timeout):
		c.t.Fatalf("no message within %s", timeout)
		return sseMessage{}
	}
}

func TestFeedCatchesUpThenGoesLiveWithoutGapOrDuplicate(t *testing.T) {
	a := newTestAPI(t)
	srv := httptest.NewServer(a.srv)
	t.Cleanup(srv.Close)
	tok := a.admin("acme")
	// 150 events before (more than a catch-up page), 150 while the
	// subscriber reads, from 3 writers.
	for i := range 3 {
		a.appendN(tok, fmt.Sprintf("order-%d", i), 50)
	}
	feed := openFeed(t, srv.URL, tok, "?from=0", nil)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 10 {
				body, _ := json.Marshal(map[string]any{"events": []any{event("OrderPlaced", 1), event("OrderPlaced", 2), event("OrderPlaced", 3), event("OrderPlaced", 4), event("OrderPlaced", 5)}})
				req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/streams/live-%d-%d/events", srv.URL, w, i), bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					t.Errorf("append: %v %v", err, resp)
					return
				}
				resp.Body.Close()
			}
		})
	}
	for want := int64(0); want < 300; want++ {
		m := feed.next(10 * time.Second)
		if m.id != want || m.event.GlobalPosition != want {
			t.Fatalf("message %d: id %d, global position %d; want every committed event once, in global order", want, m.id, m.event.GlobalPosition)
		}
	}
	wg.Wait()
	if !strings.HasPrefix(feed.comments[0], ": feed from global position 0") {
		t.Fatalf("first comment %q", feed.comments)
	}
}

func TestFeedResumesFromLastEventIDAndStartsAtTheEnd(t *testing.T) {
	a := newTestAPI(t)
	srv := httptest.NewServer(a.srv)
	t.Cleanup(srv.Close)
	tok := a.admin("acme")
	a.appendN(tok, "order-1", 5)
	feed := openFeed(t, srv.URL, tok, "?from=0", http.Header{"Last-Event-ID": {"2"}})
	if m := feed.next(5 * time.Second); m.id != 3 {
		t.Fatalf("after Last-Event-ID 2: id %d, want 3", m.id)
	}
	end := openFeed(t, srv.URL, tok, "?from=end&heartbeat=1", nil)
	a.appendN(tok, "order-2", 1)
	if m := end.next(5 * time.Second); m.id != 5 || m.event.Stream != "order-2" {
		t.Fatalf("from=end: first message %+v, want the event appended after subscribing (5)", m)
	}
	// Idle: a heartbeat comment within a second or so.
	before := len(end.comments)
	go func() { time.Sleep(2500 * time.Millisecond); a.appendN(tok, "order-3", 1) }()
	if m := end.next(5 * time.Second); m.id != 6 {
		t.Fatalf("id %d, want 6", m.id)
	}
	if len(end.comments) == before || end.comments[len(end.comments)-1] != ": heartbeat" {
		t.Fatalf("no heartbeat while idle: %q", end.comments)
	}
}

func TestFeedFiltersAndTombstones(t *testing.T) {
	a := newTestAPI(t)
	srv := httptest.NewServer(a.srv)
	t.Cleanup(srv.Close)
	tok := a.admin("acme")
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("OrderPlaced", 1), event("OrderShipped", 2)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/invoice-1/events", tok, map[string]any{"events": []any{event("InvoiceSent", 3)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-2/events", tok, map[string]any{"events": []any{event("OrderPlaced", 4)}}, http.StatusCreated, nil)
	orders := openFeed(t, srv.URL, tok, "?categories=order&types=OrderPlaced", nil)
	invoices := openFeed(t, srv.URL, tok, "?categories=invoice", nil)
	for _, want := range []int64{0, 3} {
		if m := orders.next(5 * time.Second); m.id != want || m.event.Type != "OrderPlaced" {
			t.Fatalf("orders: %+v, want id %d", m, want)
		}
	}
	if m := invoices.next(5 * time.Second); m.id != 2 {
		t.Fatalf("invoices: %+v", m)
	}
	// A shred: its tombstone reaches the order feed (whatever its type
	// filter) and not the invoice feed; the shredded events come back
	// as erased envelopes.
	a.doJSON(http.MethodDelete, "/v1/streams/order-1", tok, nil, http.StatusOK, nil)
	m := orders.next(5 * time.Second)
	var ts eventvault.Tombstone
	if err := json.Unmarshal(m.event.Data, &ts); err != nil || m.event.Stream != string(eventvault.TombstoneStream) || m.event.Type != eventvault.TombstoneType ||
		ts.Kind != "shred" || len(ts.Streams) != 1 || ts.Streams[0] != "order-1" || ts.CertificateID == "" || ts.At.IsZero() {
		t.Fatalf("tombstone: %+v (%s)", m, m.event.Data)
	}
	a.appendN(tok, "invoice-2", 1)
	if m := invoices.next(5 * time.Second); m.id != 5 {
		t.Fatalf("invoices after the shred: %+v, want the next invoice (5) and no tombstone of order-1", m)
	}
	replay := openFeed(t, srv.URL, tok, "?categories=order", nil)
	if m := replay.next(5 * time.Second); m.id != 0 || !m.event.Erased || m.event.Data != nil {
		t.Fatalf("a shredded event in the feed: %+v, want an erased envelope", m)
	}
}

func TestFeedRefusesBadInput(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	for _, c := range []struct{ query, header, says string }{
		{"?from=-1", "", "from must be"},
		{"?from=abc", "", "a global position (decimal digits) or end"},
		{"?from=5", "", "past the end of the feed (the next global position is 0)"},
		{"", "4", "past the end of the feed"},
		{"?from=0", "", ""}, // the next position of an empty log: fine
		{"?from=99999999999999999999", "", "too large"},
		{"?heartbeat=0", "", "heartbeat"},
		{"?heartbeat=61", "", "heartbeat"},
		{"?categories=order-1", "", "category"},
		{"?categories=", "", ""}, // empty: every category, not an error
		{"?types=1bad", "", "types[0]"},
		{"?filter=x", "", "unknown query parameter"},
		{"", "x", "Last-Event-ID"},
		{"", "-4", "Last-Event-ID"},
	} {
		t.Run(c.query+c.header, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), streamFor)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/subscribe"+c.query, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if c.header != "" {
				req.Header.Set("Last-Event-ID", c.header)
			}
			rec := a.serve(req)
			if c.says == "" {
				if rec.Code != http.StatusOK {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				return
			}
			wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, c.says)
		})
	}
	// A token without read_all gets 403 before any stream starts.
	narrow := a.tokenWithRules("acme", "read", "order-*")
	wantProblem(t, a.doOrStream(http.MethodGet, "/v1/subscribe", narrow, nil), http.StatusForbidden, eventvault.EFORBIDDEN, "read_all")
	// HEAD is not served on a stream.
	if rec := a.do(http.MethodHead, "/v1/subscribe", tok, nil); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD /v1/subscribe: %d", rec.Code)
	}
}

func (a *testAPI) tokenWithRules(tenant, capability, streams string) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": tenant, "name": "narrow-" + uuid.NewString()[:8],
		"rules": []any{map[string]any{"capabilities": []string{capability}, "streams": streams}}}, http.StatusCreated, &out)
	return out.Token
}

func TestReadAllWaitsForTheNextEvent(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	a.appendN(tok, "order-1", 2)
	go func() { time.Sleep(300 * time.Millisecond); a.appendN(tok, "order-2", 1) }()
	var page struct {
		Events []feedEvent `json:"events"`
		Next   int64       `json:"next"`
	}
	a.doJSON(http.MethodGet, "/v1/events?from=2&wait=10", tok, nil, http.StatusOK, &page)
	if len(page.Events) != 1 || page.Events[0].GlobalPosition != 2 || page.Next != 3 {
		t.Fatalf("long poll: %+v, want the event appended while waiting", page)
	}
	// Nothing comes: an empty page once wait passes.
	a.doJSON(http.MethodGet, "/v1/events?from=3&wait=1", tok, nil, http.StatusOK, &page)
	if len(page.Events) != 0 || page.Next != 3 {
		t.Fatalf("long poll in vain: %+v", page)
	}
	for _, q := range []string{"wait=31", "wait=-1", "wait=x"} {
		wantProblem(t, a.do(http.MethodGet, "/v1/events?"+q, tok, nil), http.StatusBadRequest, eventvault.EINVALID, "wait")
	}
}

// TestReadAllRefusesAStartPastTheEnd: GET /v1/events, with and without
// wait, in JSON and NDJSON, refuses a from beyond the tenant's next global
// position as the feed does (400 naming the head), on both stores, while
// the next global position itself, the next of the last page, is an empty
// page. It tries from 0, 2 and 3 (paging 3 events by 2: 3 is the last
// page's next), 3 with wait=1, then 4, 4 with wait=5, 99999 and 99999 as
// NDJSON; on a tenant without events, 0 and 1.
func TestReadAllRefusesAStartPastTheEnd(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.admin("acme")
		a.appendN(tok, "order-1", 3)
		type page struct {
			Events []feedEvent `json:"events"`
			Next   int64       `json:"next"`
		}
		from := int64(0)
		for _, want := range []struct{ n, next int64 }{{2, 2}, {1, 3}, {0, 3}} {
			var p page
			a.doJSON(http.MethodGet, fmt.Sprintf("/v1/events?from=%d&limit=2", from), tok, nil, http.StatusOK, &p)
			if int64(len(p.Events)) != want.n || p.Next != want.next {
				t.Fatalf("from %d: %d events, next %d; want %d, next %d", from, len(p.Events), p.Next, want.n, want.next)
			}
			from = p.Next
		}
		var p page
		a.doJSON(http.MethodGet, "/v1/events?from=3&wait=1", tok, nil, http.StatusOK, &p)
		if len(p.Events) != 0 || p.Next != 3 {
			t.Fatalf("a long poll at the end: %+v", p)
		}
		for _, q := range []string{"from=4", "from=4&wait=5", "from=99999"} {
			start := time.Now()
			rec := a.do(http.MethodGet, "/v1/events?"+q, tok, nil)
			wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, "past the end of the feed (the next global position is 3)", "start at a position up to 3")
			if strings.Contains(rec.Body.String(), "or at the end") || !strings.Contains(rec.Body.String(), `"head":3`) {
				t.Fatalf("?%s: %s; want the head and no from=end, which read-all lacks", q, rec.Body)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("?%s waited before refusing", q)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/events?from=99999", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", NDJSONContentType)
		wantProblem(t, a.serve(req), http.StatusBadRequest, eventvault.EINVALID, "past the end of the feed")

		other := a.admin("globex")
		a.doJSON(http.MethodGet, "/v1/events?from=0", other, nil, http.StatusOK, &p)
		wantProblem(t, a.do(http.MethodGet, "/v1/events?from=1", other, nil), http.StatusBadRequest, eventvault.EINVALID, "the next global position is 0")
	})
}

// TestFeedOutlivesTheServersWriteTimeout: each write of the feed extends
// its own deadline, so a stream is not cut at http.Server.WriteTimeout
// (60 s in production; 1 s here).
func TestFeedOutlivesTheServersWriteTimeout(t *testing.T) {
	a := newTestAPI(t)
	srv := httptest.NewUnstartedServer(a.srv)
	srv.Config.WriteTimeout = time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	tok := a.admin("acme")
	feed := openFeed(t, srv.URL, tok, "?from=end&heartbeat=1", nil)
	go func() { time.Sleep(3500 * time.Millisecond); a.appendN(tok, "order-1", 1) }()
	if m := feed.next(10 * time.Second); m.id != 0 {
		t.Fatalf("after 3.5 s: %+v", m)
	}
	if n := len(feed.comments); n < 3 {
		t.Fatalf("%d comments, want the opening one and heartbeats for 3 s: %q", n, feed.comments)
	}
}

// TestFeedReadsAreAudited: what the feed delivers is recorded as read-all
// is (action subscribe, gathered per window), in a log that verifies.
func TestFeedReadsAreAudited(t *testing.T) {
	a := newTestAPI(t)
	tok := a.admin("acme")
	a.appendN(tok, "order-1", 2)
	rec := a.doOrStream(http.MethodGet, "/v1/subscribe?from=0", tok, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "id: 0\ndata: ") || !strings.Contains(rec.Body.String(), "id: 1\ndata: ") {
		t.Fatalf("feed: %d %s", rec.Code, rec.Body)
	}
	var events int64
	for _, r := range a.exportAndVerify(t, "acme") {
		if r.Action == "subscribe" {
			switch n := r.Detail["events"].(type) {
			case int64:
				events += n
			case float64:
				events += int64(n)
			}
		}
	}
	if events != 2 {
		t.Fatalf("the audit log records %d events read through the feed, want 2", events)
	}
}
