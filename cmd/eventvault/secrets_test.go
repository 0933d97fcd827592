package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestNoSecretInHelpBannerOrErrors sets EVENTVAULT_DATABASE_URL with a
// password, as a production host does, and checks that no help text, start
// banner or error of a failed connection shows it.
func TestNoSecretInHelpBannerOrErrors(t *testing.T) {
	const password = "s3cret-Pa55word"
	t.Setenv("EVENTVAULT_DATABASE_URL", "postgres://app:"+password+"@127.0.0.1:1/eventvault?sslmode=disable")
	t.Setenv("EVENTVAULT_VAULT_TOKEN", "")

	for _, args := range [][]string{
		{"server", "-h"},
		{"migrate", "-h"},
		{"rotate", "tenant", "-h"},
		{"rotate", "root", "-h"},
		{"rotate", "cycle", "-h"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%q: exit %d", args, code)
		}
		if strings.Contains(stdout+stderr, password) {
			t.Errorf("%q shows the database password:\n%s%s", args, stdout, stderr)
		}
		if !strings.Contains(stderr, "-database-url") || !strings.Contains(stderr, "app:xxxxx@127.0.0.1:1") {
			t.Errorf("%q: help lacks the redacted default:\n%s", args, stderr)
		}
	}

	// Failed connections: migrate, and a server and a rotation that reach
	// the database (the local root key opens without Vault).
	key := t.TempDir() + "/root.key"
	for _, args := range [][]string{
		{"migrate"},
		{"migrate", "-database-url", "postgres://other:" + password + "x@127.0.0.1:1/db"},
		{"server", "-insecure-local-root-key", "-root-key-file", key, "-listen", "127.0.0.1:0"},
		{"server", "-insecure-local-root-key", "-root-key-file", key, "-listen", "127.0.0.1:0", "-log-format", "json"},
		{"rotate", "root", "-insecure-local-root-key", "-root-key-file", key},
		{"migrate", "-database-url", "host=127.0.0.1 port=1 user=app password=" + password + " dbname=x"},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code == 0 {
			t.Errorf("%q: exit 0 against no database", args)
		}
		if strings.Contains(stdout+stderr, password) {
			t.Errorf("%q shows the database password:\n%s%s", args, stdout, stderr)
		}
	}
}

// TestBannerShowsNoSecret opens a production server over PostgreSQL with a
// password in its URL and checks the banner and the log.
func TestBannerShowsNoSecret(t *testing.T) {
	for _, in := range []string{
		"postgres://app:pw-1234@db:5432/x?sslmode=disable",
		"postgres://app@db/x?password=pw-1234",
		"host=db user=app password=pw-1234 dbname=x",
		"host=db user=app password='pw-1234' dbname=x",
	} {
		if got := redactURL(in); strings.Contains(got, "pw-1234") || !strings.Contains(got, "xxxxx") {
			t.Errorf("redactURL(%q) = %q", in, got)
		}
	}
	var out, log bytes.Buffer
	m := &Main{Config: Config{DatabaseURL: "postgres://app:pw-1234@db/x"}, Stdout: &out, Logger: slog.New(slog.NewJSONHandler(&log, nil))}
	m.Config.RootKeyFile = "root.key"
	m.printBanner("PostgreSQL", "127.0.0.1:8080")
	if strings.Contains(out.String()+log.String(), "pw-1234") {
		t.Fatalf("banner shows the password:\n%s%s", out.String(), log.String())
	}
}
