// Package pgtest gives tests a real PostgreSQL: a fresh database of their
// own on the server named by EVENTVAULT_TEST_DATABASE_URL, dropped when the
// test ends, and a scan of everything stored in it, for tests that prove no
// plaintext reaches the database.
//
// `make test` (scripts/with-postgres.sh) starts a throwaway server and sets
// the variable. Without it, tests fail with a message saying so: they never
// skip.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the environment variable that names the test server: a
// PostgreSQL superuser URL.
const EnvURL = "EVENTVAULT_TEST_DATABASE_URL"

// URL creates a database with a random name (evtest_<hex>) on the test
// server, drops it (WITH (FORCE)) when t ends, and returns its URL: the
// server's URL with the database swapped. It fails t if the variable is not
// set or the server cannot be reached.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Fatal(EnvURL + " is not set: run the tests with `make test`, which starts a throwaway PostgreSQL, or point it at a PostgreSQL superuser URL")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL (the value does not parse as one)", EnvURL)
	}

	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	name := "evtest_" + hex.EncodeToString(suffix[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test server named by %s: %v", EnvURL, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, base, name) })

	u.Path = "/" + name
	return u.String()
}

func dropDatabase(t testing.TB, base, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("connect to drop test database %s: %v", name, err)
		return
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Errorf("drop test database %s: %v", name, err)
	}
}

// Scan reads every row of every table in every non-system schema of the
// database at url, each row cast whole to text (bytea renders as hex), and
// returns where a needle occurs, as raw bytes or as lowercase hex, one
// description per place ("table public.events row 3: needle 0 as hex"). It
// fails t if it finds no table at all, so that it cannot pass vacuously, or
// if a needle is empty. url must name a role that reads every row (the
// superuser of the test server; row-level security does not apply to it).
func Scan(t testing.TB, url string, needles ...[]byte) []string {
	t.Helper()
	for i, n := range needles {
		if len(n) == 0 {
			t.Fatalf("pgtest.Scan: needle %d is empty, which would match everywhere", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest.Scan: connect: %v", err)
	}
	defer conn.Close(context.Background())

	tables, err := userTables(ctx, conn)
	if err != nil {
		t.Fatalf("pgtest.Scan: list tables: %v", err)
	}
	if len(tables) == 0 {
		t.Fatal("pgtest.Scan found no table to scan: the database is empty, so the scan would prove nothing")
	}

	hexNeedles := make([][]byte, len(needles))
	for i, n := range needles {
		hexNeedles[i] = []byte(hex.EncodeToString(n))
	}
	var found []string
	for _, table := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+table.Sanitize()+" t")
		if err != nil {
			t.Fatalf("pgtest.Scan: read %s: %v", strings.Join(table, "."), err)
		}
		row := 0
		for rows.Next() {
			row++
			var text []byte
			if err := rows.Scan(&text); err != nil {
				t.Fatalf("pgtest.Scan: read %s: %v", strings.Join(table, "."), err)
			}
			for i := range needles {
				where := fmt.Sprintf("table %s row %d: needle %d", strings.Join(table, "."), row, i)
				if bytes.Contains(text, needles[i]) {
					found = append(found, where+" in clear")
				}
				if bytes.Contains(text, hexNeedles[i]) {
					found = append(found, where+" as hex")
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("pgtest.Scan: read %s: %v", strings.Join(table, "."), err)
		}
	}
	return found
}

// userTables lists the tables of every schema but PostgreSQL's own.
func userTables(ctx context.Context, conn *pgx.Conn) ([]pgx.Identifier, error) {
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r'
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND n.nspname NOT LIKE 'pg\_toast%'
		  AND n.nspname NOT LIKE 'pg\_temp%'
		ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
}

// Connect opens a session of the test server's superuser at url, with 30 s
// for all it does; it fails t if it cannot. done closes the session: call
// it when finished (a session left open counts for WaitForNoSessions).
func Connect(t testing.TB, url string) (ctx context.Context, conn *pgx.Conn, done func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		cancel()
		t.Fatalf("pgtest: connect: %v", err)
	}
	return ctx, conn, func() {
		conn.Close(context.Background())
		cancel()
	}
}

// Session runs sqls in order in one session of the test server's
// superuser (so that a SET holds for those after it) and returns the first
// error, wrapped with its statement: for tests of what the database
// refuses even to its owner.
func Session(t testing.TB, url string, sqls ...string) error {
	t.Helper()
	ctx, conn, done := Connect(t, url)
	defer done()
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// Exec runs sql as the test server's superuser, outside row-level security:
// an attacker with write access to the database, for tests that tamper with
// stored rows. It fails t unless the statement changes at least one row, so
// a tampering test cannot pass by tampering with nothing.
func Exec(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	ctx, conn, done := Connect(t, url)
	defer done()
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("pgtest: exec %q: %v", sql, err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("pgtest: exec %q changed no row", sql)
	}
}

// Deadlocks returns how many deadlocks PostgreSQL detected (and broke,
// aborting one transaction) in the database at url, once every other
// session ended (WaitForNoSessions), so that their counters are in
// pg_stat_database.
func Deadlocks(t testing.TB, url string) int64 {
	t.Helper()
	WaitForNoSessions(t, url)
	ctx, conn, done := Connect(t, url)
	defer done()
	var n int64
	if err := conn.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		t.Fatalf("pgtest: read pg_stat_database: %v", err)
	}
	return n
}

// WaitForNoSessions waits until the database at url has no session but
// the caller's: every other one has ended, its transaction committed or
// rolled back and its statistics counters flushed (a server process that
// was killed, a store that was closed). It fails t after 30 s.
func WaitForNoSessions(t testing.TB, url string) {
	t.Helper()
	ctx, conn, done := Connect(t, url)
	defer done()
	for {
		var others int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others); err != nil {
			t.Fatalf("pgtest: count sessions: %v", err)
		}
		if others == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: %d sessions still open after 30 s", others)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
