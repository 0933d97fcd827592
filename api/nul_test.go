package api

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// newPostgresAPI is the whole server, erasure and key endpoints included,
// over a fresh PostgreSQL database and a local root key.
func newPostgresAPI(t *testing.T) *testAPI {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	dir := t.TempDir()
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatalf("root key: %v", err)
	}
	pseud, err := evcrypto.OpenPseudonymizer(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatalf("pseudonym key: %v", err)
	}
	signer, err := evcrypto.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	tokens := &auth.Tokens{Store: store}
	rootToken, err := tokens.InstallRoot(ctx, "default", "")
	if err != nil {
		t.Fatalf("install root token: %v", err)
	}
	srv := New(Config{
		Engine:  engine.New(store, keys, nil, engine.WithPseudonymizer(pseud)),
		Erasure: engine.NewErasure(store, keys, pseud, signer, nil, revokeTokens(store, tokens)),
		Keys:    engine.NewRotation(keys, nil),
		Tokens:  tokens,
		Ready:   store.Ping,
	})
	return &testAPI{t: t, srv: srv, root: rootToken}
}

// TestTextWithNULIsAClientError: PostgreSQL text cannot hold a NUL
// character, which JSON can carry as \u0000. Every free-text field a client
// sends to be stored in clear is refused with 400, on both stores, never a
// 500, and nothing is stored.
func TestTextWithNULIsAClientError(t *testing.T) {
	for _, b := range []struct {
		name string
		api  func(*testing.T) *testAPI
	}{{"bolt", newTestAPI}, {"postgres", newPostgresAPI}} {
		t.Run(b.name, func(t *testing.T) {
			a := b.api(t)
			dpo := a.eraser("acme")
			for _, c := range []struct {
				name, method, path, token, body, detail string
			}{
				{"hold reason", http.MethodPut, "/v1/subjects/customer-1/hold", dpo, `{"reason":"court order a\u0000b"}`, "reason"},
				{"token name", http.MethodPost, "/v1/tokens", a.root, `{"tenant":"acme","name":"app\u0000"}`, "name"},
				{"rule pattern", http.MethodPost, "/v1/tokens", a.root, `{"tenant":"acme","name":"app","rules":[{"capabilities":["read"],"streams":"order-\u0000*"}]}`, "rules[0].streams"},
			} {
				t.Run(c.name, func(t *testing.T) {
					wantProblem(t, a.do(c.method, c.path, c.token, []byte(c.body)), http.StatusBadRequest, eventvault.EINVALID, c.detail)
				})
			}
			// Nothing was stored: the subject has no hold to lift.
			wantProblem(t, a.do(http.MethodDelete, "/v1/subjects/customer-1/hold", dpo, nil), http.StatusNotFound, eventvault.ENOTFOUND)
		})
	}
}
