package postgres

import (
	neturl "net/url"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestABadDatabaseURLSaysWhatIsWrong: Open and Migrate refuse a URL pgx
// cannot parse with EINVALID naming the mistake, never a part of the URL
// (the password "S3cr" in particular). Inputs tried: another scheme, a
// '%' not percent-encoded in the password, a port that is a word, an
// unknown sslmode, a value that is no URL at all.
func TestABadDatabaseURLSaysWhatIsWrong(t *testing.T) {
	for url, says := range map[string]string{
		"mysql://app:S3cr@127.0.0.1/eventvault":                  "it must start with postgres:// or postgresql://",
		"postgres://app:S3cr%t@127.0.0.1/eventvault":             "must be percent-encoded (%25",
		"postgres://app:S3cr@127.0.0.1:notaport/eventvault":      "its port is not a number",
		"postgres://app:S3cr@127.0.0.1/eventvault?sslmode=bogus": "sslmode must be disable, allow",
		"postgres://app:S3cr@127.0.0.1:99999/eventvault":         "its port is not a number from 0 to 65535",
	} {
		for name, err := range map[string]error{
			"Open":    func() error { _, err := Open(t.Context(), url, Options{}); return err }(),
			"Migrate": Migrate(t.Context(), url),
		} {
			msg := eventvault.ErrorMessage(err)
			if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(msg, says) {
				t.Errorf("%s(%q): %v; want EINVALID saying %q", name, url, err, says)
			}
			if strings.Contains(msg, "S3cr") || strings.Contains(err.Error(), "S3cr") {
				t.Errorf("%s(%q): the error shows the password: %v", name, url, err)
			}
		}
	}
}

// TestALoginPostgreSQLRefusesSaysSo: a role that does not exist and a
// database that does not exist, on a real PostgreSQL, are EINVALID saying
// what to check, not an internal error.
func TestALoginPostgreSQLRefusesSaysSo(t *testing.T) {
	base := pgtest.URL(t)
	u, err := neturl.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	noRole := *u
	noRole.User = neturl.UserPassword("no_such_role_x", "pw")
	noDB := *u
	noDB.Path = "/no_such_database_x"
	for url, says := range map[string]string{
		noRole.String(): "PostgreSQL refused the login: check the user name and password",
		noDB.String():   "the database named in the database URL does not exist",
	} {
		_, err := Open(t.Context(), url, Options{})
		if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(eventvault.ErrorMessage(err), says) || strings.Contains(err.Error(), ":pw@") {
			t.Errorf("Open with %s: %v; want EINVALID saying %q", says, err, says)
		}
	}
}
