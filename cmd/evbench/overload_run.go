package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// overloadConns bounds the overload client's connections per server.
const overloadConns = 256

// Overload side names.
const (
	sideOverloadEV    = "EventVault"
	sideOverloadRaw   = "raw behind the same bounds"
	sideOverloadNoAdm = "EventVault, admission off"
)

// overloadReport is the overload workload's part of the report.
type overloadReport struct {
	Seconds float64 `json:"step_seconds"`
	Streams int     `json:"streams"`
	// Bounds are the admission bounds of EventVault and of the raw
	// baseline's server (api.DefaultAdmission unless -overload-* flags).
	Bounds api.AdmissionConfig `json:"bounds"`
	// Capacity is each side's closed-loop answers per second with
	// ProbeClients clients: the 1× of its steps.
	Capacity     map[string]float64 `json:"capacity"`
	ProbeClients int                `json:"probe_clients"`
	Steps        []overloadStep     `json:"steps"`
	// QuietAlone is the quiet tenant's figures at its rate with no
	// flood beside it, by side: its unloaded latency.
	QuietAlone map[string]quietResult `json:"quiet_tenant_alone"`
	Checks     []ackCheck             `json:"checks"`
	// StatementsNote says why there are no statement figures, if not.
	StatementsNote string `json:"statements_note,omitempty"`
}

// stepDiag is where a step's work went: PostgreSQL's sessions and
// statements, the pool's queue, the group commit's fallbacks to the
// locking path, and this process's CPU.
type stepDiag struct {
	BusySessions float64              `json:"busy_sessions"`
	Waits        []waitShare          `json:"waits"`
	Statements   []rawbench.Statement `json:"statements,omitempty"`
	// PoolWaited is the share of connection acquires that waited, and
	// PoolWaitMs their mean wait.
	PoolWaited float64 `json:"pool_waited"`
	PoolWaitMs float64 `json:"pool_wait_ms"`
	// GroupAppends are the appends group commits carried; GroupWritten
	// those written there. The rest took the locking path again.
	GroupAppends float64 `json:"group_appends"`
	GroupWritten float64 `json:"group_written"`
	StoreErrors  float64 `json:"store_errors"`
	// CPUPerOKUs is this process's CPU (clients and server) per
	// successful append, in µs.
	CPUPerOKUs float64 `json:"cpu_per_ok_us"`
}

// overloadSide is one side of the overload workload.
type overloadSide struct {
	name string
	fire fireFunc
	// ev is the EventVault server, for diagnostics; nil for raw.
	ev *evServer
	// capacityOf names the side whose capacity is this side's 1×.
	capacityOf string
	// quiet, if set, fires another tenant's appends, at quietShare of
	// the capacity beside every step: its p99 shows whether the flood
	// of the first starves it.
	quiet fireFunc
	// gen and quietGen are the same loops for the generator process
	// (overload_child.go); Rate and Seconds are set per step.
	gen, quietGen *genSpec
}

// quietShare is the quiet tenant's offered rate, as a share of capacity.
const quietShare = 0.05

// quietResult is the quiet tenant's figures during one step.
type quietResult struct {
	OfferedPerSec float64 `json:"offered_per_sec"`
	OK            int     `json:"ok"`
	Refused       int     `json:"refused"`
	Failed        int     `json:"failed"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
}

// runOverload runs the overload workload: EventVault with admission
// control (adm), the raw baseline behind the same bounds, and EventVault
// without admission (noAdm, the server of the other workloads), at
// factors × each side's capacity.
func runOverload(ctx context.Context, cfg Config, dbURL, keyDir string, noAdm *evServer, client *http.Client, table *rawbench.Table,
	waits *rawbench.WaitSampler, say func(string, ...any)) (_ *overloadReport, err error) {
	adm := cfg.OverloadBounds
	ev, err := startEventVault(ctx, dbURL, keyDir, cfg.MaxConns, cfg.NoGroupCommit, false, adm)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := ev.close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = cerr
		}
	}()
	positions := &sync.Map{}
	raw, err := startRawAppendServer(table, positions, adm)
	if err != nil {
		return nil, err
	}
	defer func() { _ = raw.close(context.WithoutCancel(ctx)) }()
	// The capacity probes run without admission control, so that their
	// clients are never refused.
	rawOpen, err := startRawAppendServer(table, positions, api.AdmissionConfig{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = rawOpen.close(context.WithoutCancel(ctx)) }()
	token, err := ev.tenantToken(ctx, client, "overload")
	if err != nil {
		return nil, err
	}
	offToken, err := noAdm.tenantToken(ctx, client, "overload-off")
	if err != nil {
		return nil, err
	}
	quietToken, err := ev.tenantToken(ctx, client, "overload-quiet")
	if err != nil {
		return nil, err
	}
	quietOffToken, err := noAdm.tenantToken(ctx, client, "overload-off-quiet")
	if err != nil {
		return nil, err
	}
	ev.timer.start("Bearer " + quietToken)
	noAdm.timer.start("Bearer " + quietOffToken)
	// A client of its own, with a pool of overloadConns kept-alive
	// connections per server, as a fleet of clients would hold: without a
	// bound, an open loop opens a connection per outstanding request, and
	// past the server's listen backlog the kernel drops connections and
	// the client retries them a second later, which measures TCP, not the
	// server. A request sent while every connection is busy waits for one,
	// and that wait counts in its latency (it is timed from when it was
	// due).
	client = newHTTPClient(overloadConns)
	client.Transport.(*http.Transport).MaxConnsPerHost = overloadConns
	defer client.CloseIdleConnections()
	data := newData(cfg.EventSize, 16)
	spec := func(base, token, prefix string) *genSpec {
		return &genSpec{Base: base, Token: token, Prefix: prefix, EventSize: cfg.EventSize, Seconds: cfg.OverloadDuration.Seconds()}
	}
	sides := []overloadSide{
		{name: sideOverloadEV, fire: (&appendShooter{http: client, base: ev.baseURL(), token: token, prefix: "ov", data: data}).fire, ev: ev, capacityOf: sideOverloadEV,
			quiet: (&appendShooter{http: client, base: ev.baseURL(), token: quietToken, prefix: "ovq", data: data}).fire},
		{name: sideOverloadRaw, fire: (&appendShooter{http: client, base: raw.baseURL(), prefix: rawPrefix, data: data}).fire, capacityOf: sideOverloadRaw},
		{name: sideOverloadNoAdm, fire: (&appendShooter{http: client, base: noAdm.baseURL(), token: offToken, prefix: "ovoff", data: data}).fire, ev: noAdm, capacityOf: sideOverloadEV,
			quiet: (&appendShooter{http: client, base: noAdm.baseURL(), token: quietOffToken, prefix: "ovoffq", data: data}).fire},
	}
	if !cfg.OverloadInProcess {
		sides[0].gen, sides[0].quietGen = spec(ev.baseURL(), token, "ov"), spec(ev.baseURL(), quietToken, "ovq")
		sides[1].gen = spec(raw.baseURL(), "", rawPrefix)
		sides[2].gen, sides[2].quietGen = spec(noAdm.baseURL(), offToken, "ovoff"), spec(noAdm.baseURL(), quietOffToken, "ovoffq")
	}
	// Every side's streams exist and are in its server's caches before
	// anything is measured: a first append creates a stream key and takes
	// the locking path.
	for _, s := range sides {
		for _, fire := range []fireFunc{s.fire, s.quiet} {
			if fire == nil {
				continue
			}
			if _, err := probeCapacity(ctx, 8, 0, func(ctx context.Context, i int) shot {
				if i >= overloadStreams {
					return shot{status: -1}
				}
				return fire(ctx, i)
			}); err != nil {
				return nil, fmt.Errorf("%s: create the streams: %w", s.name, err)
			}
		}
	}
	rep := &overloadReport{Seconds: cfg.OverloadDuration.Seconds(), Streams: overloadStreams, Bounds: adm, Capacity: map[string]float64{},
		ProbeClients: cfg.OverloadProbeClients}
	// Capacity: EventVault's on the same server without admission (the
	// same code path past the gate), raw's on its server without it.
	probes := map[string]fireFunc{
		sideOverloadEV:  (&appendShooter{http: client, base: noAdm.baseURL(), token: offToken, prefix: "ovoff", data: data}).fire,
		sideOverloadRaw: (&appendShooter{http: client, base: rawOpen.baseURL(), prefix: rawPrefix, data: data}).fire,
	}
	// Through the generator's client, when it is the child's: the 1× is
	// what the open loop's client can get answered.
	genProbes := map[string]*genSpec{
		sideOverloadEV:  spec(noAdm.baseURL(), offToken, "ovoff"),
		sideOverloadRaw: spec(rawOpen.baseURL(), "", rawPrefix),
	}
	for _, name := range []string{sideOverloadEV, sideOverloadRaw} {
		var c float64
		if cfg.OverloadInProcess {
			c, err = probeCapacity(ctx, cfg.OverloadProbeClients, cfg.OverloadDuration, probes[name])
		} else {
			var res genResult
			res, _, err = generate(ctx, genRequest{Main: *genProbes[name], Probe: cfg.OverloadProbeClients})
			c = res.Capacity
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rep.Capacity[name] = c
		say("overload: %s capacity %.0f appends/s (%d clients, closed loop)", name, c, cfg.OverloadProbeClients)
	}
	// The quiet tenant alone, unloaded: what its p99 beside a flood is
	// compared to.
	rep.QuietAlone = map[string]quietResult{}
	for _, s := range sides {
		if s.quiet == nil {
			continue
		}
		alone := overloadSide{name: s.name, fire: s.quiet, ev: s.ev, gen: s.quietGen}
		rate := quietShare * rep.Capacity[s.capacityOf]
		step, err := overloadStepOf(ctx, alone, rate, 0, cfg.OverloadDuration, dbURL, client, waits, &rep.StatementsNote, cfg.OverloadNetHTTP)
		if err != nil {
			return nil, fmt.Errorf("%s, the quiet tenant alone: %w", s.name, err)
		}
		rep.QuietAlone[s.name] = quietResult{OfferedPerSec: rate, OK: step.OK, Refused: step.Refused429 + step.Refused503, Failed: step.Failed, P50Ms: step.P50Ms, P99Ms: step.P99Ms}
		say("overload: %-27s the quiet tenant alone at %.0f/s: p50 %.1f ms p99 %.1f ms", s.name, rate, step.P50Ms, step.P99Ms)
	}
	for _, f := range cfg.OverloadFactors {
		for _, s := range sides {
			rate := f * rep.Capacity[s.capacityOf]
			step, err := overloadStepOf(ctx, s, rate, quietShare*rep.Capacity[s.capacityOf], cfg.OverloadDuration, dbURL, client, waits, &rep.StatementsNote, cfg.OverloadNetHTTP)
			if err != nil {
				return nil, fmt.Errorf("%s at %.0f/s: %w", s.name, rate, err)
			}
			step.Factor = f
			rep.Steps = append(rep.Steps, step)
			say("overload: %-27s %.1f× offered %5.0f/s answered %5.0f/s refused %d+%d failed %d p50 %.1f ms p99 %.1f ms",
				s.name, f, rate, step.AnsweredPerSec, step.Refused429, step.Refused503, step.Failed, step.P50Ms, step.P99Ms)
			// Let a backlog drain before the next step.
			time.Sleep(time.Second)
		}
	}
	for _, s := range sides {
		var steps []overloadStep
		for _, st := range rep.Steps {
			if st.Side == s.name {
				steps = append(steps, st)
			}
		}
		var held map[uuid.UUID]*found
		switch s.name {
		case sideOverloadRaw:
			held, err = rawHeld(ctx, table)
		case sideOverloadEV:
			held, err = eventVaultHeld(ctx, &evClient{http: client, base: ev.baseURL(), token: token}, "ov")
		default:
			held, err = eventVaultHeld(ctx, &evClient{http: client, base: noAdm.baseURL(), token: offToken}, "ovoff")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read back the acknowledged appends: %w", s.name, err)
		}
		c := checkAcks(s.name, steps, held)
		rep.Checks = append(rep.Checks, c)
		say("overload: %s: %d acknowledged, %d lost, %d moved, %d duplicated, %d refused but written; %d of unknown outcome, %d of them written",
			s.name, c.Acked, c.Lost, c.Moved, c.Duplicated, c.RefusedWritten, c.Unknown, c.UnknownWritten)
	}
	return rep, nil
}

// overloadStepOf runs one step of side s at rate, with diagnostics for
// EventVault's sides.
func overloadStepOf(ctx context.Context, s overloadSide, rate, quietRate float64, d time.Duration, dbURL string, client *http.Client,
	waits *rawbench.WaitSampler, note *string, netHTTP bool) (overloadStep, error) {
	var before counters
	statements := s.ev != nil && *note == ""
	if s.ev != nil {
		if statements {
			if err := rawbench.ResetStatements(ctx, dbURL); errors.Is(err, rawbench.ErrNoStatementStats) {
				*note, statements = err.Error(), false
			} else if err != nil {
				return overloadStep{}, err
			}
		}
		var err error
		if before, err = s.ev.counters(ctx, client); err != nil {
			return overloadStep{}, err
		}
		s.ev.timer.take()
	}
	sctx, stop := context.WithCancel(ctx)
	sampled := make(chan rawbench.Waits, 1)
	go func() {
		w, _ := waits.Sample(sctx, waitEvery)
		sampled <- w
	}()
	quiet := make(chan overloadStep, 1)
	var step overloadStep
	cpu := processCPU()
	if s.gen != nil {
		req := genRequest{Main: *s.gen, NetHTTP: netHTTP}
		req.Main.Rate = rate
		if s.quietGen != nil {
			q := *s.quietGen
			q.Rate = quietRate
			req.Quiet = &q
		}
		res, genCPU, err := generate(ctx, req)
		if err != nil {
			stop()
			<-sampled
			return overloadStep{}, err
		}
		step = res.Main.step()
		sent := step.Sent
		if res.Quiet != nil {
			sent += res.Quiet.Step.Sent
		}
		if sent > 0 {
			step.GenCPUUs = float64(genCPU.Microseconds()) / float64(sent)
		}
		if res.Quiet != nil {
			quiet <- res.Quiet.step()
		}
	} else {
		if s.quiet != nil {
			go func() { quiet <- openLoop(ctx, quietRate, d, s.quiet) }()
		}
		step = openLoop(ctx, rate, d, s.fire)
	}
	cpu = processCPU() - cpu
	stop()
	w := <-sampled
	step.Side = s.name
	if s.quiet != nil {
		q := <-quiet
		step.Quiet = &quietResult{OfferedPerSec: quietRate, OK: q.OK, Refused: q.Refused429 + q.Refused503, Failed: q.Failed, P50Ms: q.P50Ms, P99Ms: q.P99Ms}
	}
	if s.ev == nil {
		return step, nil
	}
	step.Server = s.ev.timer.take()
	after, err := s.ev.counters(ctx, client)
	if err != nil {
		return overloadStep{}, err
	}
	step.Server.Queued = after.queuedOK - before.queuedOK
	step.Server.QueuedRefused = after.queuedNo - before.queuedNo
	if step.Server.Queued > 0 {
		step.Server.QueueWaitMs = 1000 * (after.queuedOKSum - before.queuedOKSum) / step.Server.Queued
	}
	diag := &stepDiag{Waits: waitShares(w.Seen)}
	if len(diag.Waits) > 4 {
		diag.Waits = diag.Waits[:4]
	}
	if w.Polls > 0 {
		n := 0
		for _, c := range w.Seen {
			n += c
		}
		diag.BusySessions = float64(n) / float64(w.Polls)
	}
	pb, pa := before.pool, after.pool
	if acq := pa.Acquires - pb.Acquires; acq > 0 {
		diag.PoolWaited = float64(pa.Waited-pb.Waited) / float64(acq)
		if waited := pa.Waited - pb.Waited; waited > 0 {
			diag.PoolWaitMs = ms(pa.Wait-pb.Wait) / float64(waited)
		}
	}
	diag.GroupAppends = after.groupAppends - before.groupAppends
	diag.GroupWritten = after.groupWritten - before.groupWritten
	diag.StoreErrors = after.storeErrors - before.storeErrors
	if step.OK > 0 {
		diag.CPUPerOKUs = float64(cpu.Microseconds()) / float64(step.OK)
	}
	if statements {
		if diag.Statements, err = rawbench.TopStatements(ctx, dbURL, 4); err != nil {
			return overloadStep{}, err
		}
	}
	step.Diag = diag
	return step, nil
}

// counters are an EventVault server's counters a step compares.
type counters struct {
	pool                                    postgres.PoolStats
	groupAppends, groupWritten, storeErrors float64
	// queuedOK and queuedNo count the requests that waited in admission's
	// queue, admitted and refused; queuedOKSum is the admitted ones' wait
	// in seconds.
	queuedOK, queuedNo, queuedOKSum float64
}

// counters reads the server's pool statistics and scrapes its group
// commit and store error counters from /metrics.
func (s *evServer) counters(ctx context.Context, client *http.Client) (counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.metricsLn.Addr().String()+"/metrics", nil)
	if err != nil {
		return counters{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return counters{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return counters{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	c := counters{pool: s.store.PoolStats()}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		switch base, _, _ := strings.Cut(name, "{"); base {
		case "eventvault_append_group_appends_sum":
			c.groupAppends += v
		case "eventvault_append_group_written_total":
			c.groupWritten += v
		case "eventvault_store_errors_total":
			c.storeErrors += v
		case "eventvault_admission_wait_seconds_count":
			if strings.Contains(name, `outcome="admitted"`) {
				c.queuedOK += v
			} else {
				c.queuedNo += v
			}
		case "eventvault_admission_wait_seconds_sum":
			if strings.Contains(name, `outcome="admitted"`) {
				c.queuedOKSum += v
			}
		}
	}
	return c, sc.Err()
}

// serverTimes is a step as the EventVault server saw it: from a request's
// headers read to its handler's return, so without the generator's and
// the client connection's delays; and admission's queue.
type serverTimes struct {
	AdmittedP50Ms float64 `json:"admitted_p50_ms"`
	AdmittedP99Ms float64 `json:"admitted_p99_ms"`
	RefusalP99Ms  float64 `json:"refusal_p99_ms"`
	// QuietP99Ms is the quiet tenant's admitted p99.
	QuietP99Ms float64 `json:"quiet_p99_ms"`
	// Queued is how many requests waited in admission's queue and were
	// admitted, QueueWaitMs their mean wait; QueuedRefused how many waited
	// and were refused.
	Queued        float64 `json:"queued_admitted"`
	QueueWaitMs   float64 `json:"queue_wait_ms"`
	QueuedRefused float64 `json:"queued_refused"`
}

// handlerTimer times the requests of a server's handler, the admitted
// (2xx) and the refused (429, 503) apart, and the quiet tenant's (by its
// Authorization header) apart from the rest.
type handlerTimer struct {
	next http.Handler
	on   atomic.Bool
	// quietAuth is set before on.
	quietAuth string
	mu        sync.Mutex
	ok, no, q []time.Duration
}

// start times requests from now on, quietAuth's as the quiet tenant's.
func (t *handlerTimer) start(quietAuth string) {
	t.quietAuth = quietAuth
	t.on.Store(true)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (t *handlerTimer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !t.on.Load() {
		t.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	t.next.ServeHTTP(sw, r)
	took := time.Since(start)
	quiet := t.quietAuth != "" && r.Header.Get("Authorization") == t.quietAuth
	t.mu.Lock()
	switch {
	case sw.status/100 == 2 && quiet:
		t.q = append(t.q, took)
	case sw.status/100 == 2:
		t.ok = append(t.ok, took)
	case sw.status == http.StatusTooManyRequests || sw.status == http.StatusServiceUnavailable:
		t.no = append(t.no, took)
	}
	t.mu.Unlock()
}

// take returns the times since the last take, and forgets them.
func (t *handlerTimer) take() *serverTimes {
	t.mu.Lock()
	ok, no, q := t.ok, t.no, t.q
	t.ok, t.no, t.q = nil, nil, nil
	t.mu.Unlock()
	for _, s := range [][]time.Duration{ok, no, q} {
		slices.Sort(s)
	}
	return &serverTimes{AdmittedP50Ms: ms(quantile(ok, 0.5)), AdmittedP99Ms: ms(quantile(ok, 0.99)), RefusalP99Ms: ms(quantile(no, 0.99)), QuietP99Ms: ms(quantile(q, 0.99))}
}
