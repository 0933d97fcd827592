package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsListenServesOnlyTheScrape: with -metrics-listen, a dev server
// serves the Prometheus scrape there without a token, and nothing of the
// API; the API's own listener has no /metrics.
func TestMetricsListenServesOnlyTheScrape(t *testing.T) {
	s := startServer(t, "-dev", "-metrics-listen", "127.0.0.1:0")
	addr := s.m.MetricsAddr()
	if addr == "" {
		t.Fatal("no metrics address after Open with -metrics-listen")
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// One request on the API, so that it counts.
	if code, _ := get(s.base + "/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz: %d", code)
	}
	code, body := get("http://" + addr + "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `eventvault_http_requests_total{method="GET",route="/healthz",status="200"} 1`) ||
		!strings.Contains(body, "eventvault_root_key_calls_total") {
		t.Fatalf("GET /metrics on %s: %d\n%s", addr, code, body)
	}
	if code, _ := get("http://" + addr + "/v1/openapi.json"); code != http.StatusNotFound {
		t.Errorf("the metrics listener answered the API's /v1/openapi.json with %d, want 404", code)
	}
	if code, _ := get(s.base + "/metrics"); code == http.StatusOK {
		t.Errorf("the API's listener serves /metrics")
	}
}

// TestServerWithoutMetricsListenServesNone: no -metrics-listen, no scrape.
func TestServerWithoutMetricsListenServesNone(t *testing.T) {
	s := startServer(t, "-dev")
	if addr := s.m.MetricsAddr(); addr != "" {
		t.Errorf("metrics served on %s without -metrics-listen", addr)
	}
}
