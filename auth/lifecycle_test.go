package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

func TestTokenTTLExpiresAndBoundsAreChecked(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	s.cache = newTokenCache(time.Hour) // longer than the TTL: expiry must still win
	for _, bad := range []time.Duration{-time.Hour, time.Second, MaxTokenTTL + time.Hour} {
		if _, _, err := s.Issue(ctx, Operator, NewTokenRequest{Tenant: "acme", Name: "app", TTL: bad}); eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("ttl %s: %v, want EINVALID", bad, err)
		}
	}
	secret, tok, err := s.Issue(ctx, Operator, NewTokenRequest{Tenant: "acme", Name: "short", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(10 * time.Minute); !tok.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", tok.ExpiresAt, want)
	}
	if _, err := s.Authenticate(ctx, secret); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(10 * time.Minute)
	_, err = s.Authenticate(ctx, secret)
	if eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("at expiry: %v, want EUNAUTHORIZED saying it expired", err)
	}
	forever, tok, err := s.Issue(ctx, Operator, NewTokenRequest{Tenant: "acme", Name: "forever"})
	if err != nil || !tok.ExpiresAt.IsZero() {
		t.Fatalf("no ttl: %+v, %v", tok, err)
	}
	now = now.Add(MaxTokenTTL)
	if _, err := s.Authenticate(ctx, forever); err != nil {
		t.Fatalf("a token without ttl: %v", err)
	}
}

func TestListAndRevoke(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	s.cache = newTokenCache(time.Hour)
	adminSecret, _, err := s.Issue(ctx, Operator, NewTokenRequest{Tenant: "acme", Name: "ops", Rules: []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := s.Authenticate(ctx, adminSecret)
	if err != nil {
		t.Fatal(err)
	}
	appSecret, app, err := s.Issue(ctx, admin, NewTokenRequest{Tenant: "acme", Name: "app", Rules: policies.DefaultRules})
	if err != nil {
		t.Fatal(err)
	}
	appP, err := s.Authenticate(ctx, appSecret) // now cached
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Issue(ctx, Operator, NewTokenRequest{Tenant: "other", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, admin, "acme")
	if err != nil || len(list) != 2 || list[1].ID != app.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if _, err := s.List(ctx, appP, "acme"); eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
		t.Fatalf("List without admin: %v", err)
	}
	if _, err := s.List(ctx, admin, "other"); eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
		t.Fatalf("List of another tenant: %v", err)
	}
	if err := s.Revoke(ctx, appP, "acme", app.ID); eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
		t.Fatalf("Revoke without admin: %v", err)
	}
	if err := s.Revoke(ctx, admin, "acme", app.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, appSecret); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
		t.Fatalf("a revoked token (was cached): %v", err)
	}
	if err := s.Revoke(ctx, admin, "acme", app.ID); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("Revoke again: %v", err)
	}
}

func TestRefuseRoot(t *testing.T) {
	ctx := context.Background()
	s := newTokens(t)
	root, err := s.InstallRoot(ctx, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	s.RefuseRoot = true
	_, err = s.Authenticate(ctx, root)
	if eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED || !strings.Contains(err.Error(), RevokeRootCommand) {
		t.Fatalf("a root token on a production server: %v", err)
	}
	if n, err := s.RevokeRoot(ctx); err != nil || n != 1 {
		t.Fatalf("RevokeRoot: %d, %v; want the one root token removed", n, err)
	}
	s.RefuseRoot = false
	if _, err := s.Authenticate(ctx, root); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
		t.Fatalf("a removed root token: %v", err)
	}
}
