package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault/auth"
)

func TestTokenCacheTTLFlag(t *testing.T) {
	cases := []struct {
		args []string
		env  string
		want time.Duration
	}{
		{[]string{"-dev"}, "", auth.DefaultTokenCacheTTL},
		{[]string{"-dev", "-token-cache-ttl", "0"}, "", 0},
		{[]string{"-dev", "-token-cache-ttl", "1m"}, "", time.Minute},
		{[]string{"-dev"}, "250ms", 250 * time.Millisecond},
		{[]string{"-dev", "-token-cache-ttl", "2s"}, "0", 2 * time.Second},
	}
	for _, c := range cases {
		t.Setenv("EVENTVAULT_TOKEN_CACHE_TTL", c.env)
		cfg, err := parseServerFlags(c.args, io.Discard)
		if err != nil || cfg.TokenCacheTTL != c.want {
			t.Errorf("flags %q, EVENTVAULT_TOKEN_CACHE_TTL=%q: TTL %s, %v; want %s", c.args, c.env, cfg.TokenCacheTTL, err, c.want)
		}
	}
	t.Setenv("EVENTVAULT_TOKEN_CACHE_TTL", "")
	if _, err := parseServerFlags([]string{"-dev", "-token-cache-ttl", "-1s"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-token-cache-ttl") {
		t.Fatalf("a negative TTL: %v, want an error naming -token-cache-ttl", err)
	}
}
