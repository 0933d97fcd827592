package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// testDeploymentKey stands for the deployment's token-verifier key.
var testDeploymentKey = fixedKey{key: []byte("the deployment's token-verifier key, 32 bytes")}

// fixedKey is a VerifierKey of known bytes: the deployment's, in the test.
type fixedKey struct{ key []byte }

func (k fixedKey) TokenVerifier(secret string) [sha256.Size]byte {
	return [sha256.Size]byte(hmacOf(k.key, secret))
}

func hmacOf(key []byte, secret string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// forgedRows are the rows an attacker with write access to the database
// writes for a token they chose: its SHA-256 (what the store kept before
// verifiers were keyed), and its HMAC under a key of their own.
func forgedRows(chosen string) map[string][]byte {
	sum := sha256.Sum256([]byte(chosen))
	return map[string][]byte{
		"SHA-256":                sum[:],
		"HMAC under another key": hmacOf([]byte("the attacker's key, not the deployment's"), chosen),
	}
}

// checkForgedRowsAuthenticateNothing: with write forging rows straight
// into the store (as root, and as an admin of a tenant), the chosen token
// authenticates nothing, while a token the Tokens issued does.
func checkForgedRowsAuthenticateNothing(t *testing.T, store eventvault.TokenStore, write func(t *testing.T, id string, verifier []byte, tenant eventvault.TenantID, root bool)) {
	ctx := context.Background()
	tokens := NewTokens(store, time.Minute)
	tokens.Key = testDeploymentKey
	issued, _, err := tokens.Issue(ctx, eventvault.Principal{Root: true}, NewTokenRequest{Tenant: "acme", Name: "real"})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, root := range []bool{true, false} {
		tenant, chosen := eventvault.TenantID("acme"), "evt_chosen-admin"
		if root {
			tenant, chosen = "", "evt_chosen-root"
		}
		for what, verifier := range forgedRows(chosen) {
			i++
			write(t, fmt.Sprintf("tok_forged%d", i), verifier, tenant, root)
			if _, err := tokens.Authenticate(ctx, chosen); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
				t.Fatalf("%s (root %v) with a forged %s row: %v; want EUNAUTHORIZED", chosen, root, what, err)
			}
		}
	}
	if p, err := tokens.Authenticate(ctx, issued); err != nil || p.Tenant != "acme" {
		t.Fatalf("the issued token: %+v, %v", p, err)
	}
	// Another key (another deployment, or none) does not accept the
	// issued token either.
	other := NewTokens(store, 0)
	if _, err := other.Authenticate(ctx, issued); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
		t.Fatalf("the issued token under another key: %v; want EUNAUTHORIZED", err)
	}
}

func TestForgedTokenRowsAuthenticateNothingOnBolt(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	checkForgedRowsAuthenticateNothing(t, db, func(t *testing.T, id string, verifier []byte, tenant eventvault.TenantID, root bool) {
		// Straight into the store, past auth: the bbolt file holds what
		// CreateToken writes, with no check of the verifier.
		rules := []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"}}
		if err := db.CreateToken(t.Context(), eventvault.Token{ID: id, Hash: verifier, Tenant: tenant, Name: "forged", Root: root, Rules: rules, CreatedAt: time.Now()}); err != nil {
			t.Fatalf("forge a row: %v", err)
		}
	})
}

func TestForgedTokenRowsAuthenticateNothingOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	checkForgedRowsAuthenticateNothing(t, db, func(t *testing.T, id string, verifier []byte, tenant eventvault.TenantID, root bool) {
		_, err := conn.Exec(t.Context(), `INSERT INTO api_tokens (id, token_hash, tenant_id, name, root, rules, created_at)
			VALUES ($1, $2, $3, 'forged', $4, '[{"capabilities":["admin"],"streams":"*"}]', now())`, id, verifier, string(tenant), root)
		if err != nil {
			t.Fatalf("forge a row: %v", err)
		}
	})
}
