package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/bolt"
)

// heldEvents is an Events whose appends and reads to streams named hold-*
// block until their context ends or release is closed: a store call held
// open, to fill admission's slots. Others answer at once. It counts the
// calls that reached it.
type heldEvents struct {
	started chan string // the stream of each call, as it reaches the store
	release chan struct{}
	// one releases one held call per value sent.
	one   chan struct{}
	calls atomic.Int64
	// ended learns the error each held call ended with.
	ended chan error
}

func newHeldEvents() *heldEvents {
	return &heldEvents{started: make(chan string, 64), release: make(chan struct{}), one: make(chan struct{}), ended: make(chan error, 64)}
}

func (h *heldEvents) hold(ctx context.Context, stream eventvault.StreamName) error {
	h.calls.Add(1)
	h.started <- string(stream)
	if !strings.HasPrefix(string(stream), "hold-") {
		return nil
	}
	select {
	case <-h.release:
		h.ended <- nil
		return nil
	case <-h.one:
		h.ended <- nil
		return nil
	case <-ctx.Done():
		h.ended <- ctx.Err()
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "the request ended", Err: ctx.Err()}
	}
}

func (h *heldEvents) AppendForSubject(ctx context.Context, _ eventvault.Principal, stream eventvault.StreamName, _ string, _ eventvault.ExpectedVersion, events []eventvault.NewEvent) (eventvault.AppendResult, error) {
	if err := h.hold(ctx, stream); err != nil {
		return eventvault.AppendResult{}, err
	}
	res := eventvault.AppendResult{Stream: stream, Version: int64(len(events) - 1)}
	for i := range events {
		res.Events = append(res.Events, eventvault.Positions{Position: int64(i), GlobalPosition: int64(i)})
	}
	return res, nil
}

func (h *heldEvents) ReadStream(ctx context.Context, _ eventvault.Principal, stream eventvault.StreamName, _ eventvault.ReadOptions) (engine.StreamSlice, error) {
	if err := h.hold(ctx, stream); err != nil {
		return engine.StreamSlice{}, err
	}
	return engine.StreamSlice{Stream: stream}, nil
}

func (h *heldEvents) ReadAll(ctx context.Context, _ eventvault.Principal, _ int64, _ int) ([]eventvault.Event, error) {
	return nil, h.hold(ctx, "all")
}

func (h *heldEvents) ReadAllWait(ctx context.Context, p eventvault.Principal, from int64, limit int, _ time.Duration) ([]eventvault.Event, error) {
	return h.ReadAll(ctx, p, from, limit)
}

func (h *heldEvents) Subscribe(context.Context, eventvault.Principal, int64, eventvault.FeedFilter) (*engine.Subscription, error) {
	return nil, eventvault.Errorf(eventvault.EUNAVAILABLE, "no feed in this test")
}

// admissionAPI is a server with real tokens over the embedded store and
// heldEvents behind admission control configured by cfg.
type admissionAPI struct {
	*testAPI
	events *heldEvents
	reg    *countingAdmission
}

func newAdmissionAPI(t *testing.T, cfg AdmissionConfig) *admissionAPI {
	t.Helper()
	return newAdmissionAPIWith(t, cfg, 0)
}

// newAdmissionAPIWith is newAdmissionAPI with a token cache of cacheTTL
// (0: none), as the server has by default (auth.DefaultTokenCacheTTL).
func newAdmissionAPIWith(t *testing.T, cfg AdmissionConfig, cacheTTL time.Duration) *admissionAPI {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	tokens := auth.NewTokens(store, cacheTTL)
	tokens.Key = testTokenKey
	root, err := tokens.InstallRoot(context.Background(), "default", "")
	if err != nil {
		t.Fatal(err)
	}
	events, reg := newHeldEvents(), &countingAdmission{}
	srv := New(Config{Events: events, Tokens: tokens, Admission: NewAdmission(cfg, reg)})
	t.Cleanup(func() {
		select {
		case <-events.release:
		default:
			close(events.release)
		}
	})
	return &admissionAPI{testAPI: &testAPI{t: t, srv: srv, root: root, logs: &syncBuffer{}, store: store}, events: events, reg: reg}
}

// countingAdmission counts refusals by method, route and reason.
type countingAdmission struct {
	mu      sync.Mutex
	refused map[string]int
}

func (c *countingAdmission) AdmissionCounters(method, route string) AdmissionCounters {
	return countingCounters{c, method + " " + route}
}

func (c *countingAdmission) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[key]
}

type countingCounters struct {
	c     *countingAdmission
	route string
}

func (countingCounters) InFlight(int)               {}
func (countingCounters) Queued(int)                 {}
func (countingCounters) Waited(time.Duration, bool) {}
func (r countingCounters) Refused(reason string) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if r.c.refused == nil {
		r.c.refused = map[string]int{}
	}
	r.c.refused[r.route+" "+reason]++
}

func appendBody(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "Tested", "data": map[string]any{}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startHeld sends an append to stream hold-<n> as token in the background,
// waits until it reaches the store, and returns where its answer goes.
func (a *admissionAPI) startHeld(token string, n int) <-chan *httptest.ResponseRecorder {
	a.t.Helper()
	out := make(chan *httptest.ResponseRecorder, 1)
	body := appendBody(a.t)
	go func() {
		req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/v1/streams/hold-%d/events", n), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		a.srv.ServeHTTP(rec, req)
		out <- rec
	}()
	select {
	case <-a.events.started:
	case <-time.After(10 * time.Second):
		a.t.Fatal("the held append never reached the store")
	}
	return out
}

func wantRetryAfter(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	if got := rec.Header().Get("Retry-After"); got != want {
		t.Fatalf("Retry-After %q, want %q", got, want)
	}
}

// TestAdmissionRefusesPastItsBounds: with a node bound of 2 appends, a
// share of one per tenant, and a queue of 1, both slots held by two
// tenants: a tenant's second append is 429 at once;
// with both slots held, a third tenant's append waits the queue wait and
// gets 503; each as a problem with Retry-After. The refused requests never
// reach the store. Reads are bounded apart: a read is still served.
func TestAdmissionRefusesPastItsBounds(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{
		Appends:    Limits{Node: 2, Tenant: 1, Queue: 1},
		Reads:      Limits{Node: 1},
		QueueWait:  20 * time.Millisecond,
		RetryAfter: 1500 * time.Millisecond,
	})
	acme, globex, initech := a.tokenFor("acme"), a.tokenFor("globex"), a.tokenFor("initech")
	held := []<-chan *httptest.ResponseRecorder{a.startHeld(acme, 1), a.startHeld(globex, 2)}
	calls := a.events.calls.Load()

	rec := a.do(http.MethodPost, "/v1/streams/order-1/events", acme, appendBody(t))
	wantProblem(t, rec, http.StatusTooManyRequests, codeTooManyRequests, "this tenant", "share (1)")
	wantRetryAfter(t, rec, "2")

	start := time.Now()
	rec = a.do(http.MethodPost, "/v1/streams/order-1/events", initech, appendBody(t))
	waited := time.Since(start)
	wantProblem(t, rec, http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "this node", "(2)", "Retry-After")
	wantRetryAfter(t, rec, "2")
	if waited < 20*time.Millisecond {
		t.Errorf("the 503 came after %s, before the queue wait of 20ms", waited)
	}
	if n := a.events.calls.Load(); n != calls {
		t.Fatalf("refused appends reached the store: %d calls, want %d", n, calls)
	}
	if a.reg.count("POST /v1/streams/:stream/events tenant_full") != 1 || a.reg.count("POST /v1/streams/:stream/events node_full") != 1 {
		t.Errorf("refusals counted: %v", a.reg.refused)
	}

	// Reads have their own slots.
	rec = a.do(http.MethodGet, "/v1/streams/order-1/events", initech, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("a read while appends are full: %d %s", rec.Code, rec.Body)
	}
	<-a.events.started

	close(a.events.release)
	for _, h := range held {
		if rec := <-h; rec.Code != http.StatusCreated {
			t.Fatalf("held append: %d %s", rec.Code, rec.Body)
		}
	}
	// Both slots are free again.
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", initech, json.RawMessage(appendBody(t)), http.StatusCreated, nil)
}

// TestAdmissionQueueFullRefusesAtOnce: with the node's one slot held and
// the queue's one place taken, a further request is 503 at once, counted
// as queue_full, and never reaches the store.
func TestAdmissionQueueFullRefusesAtOnce(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{Appends: Limits{Node: 1, Queue: 1}, QueueWait: 5 * time.Second})
	acme, globex, initech := a.tokenFor("acme"), a.tokenFor("globex"), a.tokenFor("initech")
	held := a.startHeld(acme, 1)
	queued := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		queued <- a.do(http.MethodPost, "/v1/streams/hold-2/events", globex, appendBody(t))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for a.srv.admission.appends.waiting.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second append never queued")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	rec := a.do(http.MethodPost, "/v1/streams/order-1/events", initech, appendBody(t))
	wantProblem(t, rec, http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "this node", "its queue is full")
	wantRetryAfter(t, rec, "1")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a refusal with the queue full took %s", d)
	}
	if a.reg.count("POST /v1/streams/:stream/events queue_full") != 1 {
		t.Errorf("refusals counted: %v", a.reg.refused)
	}
	close(a.events.release)
	<-a.events.started // the queued one, once admitted
	for _, c := range []<-chan *httptest.ResponseRecorder{held, queued} {
		if rec := <-c; rec.Code != http.StatusCreated {
			t.Fatalf("held or queued append: %d %s", rec.Code, rec.Body)
		}
	}
}

// TestAdmissionOneTenantFullDoesNotRefuseAnother: a lone tenant may take
// every slot of the node, past its share of 2 of 4; with the node full,
// its next append waits in the place for requests past their share (a
// quarter of the queue: 1) and the one after is 429 at once, while another
// tenant's append (within its share) waits in the queue and takes the
// first slot that frees, ahead of the flooding tenant's waiting request.
// Reads have slots of their own.
func TestAdmissionOneTenantFullDoesNotRefuseAnother(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{
		Appends:   Limits{Node: 4, Tenant: 2, Queue: 4},
		Reads:     Limits{Node: 4, Tenant: 2, Queue: 4},
		QueueWait: 10 * time.Second,
	})
	acme, globex := a.tokenFor("acme"), a.tokenFor("globex")
	var held []<-chan *httptest.ResponseRecorder
	for i := range 4 {
		held = append(held, a.startHeld(acme, i))
	}
	queuedOf := func(n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for a.srv.admission.appends.waiting.Load() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s never queued", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Past its share with the node full, one request of acme's may wait
	// (a quarter of the queue of 4), behind any other tenant's...
	acmeQueued := make(chan *httptest.ResponseRecorder, 1)
	go func() { acmeQueued <- a.do(http.MethodPost, "/v1/streams/order-1/events", acme, appendBody(t)) }()
	queuedOf(1, "acme's append past its share")
	// ...and the next is 429 at once.
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-2/events", acme, appendBody(t)), http.StatusTooManyRequests, codeTooManyRequests, "share (2)")
	queued := make(chan *httptest.ResponseRecorder, 1)
	go func() { queued <- a.do(http.MethodPost, "/v1/streams/order-1/events", globex, appendBody(t)) }()
	queuedOf(2, "globex's append")
	a.doJSON(http.MethodGet, "/v1/events", globex, nil, http.StatusOK, nil) // reads: their own slots
	<-a.events.started

	a.events.one <- struct{}{} // one of acme's appends ends: its slot goes to globex, who came later
	if rec := <-queued; rec.Code != http.StatusCreated {
		t.Fatalf("globex's queued append: %d %s", rec.Code, rec.Body)
	}
	<-a.events.started
	// globex's append ended at once: its slot goes to acme's waiting one.
	if rec := <-acmeQueued; rec.Code != http.StatusCreated {
		t.Fatalf("acme's queued append: %d %s", rec.Code, rec.Body)
	}
	<-a.events.started
	close(a.events.release)
	for _, h := range held {
		if rec := <-h; rec.Code != http.StatusCreated {
			t.Fatalf("held append: %d %s", rec.Code, rec.Body)
		}
	}
}

// TestAdmissionGoneCallerNeverReachesTheStore: a request whose context
// ended before admission, and one whose deadline passes while it waits
// for a slot, are answered 503 without a store call; an admitted request
// runs under the class's timeout, which reaches the store as its deadline.
func TestAdmissionGoneCallerNeverReachesTheStore(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{Appends: Limits{Node: 1, Queue: 4, Timeout: 200 * time.Millisecond}, QueueWait: 5 * time.Second})
	acme, globex := a.tokenFor("acme"), a.tokenFor("globex")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/streams/order-1/events", bytes.NewReader(appendBody(t)))
	req.Header.Set("Authorization", "Bearer "+acme)
	rec := a.serve(req)
	// Refused by authentication already, or by admission.
	wantProblem(t, rec, http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "deadline passed")
	wantRetryAfter(t, rec, "5")
	if n := a.events.calls.Load(); n != 0 {
		t.Fatalf("a request whose caller had gone reached the store (%d calls)", n)
	}
	if reason := a.srv.admission.appends.acquire(ctx, "acme", noAdmissionCounters{}); reason != RefusedGone {
		t.Fatalf("the gate admitted a request whose context had ended: %q", reason)
	}

	// The one slot held by an append that runs into its 200ms timeout.
	held := a.startHeld(acme, 1)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req = httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/streams/order-2/events", bytes.NewReader(appendBody(t)))
	req.Header.Set("Authorization", "Bearer "+globex)
	rec = a.serve(req)
	wantProblem(t, rec, http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "deadline passed")
	if n := a.events.calls.Load(); n != 1 {
		t.Fatalf("%d store calls, want only the held one", n)
	}
	if a.reg.count("POST /v1/streams/:stream/events gone") != 1 {
		t.Errorf("refusals counted: %v", a.reg.refused)
	}
	if err := <-a.events.ended; err != context.DeadlineExceeded {
		t.Fatalf("the held append ended with %v, want its timeout", err)
	}
	if rec := <-held; rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("held append past its timeout: %d %s", rec.Code, rec.Body)
	}
}

// TestAdmissionDisconnectFreesTheSlot: on a real listener, with one slot,
// a client that disconnects while its append is held frees the slot at
// once: the store call sees its context cancelled, and the next client's
// append is admitted while it waits.
func TestAdmissionDisconnectFreesTheSlot(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{Appends: Limits{Node: 1, Queue: 1}, QueueWait: 10 * time.Second})
	acme := a.tokenFor("acme")
	ts := httptest.NewServer(a.srv)
	defer ts.Close()
	post := func(ctx context.Context, stream string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/streams/"+stream+"/events", bytes.NewReader(appendBody(t)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+acme)
		req.Header.Set("Content-Type", "application/json")
		return ts.Client().Do(req)
	}
	ctx, disconnect := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := post(ctx, "hold-1")
		gone <- err
	}()
	<-a.events.started
	disconnect()
	if err := <-gone; err == nil {
		t.Fatal("the disconnected client got an answer")
	}
	select {
	case err := <-a.events.ended:
		if err != context.Canceled {
			t.Fatalf("the held append ended with %v, want its context cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not notice the client disconnect")
	}
	resp, err := post(context.Background(), "order-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the next append after a disconnect: %d", resp.StatusCode)
	}
}

// BenchmarkAdmission is what admission costs an admitted request: the
// tenant's count, a node slot, the deadline and the release (run by
// hand: go test ./api -run - -bench Admission).
func BenchmarkAdmission(b *testing.B) {
	a := NewAdmission(AdmissionConfig{Appends: Limits{Node: 64, Tenant: 32, Queue: 64, Timeout: 10 * time.Second}, QueueWait: 50 * time.Millisecond}, nil)
	m := a.counters(http.MethodPost, "/v1/streams/:stream/events")
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, t, reason := a.enter(ctx, a.appends, "acme", m)
			if reason != "" {
				b.Fatal(reason)
			}
			t.end()
		}
	})
}

// BenchmarkRefusal is what the server spends on a request admission
// refuses (the node full, the tenant past its share), from routing to the
// problem written, with the token found in the server's token cache as a
// flood's repeated token is (run by hand: go test ./api -run - -bench
// Refusal).
func BenchmarkRefusal(b *testing.B) {
	t := &testing.T{}
	a := newAdmissionAPIWith(t, AdmissionConfig{Appends: Limits{Node: 1, Tenant: 1}}, auth.DefaultTokenCacheTTL)
	a.testAPI.t = t
	acme := a.tokenFor("acme")
	held := a.startHeld(acme, 1)
	body := appendBody(t)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodPost, "/v1/streams/order-1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+acme)
		rec := httptest.NewRecorder()
		a.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusTooManyRequests {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.StopTimer()
	close(a.events.release)
	<-held
}

// TestRefusalAnswerIsTheProblem checks that a refusal rendered once
// answers the same bytes as writeProblem renders for it, with the request
// id and without.
func TestRefusalAnswerIsTheProblem(t *testing.T) {
	l := Limits{Node: 4, Tenant: 2}
	for _, reason := range []string{RefusedTenant, RefusedNode, RefusedQueue, RefusedGone} {
		status, code, detail := refusal(ClassAppend, reason, l)
		ans := newRefusalAnswer(ClassAppend, reason, l)
		want, wantStatus := problemBody(status, code, detail, map[string]any{"http_request_id": "req-1.2:3"})
		if got := ans.body("req-1.2:3"); string(got) != string(want) || ans.status != wantStatus {
			t.Errorf("%s: %d %s; want %d %s", reason, ans.status, got, wantStatus, want)
		}
		if want, _ := problemBody(status, code, detail, nil); string(ans.body("")) != string(want) {
			t.Errorf("%s without an id: %s; want %s", reason, ans.body(""), want)
		}
	}
}

// TestAdmissionPastShareWaitsThenRefused: a request past its tenant's
// share, with the node full, waits at most the queue wait for a slot and
// is then 429, having reached nothing.
func TestAdmissionPastShareWaitsThenRefused(t *testing.T) {
	a := newAdmissionAPI(t, AdmissionConfig{Appends: Limits{Node: 1, Tenant: 1, Queue: 4}, QueueWait: 30 * time.Millisecond})
	acme := a.tokenFor("acme")
	held := a.startHeld(acme, 1)
	calls := a.events.calls.Load()
	start := time.Now()
	rec := a.do(http.MethodPost, "/v1/streams/order-1/events", acme, appendBody(t))
	wantProblem(t, rec, http.StatusTooManyRequests, codeTooManyRequests, "share (1)")
	wantRetryAfter(t, rec, "1")
	if waited := time.Since(start); waited < 30*time.Millisecond || waited > 5*time.Second {
		t.Errorf("the 429 came after %s; want the queue wait of 30ms", waited)
	}
	if n := a.events.calls.Load(); n != calls {
		t.Errorf("the refused append reached the store: %d calls, want %d", n, calls)
	}
	if n := a.srv.admission.appends.waiting.Load(); n != 0 {
		t.Errorf("%d still waiting after the refusal", n)
	}
	close(a.events.release)
	if rec := <-held; rec.Code != http.StatusCreated {
		t.Fatalf("held append: %d %s", rec.Code, rec.Body)
	}
}
