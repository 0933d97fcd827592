package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// server is an EventVault server of a test.
type server struct {
	m      *Main
	base   string
	banner string
	log    *bytes.Buffer
	// stop shuts the server down and closes its store; it runs once, by
	// the test or at its end.
	stop func()
}

// openServer opens a server with args (flags) over a free loopback port;
// it returns the error of Open instead of failing.
func openServer(t *testing.T, args ...string) (*server, error) {
	t.Helper()
	cfg, err := parseServerFlags(append([]string{"-listen", "127.0.0.1:0", "-data-dir", t.TempDir()}, args...), io.Discard)
	if err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	var out, log bytes.Buffer
	m := &Main{Config: cfg, Stdout: &out, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &log}, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		cancel()
		m.Close()
		return &server{m: m, log: &log}, err
	}
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Cleanup(stop)
	return &server{m: m, base: "http://" + m.Addr(), banner: out.String(), log: &log, stop: stop}, nil
}

// initDeployment runs 'eventvault init' with args (store and root flags),
// as an operator does once before the first production server.
func initDeployment(t *testing.T, args ...string) {
	t.Helper()
	if code, out, errOut := runCLI(t, append([]string{"init"}, args...)...); code != 0 {
		t.Fatalf("eventvault init: %d\n%s%s", code, out, errOut)
	}
}

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s, err := openServer(t, args...)
	if err != nil {
		t.Fatalf("open server %q: %v", args, err)
	}
	return s
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// tokenFile writes token to a private file and returns its path.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func vaultArgs(t *testing.T, v *vaulttest.Server) []string {
	return []string{"-vault-addr", v.Addr, "-vault-token-file", tokenFile(t, v.RootToken), "-vault-max-retries", "1"}
}

// appendEvents appends n events to stream and returns the status and body.
func appendEvents(t *testing.T, base, token, stream string, n int) (int, http.Header, string) {
	t.Helper()
	events := make([]string, n)
	for i := range events {
		events[i] = fmt.Sprintf(`{"id":%q,"type":"Tested","data":{"i":%d}}`, uuid.NewString(), i)
	}
	return do(t, "POST", base+"/v1/streams/"+stream+"/events", token, `{"events":[`+strings.Join(events, ",")+`]}`)
}

func do(t *testing.T, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func expectStatus(t *testing.T, what string, want int, code int, body string) {
	t.Helper()
	if code != want {
		t.Fatalf("%s: %d %s; want %d", what, code, body, want)
	}
}

// expectUnavailable checks the answer is 503 problem+json with Retry-After.
func expectUnavailable(t *testing.T, what string, code int, h http.Header, body string) {
	t.Helper()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("%s: %d %s; want 503", what, code, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	if h.Get("Retry-After") == "" {
		t.Errorf("%s: no Retry-After", what)
	}
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Code != string(eventvault.EUNAVAILABLE) {
		t.Errorf("%s: body %s; want code %q", what, body, eventvault.EUNAVAILABLE)
	}
}

func TestProductionServerChecksVaultAtStart(t *testing.T) {
	v := vaulttest.Start(t)
	pg := migratedURL(t)
	base := []string{"-database-url", pg, "-vault-addr", v.Addr}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"WrongToken", []string{"-vault-token-file", tokenFile(t, "hvs.wrong")}, "rejected the token"},
		{"MissingKey", []string{"-vault-token-file", tokenFile(t, v.RootToken), "-vault-transit-key", "nope"}, "transit key 'nope' not found (create it: vault write -f transit/keys/nope type=aes256-gcm96 derived=true)"},
		{"WrongMount", []string{"-vault-token-file", tokenFile(t, v.RootToken), "-vault-transit-mount", "elsewhere"}, "no transit mount at 'elsewhere/' (enable it: vault secrets enable -path=elsewhere transit)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := openServer(t, append(base, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Vault at "+v.Addr) {
				t.Fatalf("open: %v; want an error saying %q", err, c.want)
			}
		})
	}

	good := append(base, "-vault-token-file", tokenFile(t, v.RootToken))
	initDeployment(t, good...)
	s := startServer(t, good...)
	if want := "root key: Vault Transit key transit/keys/eventvault-root at " + v.Addr; !strings.Contains(s.banner, want) {
		t.Fatalf("banner does not say %q:\n%s", want, s.banner)
	}
	if strings.Contains(s.banner+s.log.String(), v.RootToken) {
		t.Fatal("the banner or the log holds the Vault token")
	}
}

func TestProductionServerOnLocalRootKeyOnlyWithTheInsecureFlag(t *testing.T) {
	pg := migratedURL(t)
	keyFile := filepath.Join(t.TempDir(), "root.key")
	args := []string{"-database-url", pg, "-insecure-local-root-key", "-root-key-file", keyFile}
	initDeployment(t, args...)
	s := startServer(t, args...)
	if !strings.Contains(s.log.String(), "level=WARN") || !strings.Contains(s.log.String(), "INSECURE") {
		t.Fatalf("no loud warning logged for the local root key:\n%s", s.log.String())
	}
	if !strings.Contains(s.banner, "INSECURE") {
		t.Fatalf("banner does not flag the local root key:\n%s", s.banner)
	}
}

// Vault stops during the test: what the key cache holds keeps working,
// what needs Vault answers 503 and writes nothing, and everything works
// again once Vault is back, without restarting EventVault. A server whose
// cache entries outlived their TTL answers 503 too.
func TestVaultDownAndBack(t *testing.T) {
	v := vaulttest.Start(t)
	pg := pgtest.URL(t)
	const root = "root-of-the-outage-test"
	common := append([]string{"-dev", "-data-dir", t.TempDir(), "-database-url", pg, "-dev-root-token", root}, vaultArgs(t, v)...)
	warm := startServer(t, append(common, "-key-cache-ttl", "10m")...)
	short := startServer(t, append(common, "-key-cache-ttl", "1s")...)

	for _, s := range []*server{warm, short} {
		code, _, body := appendEvents(t, s.base, root, "order-1", 1)
		expectStatus(t, "append before the outage", 201, code, body)
		code, _, body = do(t, "GET", s.base+"/v1/streams/order-1/events", root, "")
		expectStatus(t, "read before the outage", 200, code, body)
	}
	code, _, body := do(t, "POST", warm.base+"/v1/tokens", root, `{"tenant":"acme","name":"acme-app"}`)
	expectStatus(t, "issue a token for a new tenant", 201, code, body)
	var issued struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &issued); err != nil || issued.Token == "" {
		t.Fatalf("token answer %s: %v", body, err)
	}

	v.Stop()

	// Cached keys keep serving: the tenant KEK and the stream key are in
	// memory, so a known stream and a new stream of the tenant both work.
	code, _, body = appendEvents(t, warm.base, root, "order-1", 1)
	expectStatus(t, "append to a cached stream while Vault is down", 201, code, body)
	code, _, body = do(t, "GET", warm.base+"/v1/streams/order-1/events", root, "")
	expectStatus(t, "read a cached stream while Vault is down", 200, code, body)
	if n := strings.Count(body, `"type":"Tested"`); n != 3 {
		t.Fatalf("read %d events while Vault is down, want 3: %s", n, body)
	}
	code, _, body = appendEvents(t, warm.base, root, "order-2", 1)
	expectStatus(t, "append to a new stream of a cached tenant while Vault is down", 201, code, body)

	// A new tenant needs a KEK wrapped by Vault: 503, nothing written.
	code, h, body := do(t, "POST", warm.base+"/v1/streams/invoice-1/events", issued.Token,
		fmt.Sprintf(`{"expected_version":"no_stream","events":[{"id":%q,"type":"Tested","data":{}}]}`, uuid.NewString()))
	expectUnavailable(t, "append for a new tenant while Vault is down", code, h, body)
	store, err := postgres.Open(t.Context(), pg, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.TenantKey(t.Context(), "acme"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("tenant key of acme after the failed append: %v; want none (ENOTFOUND)", err)
	}
	if _, err := store.StreamKey(t.Context(), "acme", "invoice-1"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("stream key of acme/invoice-1 after the failed append: %v; want none (ENOTFOUND)", err)
	}

	// Past the TTL, the other server has to ask Vault again: 503.
	time.Sleep(1500 * time.Millisecond) // more than the 1s TTL
	code, h, body = appendEvents(t, short.base, root, "order-1", 1)
	expectUnavailable(t, "append once the cache TTL has passed", code, h, body)
	code, h, body = do(t, "GET", short.base+"/v1/streams/order-1/events", root, "")
	expectUnavailable(t, "read once the cache TTL has passed", code, h, body)

	v.Restart()

	code, _, body = do(t, "POST", warm.base+"/v1/streams/invoice-1/events", issued.Token,
		fmt.Sprintf(`{"expected_version":"no_stream","events":[{"id":%q,"type":"Tested","data":{}}]}`, uuid.NewString()))
	expectStatus(t, "append for the new tenant once Vault is back", 201, code, body)
	if !strings.Contains(body, `"position":0`) {
		t.Fatalf("the first event of the new tenant is not at position 0 (a failed append left something): %s", body)
	}
	code, _, body = appendEvents(t, short.base, root, "order-1", 1)
	expectStatus(t, "append on the expired server once Vault is back", 201, code, body)
	code, _, body = do(t, "GET", short.base+"/v1/streams/order-1/events", root, "")
	expectStatus(t, "read on the expired server once Vault is back", 200, code, body)
	// Two before the outage, one while cached, none from the append that
	// failed, one now.
	if n := strings.Count(body, `"type":"Tested"`); n != 4 {
		t.Fatalf("read %d events once Vault is back, want 4: %s", n, body)
	}
}

// 10,000 appends across 100 streams of one tenant make one Transit call:
// the encrypt that wraps the tenant's new KEK. The count is of real HTTP
// requests to Vault.
func TestTenThousandAppendsMakeOneTransitCall(t *testing.T) {
	v := vaulttest.Start(t)
	pg := pgtest.URL(t)
	const root = "root-of-the-count-test"
	s := startServer(t, append([]string{"-dev", "-data-dir", t.TempDir(), "-database-url", pg, "-dev-root-token", root}, vaultArgs(t, v)...)...)
	transit, ok := s.m.root.(*vault.Transit)
	if !ok {
		t.Fatalf("the server's root key is a %T, not Vault Transit", s.m.root)
	}
	before := transit.Requests()

	const streams, batches, perBatch = 100, 10, 10
	var wg sync.WaitGroup
	errs := make(chan string, streams)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				for range batches {
					if code, _, body := appendEvents(t, s.base, root, fmt.Sprintf("load-%d", i), perBatch); code != 201 {
						errs <- fmt.Sprintf("append to load-%d: %d %s", i, code, body)
						return
					}
				}
			}
		})
	}
	for i := range streams {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for i := range streams {
		code, _, body := do(t, "GET", fmt.Sprintf("%s/v1/streams/load-%d/events?limit=1000", s.base, i), root, "")
		if code != 200 || strings.Count(body, `"type":"Tested"`) != batches*perBatch {
			t.Fatalf("read load-%d: %d, want 200 with %d events", i, code, batches*perBatch)
		}
	}

	after := transit.Requests()
	calls := map[string]int{}
	total := 0
	for path, n := range after {
		if d := n - before[path]; d != 0 {
			calls[path] = d
			total += d
		}
	}
	t.Logf("Vault requests for %d appends across %d streams and %d reads: %v", streams*batches*perBatch, streams, streams, calls)
	if total != 1 || calls["transit/encrypt/eventvault-root"] != 1 {
		t.Fatalf("Vault requests: %v; want exactly one, transit/encrypt/eventvault-root (the new tenant KEK)", calls)
	}
}

// TestServerTakesANewVaultTokenFromItsFile is a restart of `make vault-dev`
// under a running server: the server's Vault token is revoked and a new
// one written into the same -vault-token-file. Without a restart, the next
// request that needs Vault (a new tenant's KEK) succeeds, readiness comes
// back, and the log says a new token was taken (never the token).
func TestServerTakesANewVaultTokenFromItsFile(t *testing.T) {
	v := vaulttest.Start(t)
	v.Policy("eventvault", `
path "transit/encrypt/eventvault-root" { capabilities = ["update"] }
path "transit/decrypt/eventvault-root" { capabilities = ["update"] }
path "transit/rewrap/eventvault-root"  { capabilities = ["update"] }
path "transit/keys/eventvault-root"    { capabilities = ["read"] }
`)
	oldToken := v.Token("default", "eventvault")
	file := tokenFile(t, oldToken)
	const root = "root-of-the-token-file-test"
	s := startServer(t, "-dev", "-data-dir", t.TempDir(), "-database-url", pgtest.URL(t), "-dev-root-token", root,
		"-vault-addr", v.Addr, "-vault-token-file", file, "-vault-max-retries", "0")
	code, _, body := appendEvents(t, s.base, root, "order-1", 1)
	expectStatus(t, "append with the first token", 201, code, body)

	v.Write("auth/token/revoke", map[string]any{"token": oldToken})
	code, _, body = do(t, "POST", s.base+"/v1/tokens", root, `{"tenant":"acme","name":"acme-app"}`)
	expectStatus(t, "issue a token for a new tenant", 201, code, body)
	var issued struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &issued); err != nil {
		t.Fatal(err)
	}
	newTenantAppend := func() (int, string) {
		code, _, body := do(t, "POST", s.base+"/v1/streams/invoice-1/events", issued.Token,
			fmt.Sprintf(`{"events":[{"id":%q,"type":"Tested","data":{}}]}`, uuid.NewString()))
		return code, body
	}
	// The revoked token: refused, and the detail says the token may have
	// been revoked, not only that the policy lacks something.
	code, body = newTenantAppend()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "revoked or expired") {
		t.Fatalf("append for a new tenant with the revoked token: %d %s; want 503 saying the token may be revoked", code, body)
	}

	newToken := v.Token("default", "eventvault")
	if err := os.WriteFile(file, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body = newTenantAppend()
	expectStatus(t, "append for a new tenant once the file holds a new token", 201, code, body)
	deadline := time.Now().Add(10 * time.Second) // readyz caches the root check 5 s
	for {
		code, _, body = do(t, "GET", s.base+"/readyz", "", "")
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	expectStatus(t, "readyz once the file holds a new token", 200, code, body)
	logs := s.log.String()
	if !strings.Contains(logs, "the token file holds a new one") {
		t.Fatalf("the log does not say a new token was taken: %s", logs)
	}
	if strings.Contains(logs, oldToken) || strings.Contains(logs, newToken) {
		t.Fatal("the log holds a Vault token")
	}
}
