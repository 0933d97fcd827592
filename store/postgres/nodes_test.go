package postgres_test

import (
	"context"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/storetest"
)

// TestNodes runs storetest.RunNodes on two *DB over one database, each with
// its own version cache.
func TestNodes(t *testing.T) {
	storetest.RunNodes(t, func(t *testing.T) (eventvault.Store, eventvault.Store) {
		a, url := openDB(t)
		b, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatalf("Open a second node: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return a, b
	})
}
