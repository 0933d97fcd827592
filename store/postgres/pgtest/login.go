package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AppLogin creates the server's production login role on the test server
// and returns the database URL dbURL with its user swapped for it. The role
// is what README's "PostgreSQL roles" prescribes: LOGIN, NOINHERIT, no
// other attribute, a member of eventvault_app and nothing else, so that it
// holds no privilege of its own and reaches the tables only through the
// store's transaction-local SET ROLE eventvault_app. Roles are cluster-wide:
// its name is random, and it is dropped when t ends. Call it after the
// database is migrated (the first migration creates eventvault_app). The
// test server trusts local connections, so the role needs no password.
func AppLogin(t testing.TB, dbURL string) string {
	t.Helper()
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := "evlogin_" + hex.EncodeToString(suffix[:])

	ctx, admin, done := Connect(t, dbURL)
	defer done()
	for _, stmt := range []string{
		"CREATE ROLE " + name + " LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION",
		"GRANT eventvault_app TO " + name,
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("pgtest.AppLogin: %s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, os.Getenv(EnvURL))
		if err != nil {
			t.Logf("pgtest.AppLogin: drop role %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		// Sessions of the role may outlive the test by a moment; DROP ROLE
		// does not wait for them, and the role owns nothing.
		if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+name); err != nil {
			t.Logf("pgtest.AppLogin: drop role %s: %v", name, err)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest.AppLogin: parse the database URL: %v", err)
	}
	u.User = url.User(name)
	return u.String()
}
