package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// withUser returns url with its user swapped for name and the password
// "S3cr" (the test server trusts local connections, so the password is
// not checked: it is there to be kept out of messages).
func withUser(t *testing.T, url, name string) string {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword(name, "S3cr")
	return u.String()
}

// TestARefusedPrivilegeSaysWhichRoleToUse: a privilege PostgreSQL refuses
// is told apart by what was asked. `eventvault migrate` (Migrate) as the
// server's login role is told to migrate as the schema's owner, naming
// the role it connected as, not to "apply the migrations" it is applying
// nor to be a member of eventvault_app, which it already is; the server
// (Open) as a role that is not a member of eventvault_app is told to
// connect as one. Neither message shows the password.
func TestARefusedPrivilegeSaysWhichRoleToUse(t *testing.T) {
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	login := pgtest.AppLogin(t, url)
	loginName := strings.TrimPrefix(login, "postgres://")
	loginName = loginName[:strings.IndexAny(loginName, ":@")]

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	stranger := "evstranger_" + hex.EncodeToString(suffix[:])
	if err := pgtest.Session(t, url, "CREATE ROLE "+stranger+" LOGIN NOINHERIT"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pgtest.Session(t, url, "DROP ROLE IF EXISTS "+stranger); err != nil {
			t.Logf("drop role %s: %v", stranger, err)
		}
	})

	cases := []struct {
		name    string
		do      func() error
		want    []string
		notWant []string
	}{
		{
			name: "migrate as the server's login role",
			do:   func() error { return postgres.Migrate(t.Context(), withUser(t, login, loginName)) },
			want: []string{
				`the database refused role "` + loginName + `" a privilege the migrations need`,
				"run `eventvault migrate` as the schema's owner",
				"CREATE on the schema",
			},
			notWant: []string{"apply the migrations", "connect as a role that is a member of"},
		},
		{
			name: "the server as a role outside eventvault_app",
			do: func() error {
				db, err := postgres.Open(t.Context(), withUser(t, url, stranger), postgres.Options{})
				if err == nil {
					_ = db.Close()
				}
				return err
			},
			want:    []string{"connect as a role that is a member of eventvault_app"},
			notWant: []string{"as the schema's owner"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil {
				t.Fatal("succeeded; want a refused privilege")
			}
			msg := eventvault.ErrorMessage(err)
			if eventvault.ErrorCode(err) != eventvault.EINTERNAL {
				t.Errorf("code %s (%v); want EINTERNAL", eventvault.ErrorCode(err), err)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("message %q says %q", msg, w)
				}
			}
			if strings.Contains(err.Error(), "S3cr") || strings.Contains(err.Error(), "postgres://") {
				t.Errorf("the error shows the URL or its password: %v", err)
			}
		})
	}
}
