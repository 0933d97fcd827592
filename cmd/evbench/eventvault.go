package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/cmd/internal/wiring"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/metrics"
	"github.com/eventvault/eventvault/store/postgres"
)

// benchTenant is the tenant every EventVault request runs as.
const benchTenant eventvault.TenantID = "bench"

// evServer is the EventVault server stack, built by cmd/internal/wiring as
// cmd/eventvault builds it, on a loopback port, with a local root key behind
// a provider that counts its calls.
type evServer struct {
	store  *postgres.DB
	keys   *evcrypto.Keyring
	tokens *auth.Tokens
	ln     net.Listener
	server *http.Server
	served chan error
	// metrics is the server's registry, served on metricsLn at /metrics
	// as -metrics-listen serves it; the bench reads root key calls there.
	metrics   *metrics.Registry
	metricsLn net.Listener
	metricsSv *http.Server
	// feed is the server's shared feed reader, whose store reads the
	// feed bench counts.
	feed *engine.Feed
	// timer times its requests once started (the overload workload).
	timer *handlerTimer
}

// startEventVault migrates the database at dbURL and serves EventVault on
// 127.0.0.1. The local root key is created in keyDir. Requests are logged
// as the server logs them, to a handler that formats and drops them.
// adm is its admission control (the zero value: none, as the workloads
// other than overload run).
func startEventVault(ctx context.Context, dbURL, keyDir string, maxConns int32, noGroupCommit, noAudit bool, adm api.AdmissionConfig) (*evServer, error) {
	if err := postgres.Migrate(ctx, dbURL); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := metrics.New()
	store, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: maxConns, Logger: logger, Observer: reg, NoGroupCommit: noGroupCommit})
	if err != nil {
		return nil, fmt.Errorf("open the store: %w", err)
	}
	local, err := evcrypto.OpenLocalRootKey(filepath.Join(keyDir, "root.key"))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("root key: %w", err)
	}
	s := &evServer{store: store, metrics: reg, served: make(chan error, 1)}
	// Created in the database as a dev-mode server creates them, with the
	// root uncounted: the bench counts the root calls of the hot path.
	dk, err := wiring.DeploymentKeys(ctx, local, store, true, nil)
	if err != nil {
		store.Close()
		return nil, err
	}
	// The server's own wiring and defaults, so that what is measured is
	// what is served.
	stack := wiring.Build(wiring.Parts{
		Store:         store,
		Root:          local,
		Metrics:       reg,
		Pseudonyms:    dk.Pseudonyms,
		Signer:        dk.Signer,
		TokenVerifier: dk.TokenVerifier,
		TokenCacheTTL: auth.DefaultTokenCacheTTL,
		Logger:        logger,
		NoAudit:       noAudit,
		Admission:     adm,
	})
	s.keys, s.feed = stack.Keys, stack.Feed
	s.tokens = stack.Tokens
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.timer = &handlerTimer{next: stack.Handler}
	s.server = wiring.HTTPServer(s.timer)
	go func() { s.served <- s.server.Serve(s.ln) }()
	s.metricsLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.server.Close()
		store.Close()
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	s.metricsSv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.metricsSv.Serve(s.metricsLn) }()
	return s, nil
}

// scrapeMetrics reads the server's /metrics and returns the value of each
// sample whose metric name begins with one of prefixes, by its name with
// labels as the text format writes it
// (eventvault_root_key_calls_total{op="wrap"}). Other samples are not
// parsed: their label values may hold anything, spaces included (the
// requests' route="(no route)").
func (s *evServer) scrapeMetrics(ctx context.Context, client *http.Client, prefixes ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metricsLn.Addr().String()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			continue
		}
		// The label values of the metrics asked for hold no space (an
		// operation's name).
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("scrape /metrics: %s: %w", line, err)
		}
		m[name] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	return m, nil
}

// rootCalls scrapes the server's /metrics and returns the root key
// provider's calls counted there (eventvault_root_key_calls_total).
func (s *evServer) rootCalls(ctx context.Context, client *http.Client) (rootCalls, error) {
	m, err := s.scrapeMetrics(ctx, client, "eventvault_root_key_calls_total{")
	if err != nil {
		return rootCalls{}, err
	}
	if len(m) == 0 {
		return rootCalls{}, fmt.Errorf("scrape /metrics: no eventvault_root_key_calls_total")
	}
	var rc rootCalls
	for name, n := range m {
		switch {
		case strings.Contains(name, `op="wrap"`):
			rc.Wrap += int64(n)
		case strings.Contains(name, `op="unwrap"`):
			rc.Unwrap += int64(n)
		}
	}
	return rc, nil
}

// groupCommits are the PostgreSQL store's group commits so far and the
// appends they carried, from the server's /metrics
// (eventvault_append_group_appends, a histogram).
type groupCommits struct{ groups, appends int64 }

func (s *evServer) groupCommits(ctx context.Context, client *http.Client) (groupCommits, error) {
	m, err := s.scrapeMetrics(ctx, client, "eventvault_append_group_appends_count ", "eventvault_append_group_appends_sum ")
	if err != nil {
		return groupCommits{}, err
	}
	count, ok := m["eventvault_append_group_appends_count"]
	if !ok {
		return groupCommits{}, fmt.Errorf("scrape /metrics: no eventvault_append_group_appends histogram")
	}
	return groupCommits{groups: int64(count), appends: int64(m["eventvault_append_group_appends_sum"])}, nil
}

// baseURL is where the server listens.
func (s *evServer) baseURL() string { return "http://" + s.ln.Addr().String() }

// close shuts the server down and closes the store.
func (s *evServer) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = s.metricsSv.Shutdown(ctx)
	err := s.server.Shutdown(ctx)
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	s.store.Close()
	return err
}

// tenantToken installs a root token and has the API issue a token for the
// bench tenant with the default rules (append and read on every stream).
func (s *evServer) tenantToken(ctx context.Context, client *http.Client, tenant eventvault.TenantID) (string, error) {
	root, err := s.tokens.InstallRoot(ctx, tenant, "")
	if err != nil {
		return "", fmt.Errorf("install a root token: %w", err)
	}
	c := &evClient{http: client, base: s.baseURL(), token: root}
	var out struct {
		Token string `json:"token"`
	}
	body := []byte(`{"tenant":"` + string(tenant) + `","name":"evbench"}`)
	if err := c.do(ctx, http.MethodPost, "/v1/tokens", body, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("issue a tenant token: %w", err)
	}
	return out.Token, nil
}

// newHTTPClient returns a client that keeps a connection per concurrent
// request alive, as a tuned production client would.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 60 * time.Second,
	}
}

// evClient is EventVault's HTTP API as a target.
type evClient struct {
	http  *http.Client
	base  string
	token string
	// encoding is how reads are asked for and decoded (Config.ReadEncoding):
	// "frames" and "ndjson" are decoded one event at a time as they arrive,
	// as a client of that encoding would; "json" decodes the page whole.
	encoding string
}

var _ target = (*evClient)(nil)

type evPositions struct {
	Position       int64 `json:"position"`
	GlobalPosition int64 `json:"global_position"`
}

type evEvent struct {
	ID             string          `json:"id"`
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	Position       int64           `json:"position"`
	GlobalPosition int64           `json:"global_position"`
	RecordedAt     time.Time       `json:"recorded_at"`
	Data           json.RawMessage `json:"data"`
	Metadata       json.RawMessage `json:"metadata"`
}

func (c *evClient) append(ctx context.Context, stream string, _ int64, events []benchEvent) ([]int64, error) {
	var out struct {
		Events []evPositions `json:"events"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/streams/"+url.PathEscape(stream)+"/events", appendBody(events), http.StatusCreated, &out); err != nil {
		return nil, fmt.Errorf("append to %s: %w", stream, err)
	}
	if len(out.Events) != len(events) {
		return nil, fmt.Errorf("append to %s: %d positions for %d events", stream, len(out.Events), len(events))
	}
	globals := make([]int64, len(out.Events))
	for i, p := range out.Events {
		globals[i] = p.GlobalPosition
	}
	return globals, nil
}

// appendBody is the JSON of an append with expected version any.
func appendBody(events []benchEvent) []byte {
	size := 40
	for _, e := range events {
		size += 64 + len(e.Type) + len(e.Data)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"expected_version":"any","events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, e.ID.String()...)
		b = append(b, `","type":`...)
		b = strconv.AppendQuote(b, e.Type)
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func (c *evClient) readStream(ctx context.Context, stream string, from int64, limit int) (int, error) {
	path := "/v1/streams/" + url.PathEscape(stream) + "/events?from=" + strconv.FormatInt(from, 10) + "&limit=" + strconv.Itoa(limit)
	if c.encoding != "json" {
		n, _, err := c.readBulk(ctx, path)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", stream, err)
		}
		return n, nil
	}
	var out struct {
		Events []evEvent `json:"events"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &out); err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	return len(out.Events), nil
}

func (c *evClient) readAll(ctx context.Context, from int64, limit int) (int, int64, error) {
	path := "/v1/events?from=" + strconv.FormatInt(from, 10) + "&limit=" + strconv.Itoa(limit)
	if c.encoding != "json" {
		n, last, err := c.readBulk(ctx, path)
		if err != nil {
			return 0, 0, fmt.Errorf("read all from %d: %w", from, err)
		}
		if n == 0 {
			return 0, from - 1, nil
		}
		return n, last, nil
	}
	var out struct {
		Events []evEvent `json:"events"`
	}
	if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &out); err != nil {
		return 0, 0, fmt.Errorf("read all from %d: %w", from, err)
	}
	if len(out.Events) == 0 {
		return 0, from - 1, nil
	}
	return len(out.Events), out.Events[len(out.Events)-1].GlobalPosition, nil
}

// do sends a request and decodes the JSON answer into out, failing unless
// the status is want. The error quotes the start of a problem body.
func (c *evClient) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		problem, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s answered %s, want %d: %s", method, path, resp.Status, want, problem)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
	}
	// Drain, so that the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// readBulk GETs path in the client's bulk encoding and decodes the events
// as they arrive, one at a time, keeping none: what a client that
// processes a bulk read event by event runs. NDJSON lines are decoded into
// the struct the JSON client uses; frames are parsed with api.ParseFrame,
// their data left as bytes, as a database driver leaves a bytea. It
// returns how many events it read and the global position of the last.
func (c *evClient) readBulk(ctx context.Context, path string) (n int, last int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.encoding == "frames" {
		req.Header.Set("Accept", api.FramesContentType)
	} else {
		req.Header.Set("Accept", api.NDJSONContentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		problem, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, 0, fmt.Errorf("GET %s answered %s: %s", path, resp.Status, problem)
	}
	if c.encoding == "frames" {
		n, last, err = readFrames(resp.Body)
	} else {
		n, last, err = readLines(resp.Body)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return n, last, nil
}

// readLines decodes NDJSON events one a line.
func readLines(r io.Reader) (n int, last int64, err error) {
	dec := json.NewDecoder(r)
	var ev evEvent
	for dec.More() {
		ev = evEvent{}
		if err := dec.Decode(&ev); err != nil {
			return 0, 0, fmt.Errorf("decode line %d: %w", n+1, err)
		}
		n++
		last = ev.GlobalPosition
	}
	return n, last, nil
}

// frameReaders holds the buffered readers readFrames reads bodies
// through, reused between requests as a client reading page after page
// would (a new 64 KiB reader per page was 7% of the bytes the client and
// server allocated together on the reads).
var frameReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// readFrames parses frames one at a time into a buffer reused between them.
func readFrames(r io.Reader) (n int, last int64, err error) {
	br := frameReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		frameReaders.Put(br)
	}()
	var head [4]byte
	var frame []byte
	for {
		if _, err := io.ReadFull(br, head[:]); err == io.EOF {
			return n, last, nil
		} else if err != nil {
			return 0, 0, fmt.Errorf("frame %d: %w", n+1, err)
		}
		size := int(binary.BigEndian.Uint32(head[:]))
		if cap(frame) < size {
			frame = make([]byte, size)
		}
		frame = frame[:size]
		if _, err := io.ReadFull(br, frame); err != nil {
			return 0, 0, fmt.Errorf("frame %d: %w", n+1, err)
		}
		ev, err := api.ParseFrame(frame)
		if err != nil {
			return 0, 0, fmt.Errorf("frame %d: %w", n+1, err)
		}
		n++
		last = ev.GlobalPosition
	}
}
