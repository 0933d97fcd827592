package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestWithoutADatabaseEachCommandSaysHowToRunItInDevMode: a command that
// opens the store, run without -dev and without a database URL, says how
// to run that command in dev mode: the server with 'eventvault server
// -dev'; a one-shot command with -dev added to itself, not by starting a
// server; init, which dev mode does not need, says so.
func TestWithoutADatabaseEachCommandSaysHowToRunItInDevMode(t *testing.T) {
	for _, name := range []string{"EVENTVAULT_DATABASE_URL", "EVENTVAULT_DEV", "EVENTVAULT_VAULT_ADDR"} {
		t.Setenv(name, "")
	}
	oneShot := func(command string) []string {
		return []string{"add -dev to this command: 'eventvault " + command + " -dev ...'", "-data-dir"}
	}
	cases := []struct {
		args    []string
		want    []string
		notWant string
	}{
		{[]string{"server"}, []string{"for a local trial run 'eventvault server -dev'"}, "add -dev"},
		{[]string{"init"}, []string{"a dev server ('eventvault server -dev') creates its deployment keys itself and needs no init"}, "for a local trial run"},
		{[]string{"subject", "export", "-tenant", "acme", "-subject", "x"}, oneShot("subject export"), "for a local trial run"},
		{[]string{"subject", "erase", "-tenant", "acme", "-subject", "x"}, oneShot("subject erase"), "for a local trial run"},
		{[]string{"token", "create", "-tenant", "acme", "-name", "app"}, oneShot("token create"), "for a local trial run"},
		{[]string{"token", "list", "-tenant", "acme"}, oneShot("token list"), "for a local trial run"},
		{[]string{"token", "revoke-root"}, oneShot("token revoke-root"), "for a local trial run"},
		{[]string{"audit", "export", "-tenant", "acme"}, oneShot("audit export"), "for a local trial run"},
		{[]string{"audit", "processing", "-tenant", "acme"}, oneShot("audit processing"), "for a local trial run"},
		{[]string{"tenant", "shred", "-tenant", "acme", "-yes"}, oneShot("tenant shred"), "for a local trial run"},
		{[]string{"rotate", "tenant", "-tenant", "acme"}, oneShot("rotate tenant"), "for a local trial run"},
		{[]string{"rotate", "root"}, oneShot("rotate root"), "for a local trial run"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:min(2, len(c.args))], " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(t.Context(), c.args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
			}
			msg := errb.String()
			if !strings.Contains(msg, "production mode needs -database-url (or EVENTVAULT_DATABASE_URL)") {
				t.Fatalf("stderr %q; want it to say that production mode needs -database-url", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, c.notWant) {
				t.Errorf("stderr %q says %q", msg, c.notWant)
			}
		})
	}
}
