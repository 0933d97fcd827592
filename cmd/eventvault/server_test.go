package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// startDev runs a dev server on a free loopback port over dataDir and
// returns its base URL, what it printed, and a stop function.
func startDev(t *testing.T, dataDir string, extra ...string) (string, string, func()) {
	t.Helper()
	s := startServer(t, append([]string{"-dev", "-data-dir", dataDir}, extra...)...)
	return s.base, s.banner, s.stop
}

var rootTokenRE = regexp.MustCompile(`Root Token: (\S+)`)

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	code, _, b := do(t, method, url, token, body)
	return code, b
}

func TestDevServerPrintsRootTokenAndKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	base, banner, stop := startDev(t, dir)
	m := rootTokenRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no root token:\n%s", banner)
	}
	token := m[1]
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"OrderPlaced","data":{"total":42}}]}`, uuid.NewString())
	if code, b := call(t, "POST", base+"/v1/streams/order-42/events", token, body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	stop()

	// The root key file is private to its owner.
	info, err := os.Stat(filepath.Join(dir, "root.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}

	base, banner, stop = startDev(t, dir, "-dev-root-token", "dev-only-root")
	defer stop()
	if !strings.Contains(banner, "Root Token: dev-only-root") {
		t.Fatalf("banner does not show the chosen root token:\n%s", banner)
	}
	if code, _ := call(t, "GET", base+"/v1/streams/order-42/events", token, ""); code != 401 {
		t.Fatalf("the previous root token still works after a restart: %d", code)
	}
	code, b := call(t, "GET", base+"/v1/streams/order-42/events", "dev-only-root", "")
	if code != 200 {
		t.Fatalf("read after restart: %d %s", code, b)
	}
	var got struct {
		Events []struct {
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(b), &got); err != nil || len(got.Events) != 1 || string(got.Events[0].Data) != `{"total":42}` {
		t.Fatalf("after restart read %s (%v), want the event appended before", b, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := call(t, "GET", base+"/readyz", "", ""); code == 200 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("readyz never answered 200")
}

func TestServerFlagsRefuseIncompleteProductionConfig(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "-database-url"},
		// Production needs Vault; a root key file alone no longer does.
		{[]string{"-database-url", "postgres://x"}, "-vault-addr"},
		{[]string{"-database-url", "postgres://x", "-root-key-file", "k"}, "-insecure-local-root-key"},
		{[]string{"-database-url", "postgres://x", "-insecure-local-root-key"}, "-root-key-file"},
		{[]string{"-database-url", "postgres://x", "-vault-addr", "http://127.0.0.1:8200"}, "EVENTVAULT_VAULT_TOKEN"},
		{[]string{"-database-url", "postgres://x", "-vault-addr", "vault.example:8200", "-vault-token-file", "t"}, "http:// or https://"},
		{[]string{"-database-url", "postgres://x", "-vault-addr", "http://v", "-vault-token-file", "t", "-root-key-file", "k"}, "two root keys"},
		{[]string{"-database-url", "postgres://x", "-vault-addr", "http://v", "-vault-token-file", "t", "-insecure-local-root-key", "-root-key-file", "k"}, "two root keys"},
		{[]string{"-database-url", "postgres://x", "-vault-addr", "http://v", "-vault-token-file", "t", "-vault-approle-role-id", "r"}, "not both"},
		{[]string{"-database-url", "postgres://x", "-vault-token-file", "t", "-insecure-local-root-key", "-root-key-file", "k"}, "no Vault address"},
		{[]string{"-dev", "-vault-addr", "http://v", "-vault-approle-role-id", "r"}, "secret id"},
		{[]string{"-dev", "-vault-addr", "http://v", "-vault-token-file", "t", "-vault-client-cert", "c.pem"}, "-vault-client-key"},
		{[]string{"-dev", "-tls-cert", "c.pem"}, "-tls-key"},
		// Files that are not there: refused before anything is opened or a
		// banner says the server listens.
		{[]string{"-dev", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, "-tls-cert /nonexistent/c.pem and -tls-key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory: give a PEM certificate"},
		{[]string{"-dev", "-log-format", "xml"}, "-log-format"},
		{[]string{"-database-url", "postgres://x", "-insecure-local-root-key", "-root-key-file", "k", "-dev-root-token", "r"}, "dev mode only"},
		// Flags of earlier versions say what replaced them.
		{[]string{"-dev", "-signing-key-file", "/tmp/x"}, "-signing-key-file is gone: the certificate signing key is a deployment key in the store now: import the file once with `eventvault init -import-signing-key-file FILE`"},
		{[]string{"--pseudonym-key-file=/tmp/x", "-dev"}, "-pseudonym-key-file is gone"},
		{[]string{"-database-url", "postgres://x", "-signing-key-file", "/tmp/x"}, "-signing-key-file is gone"},
	}
	for _, c := range cases {
		_, err := parseServerFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flags %q: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
	for _, args := range [][]string{
		{"-database-url", "postgres://x", "-vault-addr", "https://vault.example:8200", "-vault-token-file", "t"},
		{"-database-url", "postgres://x", "-vault-addr", "https://vault.example:8200", "-vault-approle-role-id", "r", "-vault-approle-secret-id-file", "s"},
		{"-database-url", "postgres://x", "-insecure-local-root-key", "-root-key-file", "k"},
		{"-dev"},
		{"-dev", "-vault-addr", "http://127.0.0.1:8200", "-vault-token-file", "t"},
	} {
		if _, err := parseServerFlags(args, io.Discard); err != nil {
			t.Errorf("flags %q: %v; want them accepted", args, err)
		}
	}
}
