package postgres

import (
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
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
