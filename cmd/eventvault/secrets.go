package main

import (
	"net/url"
	"os"
	"regexp"
	"strings"
)

// urlFlag is a flag.Value for a URL that may carry a password (the
// PostgreSQL URL): the flag package prints a flag's default, taken from an
// EVENTVAULT_* variable, in -h, so String shows the URL with its password
// redacted. Set stores the URL as given.
type urlFlag struct{ p *string }

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return redactURL(*f.p)
}

func (f urlFlag) Set(s string) error { *f.p = s; return nil }

// dsnPassword matches the password of a key=value connection string
// ("host=db password=s3cret user=app").
var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactURL returns s with its password replaced by "xxxxx": a URL's
// user:password@ (net/url's Redacted), a password= in a key=value
// connection string or in a URL's query.
func redactURL(s string) string {
	if s == "" {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// secretsIn lists the secrets a command may have been given, through its
// arguments or the environment: the password of a database URL, the Vault
// token and AppRole secret id. scrub removes them from a message, a last
// guard for errors built by libraries that quote what they were given.
func secretsIn(args []string) []string {
	var out []string
	addURL := func(s string) {
		if s == "" {
			return
		}
		if u, err := url.Parse(s); err == nil {
			if p, ok := u.User.Password(); ok && p != "" {
				out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
			}
			if p := u.Query().Get("password"); p != "" {
				out = append(out, p)
			}
		}
		for _, m := range dsnPassword.FindAllStringSubmatch(s, -1) {
			out = append(out, strings.Trim(m[2], "'"))
		}
	}
	addURL(os.Getenv("EVENTVAULT_DATABASE_URL"))
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "database-url" || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		addURL(value)
	}
	for _, name := range []string{"EVENTVAULT_VAULT_TOKEN", "EVENTVAULT_VAULT_APPROLE_SECRET_ID"} {
		if v := os.Getenv(name); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// scrub replaces every secret (of four bytes or more, so that a trivial
// one does not maul the message) in msg by "xxxxx".
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
