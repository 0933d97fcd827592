package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventvault/eventvault/api"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// side is one side of the comparison: EventVault over HTTP, the raw
// baseline, message-db, and for batches raw COPY and EventVault's store
// alone.
type side struct {
	name string
	t    target
	// runs is the workloads it runs; nil for all but read_pii.
	runs []string
	prep prepared
	ops  map[string][]op
	got  map[string]*sample
	// metrics is the server whose /metrics counts this side's group
	// commits; nil for a side that has none.
	metrics *evServer
}

func (s *side) runsWorkload(key string) bool {
	// read_pii compares two EventVault sides of its own only.
	return (s.runs == nil && key != piiWorkload.key) || slices.Contains(s.runs, key)
}

// reads reports whether the side reads, and so has the events to read
// written first. It has them even when no read workload runs: ANALYZE
// then sees a table of the size the appends find, as in a full run. (On a
// table analyzed while empty, PostgreSQL plans the appends' id lookups as
// scans of a table it believes empty, which they soon are not: PostgreSQL
// burns CPU there until autovacuum analyzes again.)
func (s *side) reads() bool {
	return s.runsWorkload("read_stream") || s.runsWorkload("read_all")
}

// Log layout: read-all walks a log written first, in batches of logBatch
// events spread round-robin over logStreams streams, so that a page holds
// many streams, as a real log does.
const (
	logBatch   = 10
	logStreams = 100
	logWriters = 4
	// streamBatch is the batch size that writes the stream the stream read reads.
	streamBatch = 100
	// logCategory is the category of the log's streams (log-0, log-1, …):
	// message-db reads all of a category.
	logCategory = "log"
)

// run creates a database on the server, starts EventVault on it, runs the
// workloads on both sides and returns the report. Progress goes to progress.
func run(ctx context.Context, cfg Config, progress io.Writer) (_ *Report, err error) {
	start, load := time.Now(), loadAverage()
	say := func(format string, args ...any) { fmt.Fprintf(progress, "evbench: "+format+"\n", args...) }

	db, err := rawbench.CreateDatabase(ctx, cfg.ServerURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := db.Drop(context.WithoutCancel(ctx)); derr != nil && err == nil {
			err = derr
		}
	}()
	info, err := rawbench.Server(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	say("database %s on PostgreSQL %s, fsync=%s, synchronous_commit=%s", db.Name(), info.Version, info.Fsync, info.SynchronousCommit)

	keyDir, err := os.MkdirTemp("", "evbench-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder for the root key: %w", err)
	}
	defer os.RemoveAll(keyDir)
	ev, err := startEventVault(ctx, db.URL, keyDir, cfg.MaxConns, cfg.NoGroupCommit, false, api.AdmissionConfig{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := ev.close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = fmt.Errorf("stop EventVault: %w", cerr)
		}
	}()
	quiet, err := startEventVault(ctx, db.URL, keyDir, cfg.MaxConns, cfg.NoGroupCommit, true, api.AdmissionConfig{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := quiet.close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = fmt.Errorf("stop EventVault without audit: %w", cerr)
		}
	}()
	client := newHTTPClient(2 * maxClients(cfg))
	defer client.CloseIdleConnections()
	token, err := ev.tenantToken(ctx, client, benchTenant)
	if err != nil {
		return nil, err
	}
	piiTok, err := ev.piiToken(ctx, client, benchTenant)
	if err != nil {
		return nil, err
	}
	// A tenant of its own: the two servers' stream caches never meet.
	quietToken, err := quiet.tenantToken(ctx, client, benchTenant+"-noaudit")
	if err != nil {
		return nil, err
	}
	table, err := rawbench.Open(ctx, db.URL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer table.Close()

	waits, err := rawbench.NewWaitSampler(ctx, db.URL)
	if err != nil {
		return nil, err
	}
	defer waits.Close(context.WithoutCancel(ctx))
	var noStatements string
	if err := waits.NoStatementStats(); err != nil {
		noStatements = err.Error()
	}

	if err := rawbench.InstallMessageDB(ctx, db.URL, cfg.MessageDB); err != nil {
		return nil, err
	}
	mdb, err := rawbench.OpenMessageDB(ctx, db.URL, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	defer mdb.Close()
	say("message-db installed from %s", cfg.MessageDB)

	ws := selectWorkloads(cfg)
	sides := []*side{
		{name: sideEventVault, t: &evClient{http: client, base: ev.baseURL(), token: token, encoding: cfg.ReadEncoding}, metrics: ev},
		{name: sideRaw, t: rawTarget{table: table}},
		{name: sideMessageDB, t: messageDBTarget{db: mdb}, runs: []string{"append", "read_stream", "read_all"}},
		{name: sideRawCopy, t: copyTarget{table: table}, runs: []string{"append_batch"}},
		{name: sideStore, t: &storeTarget{db: ev.store}, runs: []string{"append_batch"}, metrics: ev},
		{name: sideNoAudit, t: &evClient{http: client, base: quiet.baseURL(), token: quietToken, encoding: cfg.ReadEncoding}, runs: []string{"append"}, metrics: quiet},
		{name: sidePII, t: piiTarget{evClient: &evClient{http: client, base: ev.baseURL(), token: piiTok, encoding: cfg.ReadEncoding}, marked: true}, runs: []string{"read_pii"}},
		{name: sidePIIPlain, t: piiTarget{evClient: &evClient{http: client, base: ev.baseURL(), token: piiTok, encoding: cfg.ReadEncoding}}, runs: []string{"read_pii"}},
	}
	readsPII := slices.ContainsFunc(ws, func(w workload) bool { return w.key == piiWorkload.key })
	for _, s := range sides {
		if s.reads() && len(ws) > 0 {
			if s.prep, err = prepare(ctx, s.t, cfg); err != nil {
				return nil, fmt.Errorf("%s: write the events to read: %w", s.name, err)
			}
			if b, ok := s.t.(interface {
				logBounds(context.Context) (int64, int64, error)
			}); ok {
				if s.prep.logFirst, s.prep.logLast, err = b.logBounds(ctx); err != nil {
					return nil, fmt.Errorf("%s: the log's bounds: %w", s.name, err)
				}
			}
		}
		if pt, ok := s.t.(piiTarget); ok && readsPII {
			if err := pt.prepare(ctx, cfg.StreamEvents, cfg.EventSize); err != nil {
				return nil, fmt.Errorf("%s: write the events to read: %w", s.name, err)
			}
		}
		s.ops, s.got = map[string][]op{}, map[string]*sample{}
		for _, w := range ws {
			if s.runsWorkload(w.key) {
				s.ops[w.key] = w.workers(s.t, cfg, &s.prep)
				s.got[w.key] = &sample{}
			}
		}
	}
	if err := rawbench.Analyze(ctx, db.URL); err != nil {
		return nil, err
	}
	if len(ws) > 0 {
		say("EventVault on %s; %d events written per side for the reads, tables analyzed; warming up", ev.baseURL(), cfg.LogEvents+cfg.StreamEvents)
	}
	if cfg.Warmup > 0 {
		for _, w := range ws {
			for _, s := range sides {
				if !s.runsWorkload(w.key) {
					continue
				}
				if _, err := runSlice(ctx, s.ops[w.key], cfg.Warmup); err != nil {
					return nil, fmt.Errorf("%s, %s, warm-up: %w", s.name, w.key, err)
				}
			}
		}
	}

	stopProfile := func() {}
	if cfg.CPUProfile != "" {
		if stopProfile, err = startCPUProfile(cfg.CPUProfile); err != nil {
			return nil, err
		}
	}
	defer func() { stopProfile() }()
	if cfg.MemProfile != "" {
		if err := writeAllocs(cfg.MemProfile + ".start"); err != nil {
			return nil, err
		}
	}
	for r := range cfg.Rounds {
		for wi, w := range ws {
			var order []*side
			for _, s := range sides {
				if s.runsWorkload(w.key) {
					order = append(order, s)
				}
			}
			// Rotate who goes first, by round and by workload, so that
			// drift (checkpoints, vacuum, a noisy neighbour) hits all.
			k := (r + wi) % len(order)
			order = append(order[k:], order[:k]...)
			rates := make([]string, 0, len(order))
			for _, s := range order {
				var before groupCommits
				if s.metrics != nil {
					if before, err = s.metrics.groupCommits(ctx, client); err != nil {
						return nil, fmt.Errorf("%s, %s, round %d: %w", s.name, w.key, r+1, err)
					}
				}
				got, err := measure(ctx, s.ops[w.key], cfg.Duration, waits)
				if err != nil {
					return nil, fmt.Errorf("%s, %s, round %d: %w", s.name, w.key, r+1, err)
				}
				if s.metrics != nil {
					after, err := s.metrics.groupCommits(ctx, client)
					if err != nil {
						return nil, fmt.Errorf("%s, %s, round %d: %w", s.name, w.key, r+1, err)
					}
					got.groups, got.groupAppends = after.groups-before.groups, after.appends-before.appends
				}
				s.got[w.key].add(got)
				rates = append(rates, fmt.Sprintf("%s %.0f", s.name, got.rate()))
			}
			say("round %d/%d %-13s ev/s: %s", r+1, cfg.Rounds, w.key, strings.Join(rates, ", "))
		}
	}
	// The crypto benchmark is not part of the profile.
	stopProfile()
	stopProfile = func() {}
	if cfg.MemProfile != "" {
		if err := writeAllocs(cfg.MemProfile); err != nil {
			return nil, err
		}
	}

	var crypto cryptoResult
	if len(ws) > 0 {
		say("measuring the crypto path")
		if crypto, err = benchCrypto(ctx, ev.keys, cfg.EventSize); err != nil {
			return nil, err
		}
	}
	var feed *feedResult
	if !cfg.NoFeed {
		say("measuring the feed")
		f, err := benchFeed(ctx, ev, quiet, ev.feed, token, cfg.FeedSamples, cfg.FeedSubscribers, say)
		if err != nil {
			return nil, err
		}
		feed = &f
	}
	// Before the overload workload, whose tenants make KEKs of their own.
	roots, err := ev.rootCalls(ctx, client)
	if err != nil {
		return nil, err
	}
	var overload *overloadReport
	if cfg.Overload {
		say("overload: open-loop appends at %v × capacity, %s each", cfg.OverloadFactors, cfg.OverloadDuration)
		if cfg.CPUProfile != "" && len(ws) == 0 {
			// The overload alone: its profile, the server's (and the
			// generator's with -overload-in-process).
			if stopProfile, err = startCPUProfile(cfg.CPUProfile); err != nil {
				return nil, err
			}
		}
		if overload, err = runOverload(ctx, cfg, db.URL, keyDir, ev, client, table, waits, say); err != nil {
			return nil, fmt.Errorf("overload: %w", err)
		}
	}
	rep := &Report{
		Started:  start.UTC(),
		Machine:  newMachine(load),
		Postgres: info,
		Settings: settings{
			Rounds:         cfg.Rounds,
			SliceSeconds:   cfg.Duration.Seconds(),
			WarmupSeconds:  cfg.Warmup.Seconds(),
			EventSize:      cfg.EventSize,
			LogEvents:      cfg.LogEvents,
			MaxConns:       cfg.MaxConns,
			ReadEncoding:   cfg.ReadEncoding,
			ProcessSharing: "clients, EventVault server and PostgreSQL share this machine",
		},
		Crypto:       crypto,
		RootKeyCalls: roots,
		NoStatements: noStatements,
		Feed:         feed,
		Overload:     overload,
	}
	byName := map[string]*side{}
	for _, s := range sides {
		byName[s.name] = s
	}
	for _, w := range ws {
		results := map[string]*sample{}
		for name, s := range byName {
			if g, ok := s.got[w.key]; ok {
				results[name] = g
			}
		}
		rep.Workloads = append(rep.Workloads, newWorkloadResult(w, cfg, results))
	}
	rep.TotalSeconds = time.Since(start).Seconds()
	return rep, nil
}

func selectWorkloads(cfg Config) []workload {
	if len(cfg.Workloads) == 0 {
		return workloads
	}
	// "overload" is not one of the rounds' workloads (overload.go).
	var ws []workload
	for _, w := range workloads {
		if slices.Contains(cfg.Workloads, w.key) {
			ws = append(ws, w)
		}
	}
	return ws
}

func maxClients(cfg Config) int {
	return max(cfg.AppendClients, cfg.BatchClients, cfg.StreamReaders, cfg.AllReaders, logWriters)
}

// prepare writes, before anything else, the log read-all walks and then the
// stream the stream read reads, and returns where the log lies.
func prepare(ctx context.Context, t target, cfg Config) (prepared, error) {
	p := prepared{logFirst: -1, logLast: -1}
	batches := (cfg.LogEvents + logBatch - 1) / logBatch
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		wg       sync.WaitGroup
	)
	data := newData(cfg.EventSize, 42)
	for range logWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				b := next
				next++
				stop := b >= batches || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				n := min(logBatch, cfg.LogEvents-b*logBatch)
				stream := "log-" + strconv.Itoa(b%logStreams)
				globals, err := t.append(ctx, stream, int64(b/logStreams*logBatch), newEvents(n, data))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for _, g := range globals {
					if p.logFirst < 0 || g < p.logFirst {
						p.logFirst = g
					}
					p.logLast = max(p.logLast, g)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return prepared{}, firstErr
	}
	for first := 0; first < cfg.StreamEvents; first += streamBatch {
		n := min(streamBatch, cfg.StreamEvents-first)
		if _, err := t.append(ctx, readStreamName, int64(first), newEvents(n, data)); err != nil {
			return prepared{}, err
		}
	}
	return p, nil
}

// waitEvery is how often the wait sampler looks at PostgreSQL's sessions.
const waitEvery = 50 * time.Millisecond

// measure runs one slice of ops while the wait sampler watches PostgreSQL,
// and reads the statements' totals before and after it, where the server
// keeps them.
func measure(ctx context.Context, ops []op, d time.Duration, waits *rawbench.WaitSampler) (sample, error) {
	type sampled struct {
		waits rawbench.Waits
		err   error
	}
	before, stmtErr := waits.StatementCounts(ctx)
	if stmtErr != nil && !errors.Is(stmtErr, rawbench.ErrNoStatementStats) {
		return sample{}, stmtErr
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan sampled, 1)
	go func() {
		got, err := waits.Sample(sctx, waitEvery)
		done <- sampled{got, err}
	}()
	got, err := runSlice(ctx, ops, d)
	stop()
	w := <-done
	if err != nil {
		return sample{}, err
	}
	if w.err != nil {
		return sample{}, w.err
	}
	got.waits, got.polls = w.waits.Seen, w.waits.Polls
	if stmtErr == nil {
		after, err := waits.StatementCounts(ctx)
		if err != nil {
			return sample{}, err
		}
		// Figures reset meanwhile: the slice has none, rather than wrong
		// ones.
		if d, ok := after.Since(before); ok {
			got.pgExecMs, got.pgWALBytes, got.pgEvents, got.pgSlices = d.ExecMs, d.WALBytes, got.events, 1
		}
	}
	return got, nil
}

// writeAllocs writes this process's allocation profile so far (every
// allocation since it started, sampled) to path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("allocation profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("allocation profile: %w", err)
	}
	return nil
}

// startCPUProfile profiles this process until the returned function runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
