package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the overload workload's load
// generator, as evbench's own binary does (overload_child.go): the
// harness starts os.Executable() with generatorCommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == generatorCommand {
		if err := runGenerator(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchEndToEnd runs the whole harness with tiny slices against the
// test PostgreSQL: both sides must do every workload, and the report must
// say so in the table and in the JSON. It asserts what ran, never how fast.
func TestBenchEndToEnd(t *testing.T) {
	if os.Getenv(envURL) == "" {
		t.Fatal(envURL + " is not set: run the tests with `make test`, which starts a throwaway PostgreSQL, or point it at a PostgreSQL superuser URL")
	}
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	args := []string{
		"-rounds", "2", "-duration", "100ms", "-warmup", "20ms",
		"-event-size", "200", "-log-events", "600", "-stream-events", "150", "-page-size", "100",
		"-append-clients", "3", "-batch-clients", "2", "-batch-size", "20", "-stream-readers", "2", "-all-readers", "2",
		"-feed-samples", "6", "-feed-subscribers", "20",
		"-overload-duration", "200ms", "-overload-factors", "1,2", "-overload-probe-clients", "4",
		"-json", jsonPath,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := mainErr(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("evbench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("read the JSON report: %v", err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("the JSON report does not parse: %v\n%s", err, raw)
	}
	// The feed's measure ran: every idle subscriber got every fan-out
	// append, through the shared reader.
	if f := rep.Feed; f == nil || f.Samples != 6 || f.IdleSubscribers != 20 || f.Delivered != int64(20*f.FanoutAppends) || f.StoreReads <= 0 ||
		f.SameNode.EndToEndP50Ms <= 0 || f.OtherNode.EndToEndP99Ms < f.OtherNode.EndToEndP50Ms || !strings.Contains(stdout.String(), "idle subscribers on one node") {
		t.Errorf("the feed's measure: %+v", rep.Feed)
	}
	if !strings.Contains(stdout.String(), "appends per group commit") {
		t.Errorf("the table has no group commits' line:\n%s", stdout.String())
	}
	// The PostgreSQL that make test starts loads pg_stat_statements, so
	// every side of every workload has PostgreSQL's figures.
	if rep.NoStatements != "" || !strings.Contains(stdout.String(), "execution µs/ev") {
		t.Errorf("no statement figures (%q); the table:\n%s", rep.NoStatements, stdout.String())
	}
	wantKeys := []string{"append", "append_batch", "read_stream", "read_all", "read_pii"}
	if len(rep.Workloads) != len(wantKeys) {
		t.Fatalf("the report has %d workloads, want %d (%v)", len(rep.Workloads), len(wantKeys), wantKeys)
	}
	wantPerRequest := map[string]int{"append": 1, "append_batch": 20, "read_stream": 150, "read_all": 100, "read_pii": 150}
	for i, w := range rep.Workloads {
		if w.Key != wantKeys[i] {
			t.Errorf("workload %d is %q, want %q", i, w.Key, wantKeys[i])
		}
		if w.EventsPerRequest != wantPerRequest[w.Key] {
			t.Errorf("%s: %d events per request, want %d", w.Key, w.EventsPerRequest, wantPerRequest[w.Key])
		}
		for name, s := range map[string]sideResult{"EventVault": w.EventVault, "raw": w.Raw} {
			if s.EventsPerSec <= 0 || s.Events <= 0 || s.Requests <= 0 {
				t.Errorf("%s, %s: %d events in %d requests at %v events/s; want some of each", w.Key, name, s.Events, s.Requests, s.EventsPerSec)
			}
			if s.P50Ms <= 0 || s.P99Ms < s.P50Ms {
				t.Errorf("%s, %s: p50 %v ms, p99 %v ms; want 0 < p50 <= p99", w.Key, name, s.P50Ms, s.P99Ms)
			}
			// Reads return whole pages, so the events are a multiple of the page.
			if w.Key == "read_stream" && s.Events%int64(w.EventsPerRequest) != 0 {
				t.Errorf("%s, %s: %d events is not a whole number of %d-event reads", w.Key, name, s.Events, w.EventsPerRequest)
			}
		}
		if w.Ratio <= 0 {
			t.Errorf("%s: ratio %v, want a positive EventVault/raw ratio", w.Key, w.Ratio)
		}
		// The other sides ran where the issue compares with them, and
		// every comparison has a figure.
		wantOthers := map[string][]string{
			"append": {sideMessageDB}, "append_batch": {sideRawCopy, sideStore},
			"read_stream": {sideMessageDB}, "read_all": {sideMessageDB}, "read_pii": {sidePII, sidePIIPlain},
		}[w.Key]
		for _, name := range wantOthers {
			if o := w.Others[name]; o.Events <= 0 || o.EventsPerSec <= 0 {
				t.Errorf("%s, %s: %d events at %v events/s; want some", w.Key, name, o.Events, o.EventsPerSec)
			}
		}
		// PostgreSQL executed statements for every side of every workload,
		// and every side's appends wrote WAL.
		for name, s := range w.sides() {
			appends := w.Key == "append" || w.Key == "append_batch"
			if s.PGStatementSlices != 2 || s.PGExecPerEventUs <= 0 || appends && s.PGWALBytesPerEvent <= 0 {
				t.Errorf("%s, %s: %v µs of statements and %v bytes of WAL per event over %d slices; want some time, and WAL for appends, over both rounds' slices",
					w.Key, name, s.PGExecPerEventUs, s.PGWALBytesPerEvent, s.PGStatementSlices)
			}
		}
		// Appends go through the store's group commits, which the bench
		// reads from each EventVault server's /metrics around its slices;
		// reads make none.
		switch w.Key {
		case "append", "append_batch":
			for name, s := range map[string]sideResult{sideEventVault: w.EventVault, sideStore: w.Others[sideStore], sideNoAudit: w.Others[sideNoAudit]} {
				if name != sideEventVault && s.Events == 0 {
					continue // not a side of this workload
				}
				// A group carries at most one append of each client, and
				// the groups of every round carry the side's appends (but
				// for a stream's first, which takes the locking path).
				carried := float64(s.GroupCommits) * s.AppendsPerGroup
				if s.GroupCommits <= 0 || s.AppendsPerGroup < 1 || s.AppendsPerGroup > float64(w.Clients) ||
					carried < 0.9*float64(s.Requests) || carried > float64(s.Requests)+0.5 {
					t.Errorf("%s, %s: %d group commits of %v appends each (%v appends), for %d requests from %d clients; want groups of 1 to %d appends carrying the requests",
						w.Key, name, s.GroupCommits, s.AppendsPerGroup, carried, s.Requests, w.Clients, w.Clients)
				}
			}
		default:
			if w.EventVault.GroupCommits != 0 {
				t.Errorf("%s: %d group commits counted for a read", w.Key, w.EventVault.GroupCommits)
			}
		}
		if len(w.Comparisons) < 2 && w.Key != "read_pii" || len(w.Comparisons) < 1 {
			t.Errorf("%s: comparisons %+v, want EventVault against raw and the others", w.Key, w.Comparisons)
		}
		for _, c := range w.Comparisons {
			if c.Ratio <= 0 {
				t.Errorf("%s: comparison %s = %v, want a positive ratio", w.Key, c.Name, c.Ratio)
			}
		}
		if !strings.Contains(stdout.String(), w.Title) {
			t.Errorf("the table on stdout does not name workload %q:\n%s", w.Title, stdout.String())
		}
	}
	if rep.Crypto.SealNs <= 0 || rep.Crypto.OpenNs <= 0 || rep.Crypto.ContentMACNs <= 0 || rep.Crypto.EventSize != 200 {
		t.Errorf("crypto figures %+v: want positive times for 200-byte events", rep.Crypto)
	}
	// One tenant KEK is made and wrapped; every append and read after that
	// runs on cached keys, without the root key provider.
	if rep.RootKeyCalls.Wrap != 1 || rep.RootKeyCalls.Unwrap != 0 {
		t.Errorf("root key provider calls: %d wrap, %d unwrap; want 1 and 0", rep.RootKeyCalls.Wrap, rep.RootKeyCalls.Unwrap)
	}
	// The overload workload ran every side at both rates, with EventVault's
	// diagnostics, and found every acknowledged append where it was
	// acknowledged, once.
	o := rep.Overload
	if o == nil || len(o.Steps) != 6 || len(o.Checks) != 3 || o.Capacity[sideOverloadEV] <= 0 || o.Capacity[sideOverloadRaw] <= 0 {
		t.Fatalf("overload report %+v: want 6 steps, 3 checks and both capacities", o)
	}
	for _, st := range o.Steps {
		if st.Sent == 0 || st.OK == 0 || (st.Side != sideOverloadRaw) != (st.Diag != nil) {
			t.Errorf("overload step %+v: want requests sent and answered, diagnostics for EventVault's sides only", st)
		}
	}
	for _, c := range o.Checks {
		if !c.OK || c.Acked == 0 {
			t.Errorf("overload acknowledgements of %s: %+v", c.Side, c)
		}
	}
	if !strings.Contains(stdout.String(), "Acknowledgements checked afterwards") {
		t.Errorf("the table on stdout has no overload part:\n%s", stdout.String())
	}
	if rep.Postgres.Version == "" || rep.Postgres.Fsync == "" {
		t.Errorf("the report does not say which PostgreSQL it ran on: %+v", rep.Postgres)
	}
}

// TestBenchJSONToStdout checks that -json - leaves stdout to the JSON alone.
func TestBenchJSONToStdout(t *testing.T) {
	if os.Getenv(envURL) == "" {
		t.Fatal(envURL + " is not set: run the tests with `make test`, which starts a throwaway PostgreSQL, or point it at a PostgreSQL superuser URL")
	}
	args := []string{"-rounds", "1", "-duration", "50ms", "-warmup", "0", "-workloads", "read_all",
		"-log-events", "100", "-stream-events", "10", "-page-size", "50", "-json", "-"}
	var stdout, stderr bytes.Buffer
	if err := mainErr(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("evbench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep Report
	dec := json.NewDecoder(&stdout)
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("stdout is not one JSON report: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("stdout holds more than the JSON report")
	}
	if len(rep.Workloads) != 1 || rep.Workloads[0].Key != "read_all" {
		t.Errorf("-workloads read_all ran %+v", rep.Workloads)
	}
	if !strings.Contains(stderr.String(), "read all by global position") {
		t.Errorf("the table did not go to stderr:\n%s", stderr.String())
	}
}

func TestParseFlagsRefusesNonsense(t *testing.T) {
	t.Setenv(envURL, "postgres://postgres@127.0.0.1:1/postgres")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rounds", "0"}, "-rounds must be positive"},
		{[]string{"-duration", "0s"}, "-duration must be positive"},
		{[]string{"-event-size", "3"}, "-event-size must be at least"},
		{[]string{"-batch-size", "501"}, "at most 500"},
		{[]string{"-stream-events", "1001"}, "at most 1000"},
		{[]string{"-workloads", "append,nope"}, `unknown workload "nope"`},
		{[]string{"-overload-factors", "1,x"}, "-overload-factors"},
		{[]string{"-overload-factors", "0"}, "-overload-factors"},
		{[]string{"-overload-duration", "0s"}, "-overload-duration"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	t.Setenv(envURL, "")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "make bench") {
		t.Errorf("without a server URL: %v, want an error saying how to get one", err)
	}
	c, err := parseFlags([]string{"-server-url", "postgres://x@127.0.0.1/postgres"}, io.Discard)
	if err != nil {
		t.Fatalf("defaults with a server URL: %v", err)
	}
	if c.AppendClients != 8 || c.BatchClients != 4 || c.BatchSize != 100 || c.StreamReaders != 8 || c.StreamEvents != 1000 || c.PageSize != 500 || c.EventSize != 500 {
		t.Errorf("defaults %+v differ from the issue's workloads", c)
	}
}

func TestNewDataIsJSONOfTheSize(t *testing.T) {
	for _, size := range []int{minEventSize, 11, 500, 4096} {
		d := newData(size, 7)
		if len(d) != size {
			t.Errorf("newData(%d) is %d bytes", size, len(d))
		}
		if !json.Valid(d) {
			t.Errorf("newData(%d) is not JSON: %s", size, d)
		}
	}
}

func TestAppendBodyIsTheAPIsJSON(t *testing.T) {
	evs := newEvents(2, newData(40, 1))
	var body struct {
		ExpectedVersion string `json:"expected_version"`
		Events          []struct {
			ID   string          `json:"id"`
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(appendBody(evs)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("appendBody is not the API's JSON: %v", err)
	}
	if body.ExpectedVersion != "any" || len(body.Events) != 2 || body.Events[1].ID != evs[1].ID.String() ||
		body.Events[0].Type != eventType || !bytes.Equal(body.Events[0].Data, evs[0].Data) {
		t.Errorf("appendBody decodes to %+v, not the events given", body)
	}
}
