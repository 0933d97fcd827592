package postgres_test

import (
	"context"
	"testing"

	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// openDB returns a store on a fresh, migrated database, closed when t ends,
// and the database's superuser URL.
func openDB(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	url := pgtest.URL(t)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, url
}
