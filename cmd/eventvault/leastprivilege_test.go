package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// migratedURL is a fresh test database, migrated as the superuser, as an
// operator's `eventvault migrate` does before the first production start.
func migratedURL(t *testing.T) string {
	t.Helper()
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// issueToken creates the deployment keys of the database at url (as an
// operator's `eventvault init` does once per deployment) and issues an admin
// token of tenant with `eventvault token create`, on the local root key
// file rootKey (the one the production server will use), and returns it.
func issueToken(t *testing.T, url, rootKey string, tenant eventvault.TenantID) string {
	t.Helper()
	root := []string{"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootKey}
	if code, stdout, stderr := runCLI(t, append([]string{"init"}, root...)...); code != 0 {
		t.Fatalf("eventvault init: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runCLI(t, append([]string{"token", "create", "-tenant", string(tenant), "-name", "test",
		"-rules", `[{"capabilities":["admin"],"streams":"*"}]`}, root...)...)
	if code != 0 {
		t.Fatalf("eventvault token create: exit %d\n%s", code, stderr)
	}
	return strings.TrimSpace(stdout)
}

// startProduction runs `eventvault server` (not -dev) as a process on the
// local root key in dataDir, against dbURL, and returns its base URL.
func startProduction(t *testing.T, bin, dbURL, dataDir string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "server", "-listen", "127.0.0.1:0", "-data-dir", dataDir,
		"-database-url", dbURL, "-insecure-local-root-key", "-root-key-file", filepath.Join(dataDir, "root.key"))
	var logs bytes.Buffer
	cmd.Stderr = &syncWriter{w: &logs}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("log of the server on %s:\n%s", dbURL, logs.String())
		}
	})
	found := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		cmd.Wait()
	}()
	select {
	case base := <-found:
		return base
	case <-exited:
		t.Fatalf("the server exited at start:\n%s", logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not start listening within 60 s")
	}
	return ""
}

// TestServerRunsAsTheLeastPrivilegedLoginRole is README's production setup
// on real parts: `eventvault migrate` as the schema's owner, then the server
// process as a login role that is only a member of eventvault_app (and
// holds nothing itself: see store/postgres TestTheServersLoginRoleHolds
// NothingOfItsOwn). It starts without migrating, appends and reads. Before
// the migration, it refuses to start, naming `eventvault migrate`; and the
// login role cannot run the migration itself, and is told to migrate as
// the schema's owner.
func TestServerRunsAsTheLeastPrivilegedLoginRole(t *testing.T) {
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	login := pgtest.AppLogin(t, url)

	// A second, unmigrated database on the same server: the role exists.
	bare := pgtest.URL(t)
	bareLogin := strings.Replace(bare, "postgres@", strings.Split(strings.TrimPrefix(login, "postgres://"), "@")[0]+"@", 1)
	_, err := openServer(t, "-database-url", bareLogin, "-insecure-local-root-key", "-root-key-file", filepath.Join(t.TempDir(), "root.key"))
	if err == nil || !strings.Contains(err.Error(), "eventvault migrate") {
		t.Fatalf("start on an unmigrated database: %v; want a refusal naming `eventvault migrate`", err)
	}
	code, _, stderr := runCLI(t, "migrate", "-database-url", login)
	if code == 0 {
		t.Fatal("`eventvault migrate` as the server's login role succeeded")
	}
	if strings.Contains(stderr, "postgres://") {
		t.Errorf("the error shows the database URL: %s", stderr)
	}
	if !strings.Contains(stderr, "run `eventvault migrate` as the schema's owner") || strings.Contains(stderr, "member of eventvault_app") {
		t.Errorf("`eventvault migrate` as the login role says:\n%s\nwant it told to migrate as the schema's owner", stderr)
	}

	dataDir := t.TempDir()
	token := issueToken(t, url, filepath.Join(dataDir, "root.key"), "acme")
	base := startProduction(t, buildServer(t), login, dataDir)
	code, _, body := appendEvents(t, base, token, "order-1", 3)
	expectStatus(t, "append as the login role", 201, code, body)
	code, _, body = do(t, "GET", base+"/v1/streams/order-1/events", token, "")
	expectStatus(t, "read as the login role", 200, code, body)
	if strings.Count(body, `"type":"Tested"`) != 3 {
		t.Fatalf("read: %s; want the 3 events", body)
	}
}
