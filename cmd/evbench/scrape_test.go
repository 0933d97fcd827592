package main

import (
	"fmt"
	"net"
	"net/http"
	"testing"
)

// TestScrapeReadsItsMetricsWhateverTheOthersHold: the bench reads the root
// key calls and the group commits from a server's /metrics, before and
// after every slice, so a sample it does not read must never fail the
// scrape, whatever its labels hold: a request to no route is labelled
// route="(no route)", with a space, which a scrape that parsed every line
// refused (and with it the whole run).
func TestScrapeReadsItsMetricsWhateverTheOthersHold(t *testing.T) {
	const body = `# HELP eventvault_http_request_duration_seconds Latency.
# TYPE eventvault_http_request_duration_seconds histogram
eventvault_http_request_duration_seconds_bucket{method="GET",route="(no route)",status="404",le="0.0005"} 1
eventvault_http_request_duration_seconds_sum{method="GET",route="(no route)",status="404"} 0.0001
eventvault_root_key_calls_total{op="unwrap"} 2
eventvault_root_key_calls_total{op="wrap"} 3
# TYPE eventvault_append_group_appends histogram
eventvault_append_group_appends_bucket{le="1"} 4
eventvault_append_group_appends_bucket{le="+Inf"} 10
eventvault_append_group_appends_sum 39
eventvault_append_group_appends_count 10
eventvault_append_group_events_sum 4000
eventvault_append_group_events_count 10
`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s := &evServer{metricsLn: ln}
	client := &http.Client{}

	rc, err := s.rootCalls(t.Context(), client)
	if err != nil || rc != (rootCalls{Wrap: 3, Unwrap: 2}) {
		t.Errorf("rootCalls = %+v, %v; want 3 wrap, 2 unwrap", rc, err)
	}
	g, err := s.groupCommits(t.Context(), client)
	if err != nil || g != (groupCommits{groups: 10, appends: 39}) {
		t.Errorf("groupCommits = %+v, %v; want 10 groups of 39 appends (not the events' histogram)", g, err)
	}
}
