package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault/cmd/internal/wiring"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// readiness is a /readyz answer: 200 {status, checks}, or a 503 problem
// with a checks member.
type readiness struct {
	status int
	Code   string `json:"code"`
	Detail string `json:"detail"`
	Checks map[string]struct {
		Status string `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

func readyz(t *testing.T, base string) readiness {
	t.Helper()
	code, _, body := do(t, "GET", base+"/readyz", "", "")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("readyz %d %s: %v", code, body, err)
	}
	r.status = code
	return r
}

// waitReady polls /readyz until it answers want, for longer than the root
// of trust's cache time.
func waitReady(t *testing.T, base string, want int) readiness {
	t.Helper()
	var r readiness
	for deadline := time.Now().Add(wiring.RootCheckTTL + 10*time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if r = readyz(t, base); r.status == want {
			return r
		}
	}
	t.Fatalf("readyz stayed %d (%+v); want %d", r.status, r, want)
	return r
}

// TestReadyzFollowsVault: readyz is 200 with every check ok, 503 naming
// the root of trust once Vault is down (within the cache time), and 200
// again once Vault is back.
func TestReadyzFollowsVault(t *testing.T) {
	v := vaulttest.Start(t)
	pg := pgtest.URL(t)
	s := startServer(t, append([]string{"-dev", "-database-url", pg, "-dev-root-token", "root-of-the-ready-test"}, vaultArgs(t, v)...)...)

	r := readyz(t, s.base)
	if r.status != 200 || r.Checks["store"].Status != "ok" || r.Checks["root_of_trust"].Status != "ok" || r.Checks["keys"].Status != "ok" {
		t.Fatalf("readyz with everything up: %+v", r)
	}

	v.Stop()
	r = waitReady(t, s.base, http.StatusServiceUnavailable)
	if r.Code != "unavailable" || r.Checks["root_of_trust"].Status != "failed" || r.Checks["store"].Status != "ok" || !strings.Contains(r.Detail, "root_of_trust") {
		t.Fatalf("readyz with Vault down: %+v; want 503 unavailable naming root_of_trust, the store ok", r)
	}

	v.Restart()
	waitReady(t, s.base, http.StatusOK)
}

// TestRetiredRootVersionIsNotErasure: a database whose KEK rows are wrapped
// by a root key version that Vault has since retired (as a backup restored
// from before the last crypto-period) is not ready (503 key_retired), and
// its streams read as key_retired, not as erased (410).
func TestRetiredRootVersionIsNotErasure(t *testing.T) {
	v := vaulttest.Start(t)
	pg := pgtest.URL(t)
	const root = "root-of-the-retired-test"
	args := append([]string{"-dev", "-database-url", pg, "-dev-root-token", root}, vaultArgs(t, v)...)
	s := startServer(t, args...)
	code, _, body := appendEvents(t, s.base, root, "order-1", 2)
	expectStatus(t, "append", 201, code, body)
	s.stop()

	// The live database would be re-wrapped before the retirement; this
	// one was not, as a backup taken before it. Its deployment keys are
	// under the retired version too, so a node refuses to start, saying
	// that the root version was retired, not that anything was erased.
	v.Write("transit/keys/"+vaulttest.Key+"/rotate", nil)
	v.Write("transit/keys/"+vaulttest.Key+"/config", map[string]any{"min_decryption_version": 2})
	if _, err := openServer(t, args...); err == nil || !strings.Contains(err.Error(), "retired") || strings.Contains(err.Error(), "erased") {
		t.Fatalf("start on a database under a retired root version: %v; want a refusal saying the root version was retired", err)
	}

	// A node that loaded its deployment keys before the retirement (Vault's
	// operator retired the version under running nodes) serves: what needs
	// the retired version is key_retired, never erased.
	v.Write("transit/keys/"+vaulttest.Key+"/config", map[string]any{"min_decryption_version": 1})
	s = startServer(t, args...)
	v.Write("transit/keys/"+vaulttest.Key+"/config", map[string]any{"min_decryption_version": 2})
	r := readyz(t, s.base)
	if r.status != http.StatusServiceUnavailable || r.Code != "key_retired" || r.Checks["keys"].Code != "key_retired" ||
		r.Checks["store"].Status != "ok" || r.Checks["root_of_trust"].Status != "ok" {
		t.Fatalf("readyz on a database under a retired root version: %+v; want 503 key_retired from the keys check", r)
	}
	if !strings.Contains(r.Checks["keys"].Detail, "1 of 1 tenants") {
		t.Errorf("keys check detail %q", r.Checks["keys"].Detail)
	}
	code, h, body := do(t, "GET", s.base+"/v1/streams/order-1/events", root, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"key_retired"`) || strings.Contains(body, "erased_at") {
		t.Fatalf("read of a stream never erased: %d %s; want 503 key_retired", code, body)
	}
	if h.Get("X-Request-Id") == "" || !strings.Contains(body, `"http_request_id"`) {
		t.Errorf("no request id in %v %s", h, body)
	}
	// Appends fail alike, and are not taken for an erased stream (409).
	code, _, body = appendEvents(t, s.base, root, "order-1", 1)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"key_retired"`) {
		t.Fatalf("append to a stream never erased: %d %s; want 503 key_retired", code, body)
	}

	// Lowering the retirement again (the versions were not trimmed) makes
	// the node ready, once the cache time has passed.
	v.Write("transit/keys/"+vaulttest.Key+"/config", map[string]any{"min_decryption_version": 1})
	waitReady(t, s.base, http.StatusOK)
}
