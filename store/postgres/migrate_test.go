package postgres_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// appliedMigrations returns the versions recorded in schema_migrations.
func appliedMigrations(t *testing.T, url string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return versions
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	url := pgtest.URL(t)
	for i := range 2 {
		if err := postgres.Migrate(t.Context(), url); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	versions := appliedMigrations(t, url)
	for i, v := range versions {
		if (i == 0 && v != 1) || (i > 0 && v <= versions[i-1]) {
			t.Fatalf("schema_migrations holds versions %v, want each once from 1", versions)
		}
	}
	if len(versions) == 0 {
		t.Fatal("schema_migrations is empty after Migrate")
	}
}

func TestConcurrentMigratesDoNotFail(t *testing.T) {
	url := pgtest.URL(t)
	const n = 6
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = postgres.Migrate(t.Context(), url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d of %d: %v", i+1, n, err)
		}
	}
	versions := appliedMigrations(t, url)
	if len(versions) == 0 || versions[0] != 1 || !slices.IsSorted(versions) || len(slices.Compact(slices.Clone(versions))) != len(versions) {
		t.Errorf("schema_migrations holds %v after concurrent migrations", versions)
	}
	db, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open after concurrent migrations: %v", err)
	}
	_ = db.Close()
}

// TestConcurrentMigratesOfTwoDatabases migrates two databases of one server
// at once: the role both create is cluster-wide.
func TestConcurrentMigratesOfTwoDatabases(t *testing.T) {
	urls := []string{pgtest.URL(t), pgtest.URL(t), pgtest.URL(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, url := range urls {
		wg.Go(func() { errs[i] = postgres.Migrate(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate database %d: %v", i+1, err)
		}
	}
}

func TestOpenRefusesAnUnmigratedDatabase(t *testing.T) {
	url := pgtest.URL(t)
	db, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err == nil {
		_ = db.Close()
		t.Fatal("Open of an unmigrated database succeeded")
	}
	if got := eventvault.ErrorCode(err); got != eventvault.EINTERNAL {
		t.Errorf("error code = %q, want %q", got, eventvault.EINTERNAL)
	}
	if msg := eventvault.ErrorMessage(err); !strings.Contains(msg, "eventvault migrate") {
		t.Errorf("message %q does not say to apply the migrations", msg)
	}
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	// A port on loopback where nothing listens (the discard port).
	const url = "postgres://postgres@127.0.0.1:9/postgres?sslmode=disable&connect_timeout=2"
	_, err := postgres.Open(t.Context(), url, postgres.Options{})
	if got := eventvault.ErrorCode(err); got != eventvault.EUNAVAILABLE {
		t.Errorf("Open: code %q (%v), want %q", got, err, eventvault.EUNAVAILABLE)
	}
	if got := eventvault.ErrorCode(postgres.Migrate(t.Context(), url)); got != eventvault.EUNAVAILABLE {
		t.Errorf("Migrate: code %q, want %q", got, eventvault.EUNAVAILABLE)
	}
}

func TestPingFailsOnceTheDatabaseIsGone(t *testing.T) {
	db, _ := openDB(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	_ = db.Close()
	if got := eventvault.ErrorCode(db.Ping(t.Context())); got != eventvault.EUNAVAILABLE {
		t.Errorf("Ping after Close: code %q, want %q", got, eventvault.EUNAVAILABLE)
	}
}
