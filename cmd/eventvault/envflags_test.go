package main

import (
	"strings"
	"testing"
)

// TestEnvironmentValuesAreCheckedAsFlagsAre: an EVENTVAULT_* variable
// whose value does not parse stops the server, and a command, with an
// error that names the variable and what it takes, as the same value
// given as the flag does; it never starts on the default. Inputs tried: a
// duration that is a word, an integer with a unit, a boolean "yes", a
// Vault timeout of "10" (no unit), for the server and for an operator
// command; and empty values, which are the defaults.
func TestEnvironmentValuesAreCheckedAsFlagsAre(t *testing.T) {
	for _, c := range []struct {
		name, value, says string
		args              []string
	}{
		{"EVENTVAULT_KEY_CACHE_TTL", "banana", `environment variable EVENTVAULT_KEY_CACHE_TTL="banana" is not a duration such as "30s" or "5m"`, []string{"server"}},
		{"EVENTVAULT_MAX_APPENDS", "3x", `EVENTVAULT_MAX_APPENDS="3x" is not a whole number`, []string{"server"}},
		{"EVENTVAULT_DEV", "yes", `EVENTVAULT_DEV="yes" is not true or false`, []string{"server"}},
		{"EVENTVAULT_FEED_POLL", "fast", `EVENTVAULT_FEED_POLL="fast"`, []string{"server"}},
		{"EVENTVAULT_VAULT_TIMEOUT", "10", `EVENTVAULT_VAULT_TIMEOUT="10" is not a duration`, []string{"token", "list", "-tenant", "acme"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(c.name, c.value)
			code, stdout, stderr := runCLI(t, c.args...)
			if code == 0 || !strings.Contains(stderr, c.says) || !strings.Contains(stderr, "give a valid value, or unset it") || strings.Contains(stdout, "listening") {
				t.Fatalf("%s=%q, eventvault %v: exit %d\nstdout %s\nstderr %s", c.name, c.value, c.args, code, stdout, stderr)
			}
		})
	}
	// Empty is unset: the defaults, and the next error is the one about
	// what is missing.
	t.Setenv("EVENTVAULT_KEY_CACHE_TTL", "")
	t.Setenv("EVENTVAULT_DEV", "")
	if _, _, stderr := runCLI(t, "token", "list", "-tenant", "acme"); strings.Contains(stderr, "environment variable") {
		t.Fatalf("empty variables were refused: %s", stderr)
	}
}
