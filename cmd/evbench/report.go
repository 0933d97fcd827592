package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres/rawbench"
)

// Report is the outcome of a run, as printed and as JSON.
type Report struct {
	Started  time.Time           `json:"started"`
	Machine  machine             `json:"machine"`
	Postgres rawbench.ServerInfo `json:"postgres"`
	Settings settings            `json:"settings"`
	// Workloads are in the order.
	Workloads []workloadResult `json:"workloads"`
	Crypto    cryptoResult     `json:"crypto"`
	// RootKeyCalls counts the root key provider's calls over the whole run,
	// setup included.
	RootKeyCalls rootCalls `json:"root_key_calls"`
	// NoStatements says why the sides have no statement figures
	// (PGExecPerEventUs): the server does not load pg_stat_statements, or
	// is older than PostgreSQL 14.
	NoStatements string `json:"no_pg_statement_stats,omitempty"`
	// Feed is the subscription feed's measure; nil with -no-feed.
	Feed *feedResult `json:"feed,omitempty"`
	// Overload is the open-loop overload workload (issue 16); nil when it
	// did not run.
	Overload     *overloadReport `json:"overload,omitempty"`
	TotalSeconds float64         `json:"total_seconds"`
}

type machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15-minute load
	// averages when the run began and ended (empty where there is no
	// /proc): on a shared machine, a sign of how noisy it was.
	LoadStart string `json:"load_start,omitempty"`
	LoadEnd   string `json:"load_end,omitempty"`
}

type settings struct {
	Rounds         int     `json:"rounds"`
	SliceSeconds   float64 `json:"slice_seconds"`
	WarmupSeconds  float64 `json:"warmup_seconds"`
	EventSize      int     `json:"event_size"`
	LogEvents      int     `json:"log_events"`
	MaxConns       int32   `json:"max_conns"`
	ReadEncoding   string  `json:"read_encoding"`
	ProcessSharing string  `json:"process_sharing"`
}

type rootCalls struct {
	Wrap   int64 `json:"wrap"`
	Unwrap int64 `json:"unwrap"`
}

type workloadResult struct {
	Key              string     `json:"key"`
	Title            string     `json:"title"`
	Clients          int        `json:"clients"`
	EventsPerRequest int        `json:"events_per_request"`
	EventVault       sideResult `json:"eventvault"`
	Raw              sideResult `json:"raw"`
	// Others are the other sides that ran the workload, by name:
	// message-db, raw COPY, EventVault store.
	Others map[string]sideResult `json:"others,omitempty"`
	// Ratio is EventVault's events/s over the raw baseline's; Goal and
	// MeetsGoal are for it.
	Ratio     float64 `json:"ratio"`
	Goal      float64 `json:"goal"`
	MeetsGoal bool    `json:"meets_goal"`
	// Comparisons are every ratio the issue sets a goal for (and the
	// throughput ratios without one), the first being Ratio's.
	Comparisons []comparison `json:"comparisons"`
}

// comparison is one ratio of two sides' figures and its goal.
type comparison struct {
	// Name says what is divided by what: "EventVault/message-db".
	Name string `json:"name"`
	// Figure is "events_per_sec" or "p99_ms".
	Figure string  `json:"figure"`
	Ratio  float64 `json:"ratio"`
	// Goal is the least Ratio asked for (the most, with AtMost); 0 for
	// none.
	Goal      float64 `json:"goal,omitempty"`
	AtMost    bool    `json:"at_most,omitempty"`
	MeetsGoal bool    `json:"meets_goal"`
}

type sideResult struct {
	Events       int64   `json:"events"`
	Requests     int64   `json:"requests"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	// CPUPerEventUs is this process's CPU time per event (client and, for
	// EventVault, server; PostgreSQL's is not in it).
	CPUPerEventUs float64 `json:"process_cpu_per_event_us"`
	// PGWaits is what this side's PostgreSQL sessions were doing, sampled
	// from pg_stat_activity during the slices, by falling share.
	PGWaits []waitShare `json:"pg_waits"`
	// PGBusySessions is the mean number of this side's PostgreSQL
	// sessions seen busy (running, waiting, or idle inside a transaction).
	PGBusySessions float64 `json:"pg_busy_sessions"`
	// GroupCommits is how many group commits the side's server made during
	// the slices and AppendsPerGroup the mean appends each carried, from
	// its /metrics (eventvault_append_group_appends); absent for a side
	// without one, or a workload that appends nothing.
	GroupCommits    int64   `json:"group_commits,omitempty"`
	AppendsPerGroup float64 `json:"appends_per_group,omitempty"`
	// PGExecPerEventUs and PGWALBytesPerEvent are the execution time (µs)
	// and WAL (bytes) per event of the top-level statements PostgreSQL ran
	// for the side during its slices, from pg_stat_statements (what they
	// hold: rawbench.StatementTotals), over the PGStatementSlices slices
	// whose figures were not reset meanwhile. Absent when the server does
	// not keep them.
	PGExecPerEventUs   float64 `json:"pg_exec_per_event_us,omitempty"`
	PGWALBytesPerEvent float64 `json:"pg_wal_bytes_per_event,omitempty"`
	PGStatementSlices  int     `json:"pg_statement_slices,omitempty"`
}

func newMachine(loadStart string) machine {
	return machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		LoadStart: loadStart, LoadEnd: loadAverage()}
}

// loadAverage returns the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func newSideResult(s *sample) sideResult {
	return sideResult{
		Events:             s.events,
		Requests:           s.requests,
		Seconds:            s.elapsed.Seconds(),
		EventsPerSec:       s.rate(),
		P50Ms:              ms(percentile(s.latencies, 50)),
		P99Ms:              ms(percentile(s.latencies, 99)),
		CPUPerEventUs:      float64(s.cpuPerEvent()) / float64(time.Microsecond),
		PGWaits:            waitShares(s.waits),
		PGBusySessions:     s.busySessions(),
		GroupCommits:       s.groups,
		AppendsPerGroup:    ratio(float64(s.groupAppends), float64(s.groups)),
		PGExecPerEventUs:   1000 * ratio(s.pgExecMs, float64(s.pgEvents)),
		PGWALBytesPerEvent: ratio(s.pgWALBytes, float64(s.pgEvents)),
		PGStatementSlices:  s.pgSlices,
	}
}

// sides returns every side of the workload by name: EventVault, raw and
// the others, or for read_pii, whose EventVault and raw are two of its
// others (sidePII, sidePIIPlain), the others alone.
func (x workloadResult) sides() map[string]sideResult {
	all := maps.Clone(x.Others)
	if all == nil {
		all = map[string]sideResult{}
	}
	if _, ok := x.Others[sidePII]; !ok {
		all[sideEventVault], all[sideRaw] = x.EventVault, x.Raw
	}
	return all
}

func newWorkloadResult(w workload, c Config, got map[string]*sample) workloadResult {
	r := workloadResult{
		Key:              w.key,
		Title:            w.title,
		Clients:          w.clients(c),
		EventsPerRequest: w.perRequest(c),
		Goal:             w.goal,
	}
	sides := map[string]sideResult{}
	for name, s := range got {
		sides[name] = newSideResult(s)
	}
	r.EventVault, r.Raw = sides[sideEventVault], sides[sideRaw]
	for name, s := range sides {
		if name != sideEventVault && name != sideRaw {
			if r.Others == nil {
				r.Others = map[string]sideResult{}
			}
			r.Others[name] = s
		}
	}
	for _, g := range w.goals {
		a, aok := sides[g.of]
		b, bok := sides[g.over]
		if !aok || !bok {
			continue
		}
		cmp := comparison{Name: g.of + "/" + g.over, Figure: "events_per_sec", Goal: g.goal, AtMost: g.atMost}
		if g.atMost {
			cmp.Figure, cmp.Ratio = "p99_ms", ratio(a.P99Ms, b.P99Ms)
			cmp.MeetsGoal = cmp.Ratio > 0 && cmp.Ratio <= g.goal
		} else {
			cmp.Ratio = ratio(a.EventsPerSec, b.EventsPerSec)
			cmp.MeetsGoal = cmp.Ratio >= g.goal
		}
		r.Comparisons = append(r.Comparisons, cmp)
	}
	if _, ok := sides[sideRaw]; !ok && len(w.goals) > 0 {
		// A workload of two EventVault sides (read_pii): the main table's
		// two columns are its first goal's sides.
		r.EventVault, r.Raw = sides[w.goals[0].of], sides[w.goals[0].over]
	}
	r.Ratio = ratio(r.EventVault.EventsPerSec, r.Raw.EventsPerSec)
	r.MeetsGoal = r.Ratio >= r.Goal
	return r
}

// writeTable prints the report for people.
func (r *Report) writeTable(w io.Writer) error {
	s := r.Settings
	fmt.Fprintf(w, "\nEventVault (HTTP API) vs plain pgx, %d rounds of %s per workload and side, %d-byte events\n",
		s.Rounds, time.Duration(s.SliceSeconds*float64(time.Second)), s.EventSize)
	fmt.Fprintf(w, "PostgreSQL %s (fsync=%s, synchronous_commit=%s); %d CPUs, %s %s/%s; %s\n",
		r.Postgres.Version, r.Postgres.Fsync, r.Postgres.SynchronousCommit, r.Machine.CPUs, r.Machine.GoVersion, r.Machine.GOOS, r.Machine.GOARCH, s.ProcessSharing)
	if r.Machine.LoadStart != "" {
		fmt.Fprintf(w, "load average %s at the start, %s at the end\n", r.Machine.LoadStart, r.Machine.LoadEnd)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tclients\tev/req\tEV ev/s\traw ev/s\tEV/raw\tgoal\t\tEV p50 ms\tEV p99 ms\traw p50 ms\traw p99 ms\t")
	for _, x := range r.Workloads {
		goal, verdict := "—", ""
		if x.Goal > 0 {
			goal, verdict = fmt.Sprintf("≥%.2f", x.Goal), "met"
			if !x.MeetsGoal {
				verdict = "SHORT"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n",
			x.Title, x.Clients, x.EventsPerRequest, x.EventVault.EventsPerSec, x.Raw.EventsPerSec, x.Ratio, goal, verdict,
			x.EventVault.P50Ms, x.EventVault.P99Ms, x.Raw.P50Ms, x.Raw.P99Ms)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nEvery side, and the ratios the issue sets goals for (ev/s over ev/s; p99 over p99, at most):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\tev/s\tp50 ms\tp99 ms\tCPU µs/ev\t")
	for _, x := range r.Workloads {
		all := x.sides()
		for _, name := range []string{sideEventVault, sideStore, sideRaw, sideRawCopy, sideMessageDB, sidePII, sidePIIPlain} {
			s, ok := all[name]
			if !ok || s.Requests == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t\n", x.Title, name, s.EventsPerSec, s.P50Ms, s.P99Ms, s.CPUPerEventUs)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tratio\tof\tvalue\tgoal\t\t")
	for _, x := range r.Workloads {
		for _, c := range x.Comparisons {
			goal, verdict := "—", ""
			if c.Goal > 0 {
				verdict = "met"
				if !c.MeetsGoal {
					verdict = "SHORT"
				}
				goal = fmt.Sprintf("≥%.2f", c.Goal)
				if c.AtMost {
					goal = fmt.Sprintf("≤%.2f", c.Goal)
				}
			}
			fig := "ev/s"
			if c.Figure == "p99_ms" {
				fig = "p99"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t\n", x.Title, c.Name, fig, c.Ratio, goal, verdict)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nCPU of this Go process per event (µs; EventVault's client and server, raw's client; PostgreSQL not included):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tEV\traw\t")
	for _, x := range r.Workloads {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t\n", x.Title, x.EventVault.CPUPerEventUs, x.Raw.CPUPerEventUs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeGroups(w); err != nil {
		return err
	}
	if err := r.writeStatements(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nPostgreSQL sessions of each side, sampled every %s: mean busy sessions, and what they were doing (top %d):\n", waitEvery, topWaits)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, x := range r.Workloads {
		fmt.Fprintf(tw, "%s\tEV\t%.1f\t%s\t\n", x.Title, x.EventVault.PGBusySessions, formatWaits(x.EventVault.PGWaits))
		fmt.Fprintf(tw, "\traw\t%.1f\t%s\t\n", x.Raw.PGBusySessions, formatWaits(x.Raw.PGWaits))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	c := r.Crypto
	fmt.Fprintf(w, "\nencryption CPU per %d-byte event (Go benchmark of the stream cipher): append %.2f µs (content MAC %.2f + seal %.2f), read %.2f µs (open)\n",
		c.EventSize, (c.ContentMACNs+c.SealNs)/1000, c.ContentMACNs/1000, c.SealNs/1000, c.OpenNs/1000)
	fmt.Fprintf(w, "root key provider calls during the run (from EventVault's /metrics): %d wrap, %d unwrap\n", r.RootKeyCalls.Wrap, r.RootKeyCalls.Unwrap)
	fmt.Fprintf(w, "EventVault's reads were asked for and decoded as %s\n", s.ReadEncoding)
	if f := r.Feed; f != nil {
		fmt.Fprintf(w, "\nfeed (GET /v1/subscribe), %d events appended one at a time, timed from the append request to the SSE client (and from its 201):\n", f.Samples)
		fmt.Fprintf(w, "  same node:  p50 %.2f ms, p99 %.2f ms (after the 201: p50 %.2f, p99 %.2f)\n", f.SameNode.EndToEndP50Ms, f.SameNode.EndToEndP99Ms, f.SameNode.AfterCommitP50Ms, f.SameNode.AfterCommitP99Ms)
		fmt.Fprintf(w, "  other node: p50 %.2f ms, p99 %.2f ms (after the 201: p50 %.2f, p99 %.2f; the shared reader polls every %s)\n", f.OtherNode.EndToEndP50Ms, f.OtherNode.EndToEndP99Ms, f.OtherNode.AfterCommitP50Ms, f.OtherNode.AfterCommitP99Ms, engine.DefaultFeedPoll)
		fmt.Fprintf(w, "  %d idle subscribers on one node: %.0f bytes of heap and %.1f goroutines each (server and client sides, both in this process)\n", f.IdleSubscribers, f.HeapBytesPerSubscriber, f.GoroutinesPerSubscriber)
		fmt.Fprintf(w, "  %d appends reached them %d times (of %d) with %d read-all queries by the one shared reader\n", f.FanoutAppends, f.Delivered, f.FanoutAppends*f.IdleSubscribers, f.StoreReads)
	}
	if r.Overload != nil {
		if err := r.Overload.writeTable(w); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "total time %.1f s\n", r.TotalSeconds)
	return nil
}

// topWaits is how many waits the table shows per side.
const topWaits = 3

func formatWaits(ws []waitShare) string {
	parts := make([]string, 0, topWaits)
	for i, w := range ws {
		if i == topWaits {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", w.Wait, 100*w.Share))
	}
	if len(parts) == 0 {
		return "(none seen)"
	}
	return strings.Join(parts, ", ")
}

// writeJSON writes the report for machines.
func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeGroups prints the group commits of each side that made some: how
// many, and the appends each carried on average.
func (r *Report) writeGroups(w io.Writer) error {
	type row struct {
		workload, side string
		s              sideResult
	}
	var rows []row
	for _, x := range r.Workloads {
		all := x.sides()
		for _, name := range slices.Sorted(maps.Keys(all)) {
			if s := all[name]; s.GroupCommits > 0 {
				rows = append(rows, row{x.Title, name, s})
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nGroup commits of EventVault's store during the slices (from each server's /metrics): appends per group commit, and how many:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\tappends per group commit\tgroup commits\t")
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t\n", x.workload, x.side, x.s.AppendsPerGroup, x.s.GroupCommits)
	}
	return tw.Flush()
}

// writeStatements prints, for every side of every workload, PostgreSQL's
// statement execution time and WAL per event, or why there are none.
func (r *Report) writeStatements(w io.Writer) error {
	if r.NoStatements != "" {
		_, err := fmt.Fprintf(w, "\nPostgreSQL's statement time per event: not measured (%s); scripts/with-postgres.sh loads pg_stat_statements where the server has it\n", r.NoStatements)
		return err
	}
	fmt.Fprintf(w, "\nPostgreSQL's statements per event for each side during its slices (pg_stat_statements): execution time, with what the statements waited on\n"+
		"(locks, I/O, a COPY's rows arriving) but not their parsing, planning or commits' WAL flushes; WAL written, commit records aside:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\texecution µs/ev\tWAL bytes/ev\t")
	for _, x := range r.Workloads {
		all := x.sides()
		for _, name := range slices.Sorted(maps.Keys(all)) {
			s := all[name]
			if s.PGStatementSlices == 0 {
				// Every slice's figures were reset meanwhile (another
				// run on the server resetting pg_stat_statements).
				fmt.Fprintf(tw, "%s\t%s\tn/a\tn/a\t\n", x.Title, name)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f\t\n", x.Title, name, s.PGExecPerEventUs, s.PGWALBytesPerEvent)
		}
	}
	return tw.Flush()
}
