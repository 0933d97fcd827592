package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

var tokenLineRE = regexp.MustCompile(`^` + auth.TokenPrefix + `[A-Za-z0-9_-]+\n$`)

// TestProductionNeverHonoursTheDevRootToken starts a dev server on a
// PostgreSQL database, then a production server on it: the root token the
// dev start installed gets 401 naming 'eventvault token revoke-root', and
// the operator bootstraps with 'eventvault token create' instead; list,
// revoke and revoke-root work from the command line.
func TestProductionNeverHonoursTheDevRootToken(t *testing.T) {
	url := pgtest.URL(t)
	rootFile := filepath.Join(t.TempDir(), "root.key")
	const rootToken = "dev-root-left-behind"
	dev := startServer(t, "-dev", "-database-url", url, "-root-key-file", rootFile, "-dev-root-token", rootToken)
	if code, b := call(t, "POST", dev.base+"/v1/tokens", rootToken, `{"tenant":"globex","name":"globex-app"}`); code != 201 {
		t.Fatalf("the dev server issues with the root token: %d %s", code, b)
	}
	dev.stop()

	storeFlags := []string{"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootFile}
	prod := startServer(t, append([]string{"-token-cache-ttl", "300ms"}, storeFlags...)...)
	for _, path := range []string{"/v1/events", "/v1/tokens?tenant=globex"} {
		code, b := call(t, "GET", prod.base+path, rootToken, "")
		if code != 401 || !strings.Contains(b, "eventvault token revoke-root") {
			t.Fatalf("the dev root token on a production server, GET %s: %d %s; want 401 naming the command that removes it", path, code, b)
		}
	}
	if code, b := call(t, "POST", prod.base+"/v1/tokens", rootToken, `{"tenant":"acme","name":"intruder"}`); code != 401 {
		t.Fatalf("the dev root token issues on a production server: %d %s", code, b)
	}
	if !strings.Contains(prod.log.String(), "revoke-root") {
		t.Errorf("no warning logged for the refused root token:\n%s", prod.log)
	}

	// Bootstrap: the token, and nothing else, on stdout.
	code, stdout, stderr := runCLI(t, append([]string{"token", "create", "-tenant", "acme", "-name", "ops",
		"-rules", `[{"capabilities":["admin"],"streams":"*"}]`, "-ttl", "720h"}, storeFlags...)...)
	if code != 0 || !tokenLineRE.MatchString(stdout) {
		t.Fatalf("token create: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	ops := strings.TrimSpace(stdout)
	if strings.Contains(stderr, ops) {
		t.Fatalf("token create wrote the token to stderr: %s", stderr)
	}
	// A command logs warnings only, and this one has one: the root key is
	// a local file.
	if !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, "INSECURE") || strings.Contains(stderr, "level=INFO") {
		t.Fatalf("token create's stderr, want the local root key's warning and no information lines: %s", stderr)
	}
	var app struct {
		Token, ID string
	}
	code, b := call(t, "POST", prod.base+"/v1/tokens", ops, `{"name":"acme-app"}`)
	if code != 201 || json.Unmarshal([]byte(b), &app) != nil {
		t.Fatalf("the bootstrapped admin issues a token: %d %s", code, b)
	}
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{}}]}`, uuid.NewString())
	if code, b := call(t, "POST", prod.base+"/v1/streams/note-1/events", app.Token, body); code != 201 {
		t.Fatalf("append with the issued token: %d %s", code, b)
	}

	code, stdout, stderr = runCLI(t, append([]string{"token", "list", "-tenant", "acme"}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, app.ID) || !strings.Contains(stdout, "ops") || strings.Contains(stdout, auth.TokenPrefix) {
		t.Fatalf("token list: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, append([]string{"token", "revoke", "-tenant", "acme", "-id", app.ID}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, app.ID) {
		t.Fatalf("token revoke: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	waitFor401(t, prod.base, app.Token, time.Second)
	code, _, stderr = runCLI(t, append([]string{"token", "revoke", "-tenant", "acme", "-id", app.ID}, storeFlags...)...)
	if code != 1 || !strings.Contains(stderr, "no token") {
		t.Fatalf("token revoke again: exit %d, stderr %s", code, stderr)
	}

	code, stdout, stderr = runCLI(t, append([]string{"token", "revoke-root"}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, "removed 1 root token") {
		t.Fatalf("token revoke-root: exit %d, stdout %q, stderr %s; want the count removed", code, stdout, stderr)
	}
	// Again, with none left: it says so rather than "removed every".
	code, stdout, stderr = runCLI(t, append([]string{"token", "revoke-root"}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, "there was no root token") {
		t.Fatalf("token revoke-root with none left: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/events", rootToken, ""); code != 401 || strings.Contains(b, "revoke-root") {
		t.Fatalf("the removed root token: %d %s; want a plain 401", code, b)
	}

	// Bad input: nothing issued.
	for _, args := range [][]string{
		{"token", "create", "-tenant", "acme"},
		{"token", "create", "-tenant", "acme", "-name", "x", "-ttl", "1s"},
		{"token", "create", "-tenant", "acme", "-name", "x", "-rules", "admin"},
		{"token", "create", "-tenant", "Acme", "-name", "x"},
		{"token", "revoke", "-tenant", "acme"},
		{"token", "frobnicate"},
	} {
		if code, stdout, _ := runCLI(t, append(args, storeFlags...)...); code == 0 || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q; want a failure and nothing on stdout", args, code, stdout)
		}
	}
	// A production server refuses -dev-root-token, naming the bootstrap.
	if _, err := parseServerFlags(append([]string{"-dev-root-token", "x"}, storeFlags...), nil); err == nil || !strings.Contains(err.Error(), "eventvault token create") {
		t.Errorf("-dev-root-token in production: %v", err)
	}
}

// waitFor401 polls until token gets 401 at base, failing after within.
func waitFor401(t *testing.T, base, token string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code, b := call(t, "GET", base+"/v1/events", token, "")
		if code == 401 {
			return time.Since(start)
		}
		if code != 200 {
			t.Fatalf("GET with a token being revoked: %d %s", code, b)
		}
		if time.Since(start) > within {
			t.Fatalf("the revoked token still works at %s after %s", base, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRevocationReachesTheOtherNodeWithinTheCacheBound runs two server
// processes on one PostgreSQL with -token-cache-ttl 2s: a token used on
// both (so cached on both) and revoked through the first gets 401 there at
// once, and on the second within the bound.
func TestRevocationReachesTheOtherNodeWithinTheCacheBound(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir := t.TempDir()
	const root = "two-nodes-root"
	const bound = 2 * time.Second
	t.Setenv("EVENTVAULT_TOKEN_CACHE_TTL", bound.String())
	first := startNode(t, bin, dbURL, dataDir, root)
	second := startNode(t, bin, dbURL, dataDir, root)

	var admin, app struct{ Token, ID string }
	code, b := call(t, "POST", first.base+"/v1/tokens", root, `{"tenant":"acme","name":"ops","rules":[{"capabilities":["admin"],"streams":"*"}]}`)
	if code != 201 || json.Unmarshal([]byte(b), &admin) != nil {
		t.Fatalf("issue admin: %d %s", code, b)
	}
	code, b = call(t, "POST", first.base+"/v1/tokens", admin.Token, `{"name":"app"}`)
	if code != 201 || json.Unmarshal([]byte(b), &app) != nil {
		t.Fatalf("issue app: %d %s", code, b)
	}
	for _, n := range []*node{first, second} {
		if code, b := call(t, "GET", n.base+"/v1/events", app.Token, ""); code != 200 {
			t.Fatalf("warm %s: %d %s", n.base, code, b)
		}
	}
	if code, b := call(t, "GET", second.base+"/v1/tokens", admin.Token, ""); code != 200 || !strings.Contains(b, app.ID) {
		t.Fatalf("list on the second node: %d %s", code, b)
	}
	revoked := time.Now()
	if code, b := call(t, "DELETE", first.base+"/v1/tokens/"+app.ID, admin.Token, ""); code != 204 {
		t.Fatalf("revoke on the first node: %d %s", code, b)
	}
	if code, b := call(t, "GET", first.base+"/v1/events", app.Token, ""); code != 401 {
		t.Fatalf("the first node right after the revoke: %d %s; want 401 at once", code, b)
	}
	waitFor401(t, second.base, app.Token, bound+500*time.Millisecond)
	t.Logf("the second node refused the revoked token %s after the revoke", time.Since(revoked).Round(time.Millisecond))
	if code, b := call(t, "GET", second.base+"/v1/tokens", admin.Token, ""); code != 200 || strings.Contains(b, app.ID) {
		t.Fatalf("list on the second node after the revoke: %d %s", code, b)
	}
}
