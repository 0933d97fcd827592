package wiring

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/metrics"
	"github.com/eventvault/eventvault/store/bolt"
)

// TestMetricsCountWhatTheServerDoes builds the server as the commands do,
// with a metrics registry, and reads the scrape: requests by route
// template (never the raw path, which here holds a subject-like id),
// events appended and read, key cache hits and misses and root key calls.
func TestMetricsCountWhatTheServerDoes(t *testing.T) {
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatalf("root key: %v", err)
	}
	pseud, err := pseudonym.OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatalf("pseudonym key: %v", err)
	}
	signer, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	reg := metrics.New()
	stack := Build(Parts{Store: store, Root: root, Pseudonyms: pseud, Signer: signer, TokenCacheTTL: time.Hour, Metrics: reg})
	rootToken, err := stack.Tokens.InstallRoot(t.Context(), "default", "")
	if err != nil {
		t.Fatalf("install root token: %v", err)
	}
	do := func(method, path string, body any) *httptest.ResponseRecorder {
		t.Helper()
		var b []byte
		if body != nil {
			b, _ = json.Marshal(body)
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+rootToken)
		rec := httptest.NewRecorder()
		stack.Handler.ServeHTTP(rec, req)
		return rec
	}
	for range 3 {
		ev := map[string]any{"events": []any{
			map[string]any{"id": uuid.NewString(), "type": "A", "data": 1},
			map[string]any{"id": uuid.NewString(), "type": "A", "data": 2},
		}}
		if rec := do(http.MethodPost, "/v1/streams/order-alice@example.com/events", ev); rec.Code != http.StatusBadRequest {
			t.Fatalf("append to an invalid stream name: %d %s", rec.Code, rec.Body)
		}
		if rec := do(http.MethodPost, "/v1/streams/order-1/events", ev); rec.Code != http.StatusCreated {
			t.Fatalf("append: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(http.MethodGet, "/v1/streams/order-1/events", nil); rec.Code != http.StatusOK {
		t.Fatalf("read: %d %s", rec.Code, rec.Body)
	}
	if rec := do(http.MethodGet, "/v1/events?limit=4", nil); rec.Code != http.StatusOK {
		t.Fatalf("read all: %d %s", rec.Code, rec.Body)
	}
	do(http.MethodGet, "/v1/subjects/alice@example.com/hold", nil)

	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	scrape := string(b)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("scrape Content-Type %q, want the Prometheus text format", resp.Header.Get("Content-Type"))
	}
	if strings.Contains(scrape, "alice") || strings.Contains(scrape, "order-1") {
		t.Errorf("the scrape names a raw path or a stream:\n%s", scrape)
	}
	for _, want := range []string{
		`eventvault_http_requests_total{method="POST",route="/v1/streams/:stream/events",status="201"} 3`,
		`eventvault_http_requests_total{method="POST",route="/v1/streams/:stream/events",status="400"} 3`,
		`eventvault_http_requests_total{method="GET",route="(no route)",status="404"} 1`,
		`eventvault_http_request_duration_seconds_count{method="GET",route="/v1/events"} 1`,
		`eventvault_events_appended_total 6`,
		`eventvault_events_read_total 10`,
		`eventvault_key_cache_lookups_total{kind="stream",result="hit"}`,
		`eventvault_key_cache_lookups_total{kind="stream",result="miss"}`,
		`eventvault_root_key_calls_total{op="wrap",result="ok"} 1`,
		`eventvault_root_key_calls_total{op="unwrap",result="ok"} 0`,
		`eventvault_store_retries_total{reason="deadlock"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	hits := regexp.MustCompile(`eventvault_key_cache_lookups_total\{kind="stream",result="hit"\} (\d+)`).FindStringSubmatch(scrape)
	if hits == nil || hits[1] == "0" {
		t.Errorf("no stream key cache hit counted after repeated appends to one stream: %v", hits)
	}
}
