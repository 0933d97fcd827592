package auth

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
)

func newTokens(t *testing.T) *Tokens {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Tokens{Store: db}
}

func TestIssuedTokenAuthenticatesAndIsStoredOnlyAsHash(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	root, err := s.InstallRoot(ctx, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	rootP, err := s.Authenticate(ctx, root)
	if err != nil || !rootP.Root {
		t.Fatalf("root token: %+v, %v", rootP, err)
	}
	secret, rec, err := s.Issue(ctx, rootP, NewTokenRequest{Tenant: "acme", Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Store.TokenByHash(ctx, s.Verifier(secret))
	if err != nil || string(stored.Hash) != string(s.Verifier(secret)) || stored.ID != rec.ID {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	p, err := s.Authenticate(ctx, secret)
	if err != nil || p.Tenant != "acme" || p.Root || p.TokenID != rec.ID || len(p.Rules) == 0 {
		t.Fatalf("principal %+v, %v", p, err)
	}
	// An acme token without admin cannot issue, not even for acme.
	if _, _, err := s.Issue(ctx, p, NewTokenRequest{Tenant: "acme"}); eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
		t.Fatalf("issue by non-admin: %v, want EFORBIDDEN", err)
	}
}

func TestAuthenticateRefusesBadTokens(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	if _, err := s.InstallRoot(ctx, "default", "root-1"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "root-2", "root-1 ", string(make([]byte, MaxTokenLength+1))} {
		if _, err := s.Authenticate(ctx, bad); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
			t.Errorf("Authenticate(%.10q) = %v, want EUNAUTHORIZED", bad, err)
		}
	}
	// Installing a new root retires the old one.
	if _, err := s.InstallRoot(ctx, "default", "root-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "root-1"); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
		t.Fatalf("retired root token still authenticates: %v", err)
	}
}

func TestIssueValidatesItsRequest(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	root := eventvault.Principal{Tenant: "default", Root: true}
	bad := []struct {
		req  NewTokenRequest
		says string
	}{
		{NewTokenRequest{Tenant: "Not Valid", Name: "app"}, "invalid tenant"},
		{NewTokenRequest{Tenant: "acme", Name: string(make([]byte, MaxTokenNameLength+1))}, "token name is"},
		// A token without a name cannot be told apart in the list (the
		// CLI requires -name; the API did not).
		{NewTokenRequest{Tenant: "acme"}, "name is missing"},
		{NewTokenRequest{Tenant: "acme", Name: "app", Rules: []eventvault.Rule{{Capabilities: []eventvault.Capability{"fly"}, Streams: "*"}}}, "fly"},
		// An explicit empty list grants nothing: a mistake, never the
		// default (which only a request without rules gets).
		{NewTokenRequest{Tenant: "acme", Name: "app", Rules: []eventvault.Rule{}}, "rules is an empty list"},
	}
	for i, c := range bad {
		if _, _, err := s.Issue(ctx, root, c.req); eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(err.Error(), c.says) {
			t.Errorf("case %d: %v, want EINVALID saying %q", i, err, c.says)
		}
	}
}
