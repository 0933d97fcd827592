package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// recorder is a testing.TB whose Fatal stops only the goroutine it runs on
// and records the message, so that a test can check how a helper fails.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (r *recorder) Fatal(args ...any) { r.fail(fmt.Sprint(args...)) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
}

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	r.failed = msg
	r.mu.Unlock()
	runtime.Goexit()
}

// fatalOf runs fn with a recorder and returns the message it failed with,
// or "" if it did not fail.
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.failed
}

func TestURLFailsWithoutTheVariable(t *testing.T) {
	t.Setenv(EnvURL, "")
	msg := fatalOf(t, func(tb testing.TB) { URL(tb) })
	if !strings.Contains(msg, EnvURL+" is not set") || !strings.Contains(msg, "make test") {
		t.Errorf("URL without %s failed with %q, want a message naming the variable and `make test`", EnvURL, msg)
	}
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), os.Getenv(EnvURL))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatalf("read pg_database: %v", err)
	}
	return exists
}

func TestURLGivesAFreshDatabaseDroppedAtCleanup(t *testing.T) {
	var names []string
	t.Run("use", func(t *testing.T) {
		for range 2 {
			u := URL(t)
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatalf("connect to %s: %v", u, err)
			}
			var name string
			var tables int
			err = conn.QueryRow(t.Context(), `SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables)
			_ = conn.Close(context.Background())
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			parsed, _ := url.Parse(u)
			if !strings.HasPrefix(name, "evtest_") || parsed.Path != "/"+name {
				t.Errorf("URL %s connects to database %q, want a fresh evtest_ database named in the URL", u, name)
			}
			if tables != 0 {
				t.Errorf("fresh database %s has %d tables", name, tables)
			}
			names = append(names, name)
		}
		if names[0] == names[1] {
			t.Errorf("two calls gave the same database %s", names[0])
		}
	})
	for _, name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestScanFindsNeedlesInClearAndAsHex(t *testing.T) {
	u := URL(t)
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), `CREATE SCHEMA other;
		CREATE TABLE public.notes (body text, blob bytea);
		CREATE TABLE other.more (body text);
		INSERT INTO public.notes VALUES ('nothing here', '\x00'), ('Alice Liddell', 'secret-in-bytes');
		INSERT INTO other.more VALUES ('x'), ('y'), ('Alice again');`)
	if err != nil {
		t.Fatalf("set up tables: %v", err)
	}

	cases := []struct {
		name   string
		needle string
		want   []string
	}{
		{"text column", "Alice", []string{"table other.more row 3: needle 0 in clear", "table public.notes row 2: needle 0 in clear"}},
		{"bytea column", "secret-in-bytes", []string{"table public.notes row 2: needle 0 as hex"}},
		{"absent", "Bob", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Scan(t, u, []byte(tc.needle))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Scan for %q = %q, want %q", tc.needle, got, tc.want)
			}
		})
	}
}

func TestScanFailsOnADatabaseWithoutTables(t *testing.T) {
	u := URL(t)
	msg := fatalOf(t, func(tb testing.TB) { Scan(tb, u, []byte("anything")) })
	if !strings.Contains(msg, "no table") {
		t.Errorf("Scan of an empty database failed with %q, want a failure saying it found no table", msg)
	}
}

func TestScanRefusesAnEmptyNeedle(t *testing.T) {
	u := URL(t)
	msg := fatalOf(t, func(tb testing.TB) { Scan(tb, u, []byte("x"), nil) })
	if !strings.Contains(msg, "empty") {
		t.Errorf("Scan with an empty needle failed with %q, want a failure", msg)
	}
}
