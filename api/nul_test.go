package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// newPostgresAPI is the whole server, erasure and key endpoints included,
// over a fresh PostgreSQL database and a local root key.
func newPostgresAPI(t *testing.T) *testAPI {
	t.Helper()
	return newTestAPIOver(t, newPostgresStore(t), nil)
}

// newPostgresStore is a fresh, migrated PostgreSQL database, closed when t
// ends.
func newPostgresStore(t *testing.T) *postgres.DB {
	t.Helper()
	store, _ := newPostgresStoreURL(t)
	return store
}

// newPostgresStoreURL is newPostgresStore with its database's superuser
// URL.
func newPostgresStoreURL(t *testing.T) (*postgres.DB, string) {
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
	return store, url
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
				{"hold reason", http.MethodPut, "/v1/holds", dpo, `{"subject":"customer-1","reason":"court order a\u0000b"}`, "reason"},
				{"token name", http.MethodPost, "/v1/tokens", a.root, `{"tenant":"acme","name":"app\u0000"}`, "name"},
				{"rule pattern", http.MethodPost, "/v1/tokens", a.root, `{"tenant":"acme","name":"app","rules":[{"capabilities":["read"],"streams":"order-\u0000*"}]}`, "rules[0].streams"},
			} {
				t.Run(c.name, func(t *testing.T) {
					wantProblem(t, a.do(c.method, c.path, c.token, []byte(c.body)), http.StatusBadRequest, eventvault.EINVALID, c.detail)
				})
			}
			// Nothing was stored: the subject has no hold to lift.
			wantProblem(t, a.do(http.MethodDelete, "/v1/holds", dpo, []byte(`{"subject":"customer-1"}`)), http.StatusNotFound, eventvault.ENOTFOUND)
		})
	}
}
