package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/policies"
	"github.com/eventvault/eventvault/vault"
)

// Config is the server's configuration, from flags and EVENTVAULT_*
// variables.
type Config struct {
	Dev    bool
	Listen string
	// MetricsListen is where /metrics is served, apart from the API; ""
	// for nowhere.
	MetricsListen string
	DataDir       string
	DatabaseURL   string
	RootKeyFile   string
	// The pseudonym, signing and token-verifier keys are deployment keys,
	// in the store wrapped by the root key ('eventvault init'), not files.
	DevRootToken string
	TLSCert      string
	TLSKey       string
	KeyCacheTTL  time.Duration
	KeyCacheSize int
	LogFormat    string
	// TokenCacheTTL is how long an authenticated token is remembered, and
	// so how late another server on the same database may notice its
	// revocation; 0 disables the cache.
	TokenCacheTTL time.Duration
	// PolicyCacheTTL bounds how long a policy change made through another
	// server takes to reach this one.
	PolicyCacheTTL time.Duration
	// FeedPoll is how often a tenant's shared feed reader looks for events
	// committed through other nodes (engine.DefaultFeedPoll).
	FeedPoll time.Duration
	// PolicyDir holds policy documents loaded at start, as
	// <dir>/<tenant>/<name>.cedar; "" loads none.
	PolicyDir string
	// ReadAuditWindow is how long reads and refusals are gathered into one
	// audit record.
	ReadAuditWindow time.Duration
	// AuditCheckpointDir receives every signed audit checkpoint as a file,
	// outside the database; "" writes none.
	AuditCheckpointDir string
	// AuditCheckpointInterval is how often checkpoints are published.
	AuditCheckpointInterval time.Duration
	// Vault is the Vault Transit root key; Vault.Address empty means none.
	Vault vault.Config
	// InsecureLocalRootKey lets production mode run on the local root key
	// file instead of Vault.
	InsecureLocalRootKey bool
	// JWTSettings are the -jwt-* flags; JWT is the verifier's
	// configuration once validate has run, and JWTOn says JWTs are
	// accepted (-jwt-issuer is set).
	JWTSettings JWTSettings
	JWT         jwtauth.Config
	JWTOn       bool
	// Limits are admission control's bounds, the pool's size and queue,
	// request deadlines and the root key's concurrency (admissionflags.go).
	Limits AdmissionSettings
	// command is the command the flags are of ("server", "subject
	// export"), for the hints of validate's messages.
	command string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// envBool, envDuration and envInt read a flag's default from the
// environment. A value that does not parse is recorded (envProblem) and
// refused by parseFlags, as the same value given as the flag is: a
// mistyped EVENTVAULT_KEY_CACHE_TTL must not start a server on the
// default. Unset or empty is the default.
func envBool(name string) bool {
	return envValue(name, false, strconv.ParseBool, "true or false (1, 0, t, f)")
}

func envDuration(name string, def time.Duration) time.Duration {
	return envValue(name, def, time.ParseDuration, `a duration such as "30s" or "5m"`)
}

func envInt(name string, def int) int {
	return envValue(name, def, strconv.Atoi, "a whole number")
}

// envValue is the variable name parsed by parse, def when it is unset or
// empty or does not parse (recorded then: envProblem, with want, what it
// takes).
func envValue[T any](name string, def T, parse func(string) (T, error), want string) T {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		envProblem(name, want)
		return def
	}
	return x
}

// envProblems are the variables envBool, envDuration and envInt could not
// parse since parseFlags last took them.
var envProblems struct {
	sync.Mutex
	errs []error
}

func envProblem(name, want string) {
	envProblems.Lock()
	defer envProblems.Unlock()
	envProblems.errs = append(envProblems.errs, fmt.Errorf("environment variable %s=%q is not %s", name, os.Getenv(name), want))
}

// removedFlags are flags of earlier versions that no command has now,
// with what to do instead: an operator upgrading gets that, not Go's
// "flag provided but not defined" and the whole usage.
var removedFlags = map[string]string{
	"signing-key-file":   "the certificate signing key is a deployment key in the store now: import the file once with `eventvault init -import-signing-key-file FILE` (README, Configuration)",
	"pseudonym-key-file": "the pseudonym key is a deployment key in the store now: import the file once with `eventvault init -import-pseudonym-key-file FILE` (README, Configuration)",
}

// parseFlags parses args into fs, whose defaults were read from the
// environment as it was defined, and refuses the environment variables
// that did not parse then, each named, and a removed flag anywhere before
// "--", with what replaced it.
func parseFlags(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue // a flag's value, or an argument
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if how, ok := removedFlags[name]; ok && fs.Lookup(name) == nil {
			return fmt.Errorf("-%s is gone: %s", name, how)
		}
	}
	envProblems.Lock()
	errs := envProblems.errs
	envProblems.errs = nil
	envProblems.Unlock()
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: give a valid value, or unset it", errors.Join(errs...))
	}
	return nil
}

func parseServerFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", env("EVENTVAULT_LISTEN", "127.0.0.1:8080"), "address to listen on (EVENTVAULT_LISTEN)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", env("EVENTVAULT_METRICS_LISTEN", ""), "serve Prometheus metrics at /metrics on this address, apart from the API and without authentication; empty serves none (EVENTVAULT_METRICS_LISTEN)")
	fs.StringVar(&c.DevRootToken, "dev-root-token", env("EVENTVAULT_DEV_ROOT_TOKEN", ""), "dev mode: use this root token instead of a random one (EVENTVAULT_DEV_ROOT_TOKEN)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("EVENTVAULT_TLS_CERT", ""), "TLS certificate file (EVENTVAULT_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("EVENTVAULT_TLS_KEY", ""), "TLS private key file (EVENTVAULT_TLS_KEY)")
	fs.DurationVar(&c.KeyCacheTTL, "key-cache-ttl", envDuration("EVENTVAULT_KEY_CACHE_TTL", 5*time.Minute), "how long unwrapped keys stay cached (EVENTVAULT_KEY_CACHE_TTL)")
	fs.IntVar(&c.KeyCacheSize, "key-cache-size", envInt("EVENTVAULT_KEY_CACHE_SIZE", 10000), "how many unwrapped keys may be cached (EVENTVAULT_KEY_CACHE_SIZE)")
	fs.DurationVar(&c.FeedPoll, "feed-poll", envDuration("EVENTVAULT_FEED_POLL", engine.DefaultFeedPoll), "how often a tenant's shared feed reader (GET /v1/subscribe, GET /v1/events?wait=) polls the store while it has subscribers: an event committed through another server reaches this server's subscribers within this bound; one committed here, at once (EVENTVAULT_FEED_POLL)")
	fs.DurationVar(&c.PolicyCacheTTL, "policy-cache-ttl", envDuration("EVENTVAULT_POLICY_CACHE_TTL", policies.DefaultCacheTTL), "how long a policy document is kept after it is loaded: a change made through another server on the same database takes effect here within this bound (EVENTVAULT_POLICY_CACHE_TTL)")
	fs.StringVar(&c.PolicyDir, "policy-dir", env("EVENTVAULT_POLICY_DIR", ""), "folder of policy documents written at start, as <dir>/<tenant>/<name>.cedar; a file whose text differs from the stored document becomes its next version (EVENTVAULT_POLICY_DIR)")
	fs.DurationVar(&c.ReadAuditWindow, "read-audit-window", envDuration("EVENTVAULT_READ_AUDIT_WINDOW", engine.DefaultReadAuditWindow), "how long reads and refusals are gathered into one audit record per caller and resource; the reads of the last window are lost if the node dies (EVENTVAULT_READ_AUDIT_WINDOW)")
	fs.StringVar(&c.AuditCheckpointDir, "audit-checkpoint-dir", env("EVENTVAULT_AUDIT_CHECKPOINT_DIR", ""), "folder that receives every signed audit checkpoint as a file, outside the database, as <dir>/<tenant>/<size>.checkpoint (EVENTVAULT_AUDIT_CHECKPOINT_DIR)")
	fs.DurationVar(&c.AuditCheckpointInterval, "audit-checkpoint-interval", envDuration("EVENTVAULT_AUDIT_CHECKPOINT_INTERVAL", audit.DefaultCheckpointInterval), "how often signed checkpoints of the audit logs are published (EVENTVAULT_AUDIT_CHECKPOINT_INTERVAL)")
	fs.DurationVar(&c.TokenCacheTTL, "token-cache-ttl", envDuration("EVENTVAULT_TOKEN_CACHE_TTL", auth.DefaultTokenCacheTTL), "how long an authenticated token is remembered, sparing a database lookup per request; a token revoked by another server on the same database still works here for up to this long; 0 disables (EVENTVAULT_TOKEN_CACHE_TTL)")
	jwtFlags(fs, &c.JWTSettings)
	admissionFlags(fs, &c.Limits)
	storeAndRootFlags(fs, &c)
	if err := parseFlags(fs, args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.ReadAuditWindow <= 0 || c.AuditCheckpointInterval <= 0 || c.ReadAuditWindow > time.Hour || c.AuditCheckpointInterval > time.Hour {
		return Config{}, fmt.Errorf("-read-audit-window and -audit-checkpoint-interval must be between 1ns and 1h")
	}
	if c.FeedPoll < 10*time.Millisecond || c.FeedPoll > time.Minute {
		return Config{}, fmt.Errorf("-feed-poll must be between 10ms and 1m, not %s: it bounds how late an event committed through another server reaches this server's subscribers", c.FeedPoll)
	}
	if c.PolicyCacheTTL <= 0 || c.PolicyCacheTTL > time.Hour {
		return Config{}, fmt.Errorf("-policy-cache-ttl must be between 1ns and 1h, not %s: it bounds how late a policy change reaches this server", c.PolicyCacheTTL)
	}
	var err error
	if c.JWT, c.JWTOn, err = c.JWTSettings.jwtConfig(); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.Dev {
		if c.RootKeyFile == "" && c.Vault.Address == "" {
			c.RootKeyFile = filepath.Join(c.DataDir, "root.key")
		}
	} else {
		if c.DatabaseURL == "" {
			return fmt.Errorf("production mode needs -database-url (or EVENTVAULT_DATABASE_URL); %s", c.devHint())
		}
		if c.DevRootToken != "" {
			return fmt.Errorf("-dev-root-token is for dev mode only: a production server never honours a root token; issue the first admin token with 'eventvault token create'")
		}
	}
	if err := c.validateRootKey(); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("-tls-cert and -tls-key go together: give both or neither")
	}
	if c.TLSCert != "" {
		// Loaded here, before anything is opened or the banner says the
		// server listens; net/http loads them again when it serves.
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("-tls-cert %s and -tls-key %s: %w: give a PEM certificate and its private key", c.TLSCert, c.TLSKey, err)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format must be text or json, not %q", c.LogFormat)
	}
	if c.KeyCacheTTL <= 0 || c.KeyCacheSize <= 0 {
		return fmt.Errorf("-key-cache-ttl and -key-cache-size must be positive")
	}
	if c.TokenCacheTTL < 0 {
		return fmt.Errorf("-token-cache-ttl must be 0 (no cache) or positive, not %s", c.TokenCacheTTL)
	}
	return c.Limits.validate()
}

// devHint says how to run c's command without production's settings: the
// server with -dev; a one-shot command (subject, token, audit, rotate,
// tenant) with -dev of its own, on the dev server's data; init not at all.
func (c *Config) devHint() string {
	switch c.command {
	case "", "server":
		return "for a local trial run 'eventvault server -dev'"
	case "init":
		return "a dev server ('eventvault server -dev') creates its deployment keys itself and needs no init"
	}
	return fmt.Sprintf("to act on a dev server's data ('eventvault server -dev'), add -dev to this command: 'eventvault %s -dev ...', "+
		"with the server's -data-dir, and its -database-url when it runs on PostgreSQL (stop a server on the embedded store first)", c.command)
}

// storeAndRootFlags registers the flags that say where the store and the
// root key are, shared by every command that opens them (server, init,
// rotate, token, tenant, subject, audit export and processing), and
// records the command, fs's name, for validate's hints.
func storeAndRootFlags(fs *flag.FlagSet, c *Config) {
	c.command = fs.Name()
	fs.BoolVar(&c.Dev, "dev", envBool("EVENTVAULT_DEV"), "dev mode: embedded store and local root key in -data-dir, a root token printed at start (EVENTVAULT_DEV)")
	fs.StringVar(&c.DataDir, "data-dir", env("EVENTVAULT_DATA_DIR", "data"), "folder of the embedded store (dev) and the local root key (dev) (EVENTVAULT_DATA_DIR)")
	c.DatabaseURL = env("EVENTVAULT_DATABASE_URL", "")
	fs.Var(urlFlag{&c.DatabaseURL}, "database-url", "PostgreSQL `URL`; required in production, optional in dev mode (EVENTVAULT_DATABASE_URL; -h shows it without its password)")
	fs.StringVar(&c.RootKeyFile, "root-key-file", env("EVENTVAULT_ROOT_KEY_FILE", ""), "local root key file, created when missing (EVENTVAULT_ROOT_KEY_FILE; dev default <data-dir>/root.key)")
	fs.StringVar(&c.LogFormat, "log-format", env("EVENTVAULT_LOG_FORMAT", "text"), "log format: text or json (EVENTVAULT_LOG_FORMAT)")
	fs.BoolVar(&c.InsecureLocalRootKey, "insecure-local-root-key", envBool("EVENTVAULT_INSECURE_LOCAL_ROOT_KEY"), "production mode without Vault: use -root-key-file as the root key (EVENTVAULT_INSECURE_LOCAL_ROOT_KEY); a copy of that file and the database reads everything")
	vaultFlags(fs, &c.Vault)
}

// digest is the SHA-256 (hex) of the settings that shape what the server
// does, recorded with its start in the audit log: no secret and no
// password is part of it (the database URL is left out for its password).
func (c Config) digest() string {
	settings := []any{c.Dev, c.Listen, c.TLSCert != "", c.KeyCacheTTL, c.KeyCacheSize, c.TokenCacheTTL, c.PolicyCacheTTL, c.PolicyDir,
		c.ReadAuditWindow, c.AuditCheckpointDir, c.AuditCheckpointInterval, c.Vault.Address, c.Vault.Namespace, c.Vault.Mount, c.Vault.Key,
		c.InsecureLocalRootKey, c.JWTOn, c.JWT.Issuer, c.JWT.Audiences, c.JWT.Algorithms, c.JWT.JWKSURL, c.JWT.TenantClaim, c.JWT.GroupsClaim, c.Limits, c.FeedPoll}
	sum := sha256.Sum256(fmt.Append(nil, settings...))
	return hex.EncodeToString(sum[:])
}
