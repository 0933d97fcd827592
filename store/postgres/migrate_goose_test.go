package postgres_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// legacyMigrate is the runner goose replaced, as it was (each file in its
// own transaction under an advisory lock, recorded in schema_migrations),
// applying migrations 1..upTo: it builds the databases Migrate must take
// over.
func legacyMigrate(t *testing.T, url string, upTo int) {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) < upTo {
		t.Fatalf("migration files: %v %v", files, err)
	}
	slices.Sort(files)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i, f := range files[:upTo] {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f)[5:], ".sql")
		err = pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
			for _, stmt := range []string{
				`SELECT pg_advisory_xact_lock(x'65767661756c74'::bigint)`,
				`CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`,
				string(body),
			} {
				if _, err := tx.Exec(t.Context(), stmt); err != nil {
					return err
				}
			}
			_, err := tx.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, name)
			return err
		})
		if err != nil {
			t.Fatalf("legacy migration %s: %v", f, err)
		}
	}
}

// queryAll returns the one column of sql's rows.
func queryAll[T any](t *testing.T, url, sql string) []T {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestMigrateTakesOverTheOldRunner: a database the old runner migrated
// (fully, or up to 2) is taken over by goose without running anything
// again: its rows and the old runner's records stay, goose's table records
// the same versions, and only the migrations the old runner had not applied
// run.
func TestMigrateTakesOverTheOldRunner(t *testing.T) {
	for _, upTo := range []int{2, postgres.LatestVersion()} {
		url := pgtest.URL(t)
		legacyMigrate(t, url, upTo)
		pgtest.Exec(t, url, `INSERT INTO tenants (tenant_id) VALUES ('before-goose')`)
		before := queryAll[int64](t, url, `SELECT (extract(epoch FROM applied_at) * 1e6)::bigint FROM schema_migrations ORDER BY version`)

		for i := range 2 {
			if err := postgres.Migrate(t.Context(), url); err != nil {
				t.Fatalf("legacy up to %d, Migrate #%d: %v", upTo, i+1, err)
			}
		}
		goose := queryAll[int64](t, url, `SELECT version_id FROM goose_db_version ORDER BY id`)
		want := []int64{0}
		for v := 1; v <= postgres.LatestVersion(); v++ {
			want = append(want, int64(v))
		}
		if !slices.Equal(goose, want) {
			t.Errorf("legacy up to %d: goose_db_version holds %v, want %v once each", upTo, goose, want)
		}
		after := queryAll[int64](t, url, `SELECT (extract(epoch FROM applied_at) * 1e6)::bigint FROM schema_migrations ORDER BY version`)
		if len(after) != postgres.LatestVersion() || !slices.Equal(after[:upTo], before) {
			t.Errorf("legacy up to %d: schema_migrations applied_at %v, was %v: the old records changed", upTo, after, before)
		}
		if n := queryAll[int64](t, url, `SELECT count(*) FROM tenants WHERE tenant_id = 'before-goose'`); n[0] != 1 {
			t.Errorf("legacy up to %d: the row written before the takeover is gone", upTo)
		}
		db, err := postgres.Open(t.Context(), url, postgres.Options{})
		if err != nil {
			t.Fatalf("legacy up to %d: Open after the takeover: %v", upTo, err)
		}
		_ = db.Close()
	}
}

// dumpSchema is pg_dump's schema of the database at url, without the
// version tables (the runners' own) and the database's name.
func dumpSchema(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command("pg_dump", "--schema-only", "-T", "schema_migrations", "-T", "goose_db_version", "-d", url).Output()
	if err != nil {
		t.Fatalf("pg_dump --schema-only: %v", err)
	}
	// pg_dump 17 and later print a random \restrict key.
	return regexp.MustCompile(`(?m)^\\(un)?restrict .*$`).ReplaceAllString(string(out), "")
}

// TestGooseBuildsTheOldRunnersSchema: on a fresh database, goose's run of
// the annotated files leaves the schema the old runner left, byte for byte
// in pg_dump, and the same records in schema_migrations.
func TestGooseBuildsTheOldRunnersSchema(t *testing.T) {
	old, fresh := pgtest.URL(t), pgtest.URL(t)
	legacyMigrate(t, old, postgres.LatestVersion())
	if err := postgres.Migrate(t.Context(), fresh); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	a, b := dumpSchema(t, old), dumpSchema(t, fresh)
	if !strings.Contains(a, "CREATE POLICY tenant_isolation ON public.events") {
		t.Fatalf("the dump does not hold the schema:\n%s", a)
	}
	if a != b {
		t.Fatalf("the schemas differ:\n--- old runner\n%s\n--- goose\n%s", a, b)
	}
	q := `SELECT version FROM schema_migrations ORDER BY version`
	if a, b := queryAll[int64](t, old, q), queryAll[int64](t, fresh, q); !slices.Equal(a, b) {
		t.Errorf("schema_migrations: old runner %v, goose %v", a, b)
	}
}

// TestOpenChecksTheSchemaVersion: Open reads goose's table and refuses a
// schema behind it, naming `eventvault migrate`, and one ahead of it,
// saying to upgrade; a database the old runner migrated reads as not
// migrated until `eventvault migrate` takes it over.
func TestOpenChecksTheSchemaVersion(t *testing.T) {
	expectRefusal := func(t *testing.T, url, want string) {
		t.Helper()
		db, err := postgres.Open(t.Context(), url, postgres.Options{})
		if err == nil {
			_ = db.Close()
			t.Fatalf("Open succeeded; want a refusal saying %q", want)
		}
		if eventvault.ErrorCode(err) != eventvault.EINTERNAL || !strings.Contains(eventvault.ErrorMessage(err), want) {
			t.Fatalf("Open: %q (%v); want EINTERNAL saying %q", eventvault.ErrorMessage(err), err, want)
		}
	}
	t.Run("old runner", func(t *testing.T) {
		url := pgtest.URL(t)
		legacyMigrate(t, url, postgres.LatestVersion())
		expectRefusal(t, url, "run `eventvault migrate`")
	})
	t.Run("behind", func(t *testing.T) {
		url := pgtest.URL(t)
		if err := postgres.Migrate(t.Context(), url); err != nil {
			t.Fatal(err)
		}
		pgtest.Exec(t, url, `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`)
		expectRefusal(t, url, "behind this server")
		expectRefusal(t, url, "run `eventvault migrate`")
	})
	t.Run("ahead", func(t *testing.T) {
		url := pgtest.URL(t)
		if err := postgres.Migrate(t.Context(), url); err != nil {
			t.Fatal(err)
		}
		pgtest.Exec(t, url, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`)
		expectRefusal(t, url, "upgrade the server")
		if err := postgres.Migrate(t.Context(), url); err == nil || !strings.Contains(eventvault.ErrorMessage(err), "upgrade the server") {
			t.Fatalf("Migrate of a newer schema: %v; want a refusal saying to upgrade", err)
		}
	})
}

// TestTheServersLoginRoleHoldsNothingOfItsOwn: the production login role
// (pgtest.AppLogin: LOGIN NOINHERIT, only a member of eventvault_app) opens
// the store, which checks the schema with a read. On its own, after RESET
// ROLE, it reads no table, creates nothing, calls none of the SECURITY
// DEFINER functions and cannot become any other role; and it cannot
// migrate.
func TestTheServersLoginRoleHoldsNothingOfItsOwn(t *testing.T) {
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	login := pgtest.AppLogin(t, url)
	db, err := postgres.Open(t.Context(), login, postgres.Options{})
	if err != nil {
		t.Fatalf("Open as the login role: %v", err)
	}
	if _, err := db.Tenants(t.Context()); err != nil {
		t.Fatalf("a store read as the login role: %v", err)
	}
	_ = db.Close()

	conn, err := pgx.Connect(t.Context(), login)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT quote_ident(relname) FROM pg_class
		WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 9 {
		t.Fatalf("tables %v, %v", tables, err)
	}
	denied := func(what, sql string) {
		t.Helper()
		_, err := conn.Exec(t.Context(), sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as the login role itself: %v; want SQLSTATE 42501 (insufficient privilege)", what, err)
		}
	}
	if _, err := conn.Exec(t.Context(), `SET ROLE eventvault_app`); err != nil {
		t.Fatalf("SET ROLE eventvault_app: %v", err)
	}
	if _, err := conn.Exec(t.Context(), `RESET ROLE`); err != nil {
		t.Fatalf("RESET ROLE: %v", err)
	}
	for _, table := range tables {
		denied("SELECT from "+table, `SELECT 1 FROM `+table+` LIMIT 1`)
	}
	denied("CREATE TABLE", `CREATE TABLE mine (x int)`)
	denied("eventvault_purge_stream", `SELECT eventvault_purge_stream('s', now())`)
	denied("eventvault_destroy_tenant_keys", `SELECT eventvault_destroy_tenant_keys()`)
	denied("eventvault_destroy_tenant_keys_before", `SELECT eventvault_destroy_tenant_keys_before(2)`)
	denied("SET ROLE postgres", `SET ROLE postgres`)
	denied("SET ROLE pg_read_all_data", `SET ROLE pg_read_all_data`)

	err = postgres.Migrate(t.Context(), login)
	if err == nil {
		t.Fatal("Migrate as the login role succeeded")
	}
}
