package vault

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultMount        = "transit"
	DefaultKey          = "eventvault-root"
	DefaultAppRoleMount = "approle"
	DefaultTimeout      = 10 * time.Second
	DefaultMinRetryWait = 500 * time.Millisecond
	DefaultMaxRetryWait = 1500 * time.Millisecond
)

// Config says where the Transit key is and how to log in to Vault. Only
// what is set here is used: the VAULT_* variables the Vault CLI reads are
// ignored, so that, for one, VAULT_SKIP_VERIFY cannot switch TLS checks off
// behind the operator's back.
type Config struct {
	// Address is Vault's URL, http:// or https://.
	Address string
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string
	// Mount is the path of the Transit secrets engine (default "transit").
	Mount string
	// Key is the name of the Transit key (default "eventvault-root").
	Key string
	// CreateKey lets Check create the key when it is missing: an
	// aes256-gcm96 key with derived=true. Off by default, so that a typo in
	// the key name fails at start instead of silently starting a new root.
	CreateKey bool

	// Token authenticates with a Vault token; TokenFile reads it from a
	// file, at start and again whenever Vault refuses the token (HTTP 403),
	// so that a token replaced in the file (revoked and re-issued, as
	// `make vault-dev` does at each start) is used without a restart.
	Token, TokenFile string
	// RoleID and SecretID authenticate with AppRole (RoleIDFile and
	// SecretIDFile read them from files; the secret id file is read again at
	// each login, so it may be replaced). AppRoleMount is the auth mount
	// (default "approle").
	RoleID, RoleIDFile, SecretID, SecretIDFile, AppRoleMount string

	// CACert is a PEM file of the CAs to trust for Vault's certificate;
	// empty for the system's. ClientCert and ClientKey are a PEM client
	// certificate for mutual TLS. TLSServerName overrides the name checked
	// in Vault's certificate.
	CACert, ClientCert, ClientKey, TLSServerName string

	// Timeout bounds one operation, retries included (default 10s).
	Timeout time.Duration
	// MaxRetries is how many times a request is retried after a connection
	// error, a 5xx or a 429, waiting between MinRetryWait and MaxRetryWait
	// (linear back-off with jitter; defaults 500ms and 1.5s). 0: no retry.
	MaxRetries                 int
	MinRetryWait, MaxRetryWait time.Duration
}

// String describes the configuration without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("vault.Config{Address: %s, Namespace: %q, Mount: %s, Key: %s, Auth: %s}", c.Address, c.Namespace, c.mount(), c.key(), c.authMethod())
}

// GoString is String.
func (c Config) GoString() string { return c.String() }

func (c Config) mount() string {
	if m := strings.Trim(c.Mount, "/"); m != "" {
		return m
	}
	return DefaultMount
}

func (c Config) key() string {
	if c.Key != "" {
		return c.Key
	}
	return DefaultKey
}

func (c Config) appRoleMount() string {
	if m := strings.Trim(c.AppRoleMount, "/"); m != "" {
		return m
	}
	return DefaultAppRoleMount
}

func (c Config) authMethod() string {
	if c.usesAppRole() {
		return "approle"
	}
	return "token"
}

func (c Config) usesAppRole() bool {
	return c.RoleID != "" || c.RoleIDFile != "" || c.SecretID != "" || c.SecretIDFile != ""
}

// Validate reports the first setting that cannot work, naming the
// EVENTVAULT_VAULT_* setting to fix. It reads no file and calls no server.
func (c Config) Validate() error {
	u, err := url.Parse(c.Address)
	if c.Address == "" {
		return fmt.Errorf("no Vault address: set -vault-addr (EVENTVAULT_VAULT_ADDR), e.g. https://vault.example:8200")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the Vault address %q is not an http:// or https:// URL", c.Address)
	}
	if strings.ContainsAny(c.mount(), " ?#") || strings.Contains(c.mount(), "..") {
		return fmt.Errorf("the Vault transit mount %q is not a mount path", c.Mount)
	}
	if !validKeyName(c.key()) {
		return fmt.Errorf("the Vault transit key name %q: use letters, digits, '_', '-' and '.'", c.key())
	}
	both := func(a, b string) bool { return a != "" && b != "" }
	switch {
	case both(c.Token, c.TokenFile):
		return fmt.Errorf("give the Vault token once: -vault-token or -vault-token-file, not both")
	case both(c.RoleID, c.RoleIDFile):
		return fmt.Errorf("give the AppRole role id once: -vault-approle-role-id or -vault-approle-role-id-file, not both")
	case both(c.SecretID, c.SecretIDFile):
		return fmt.Errorf("give the AppRole secret id once: -vault-approle-secret-id or -vault-approle-secret-id-file, not both")
	}
	hasToken := c.Token != "" || c.TokenFile != ""
	switch {
	case hasToken && c.usesAppRole():
		return fmt.Errorf("give either a Vault token or an AppRole role id and secret id, not both")
	case c.usesAppRole() && (c.RoleID == "" && c.RoleIDFile == "" || c.SecretID == "" && c.SecretIDFile == ""):
		return fmt.Errorf("the Vault AppRole login needs both a role id (EVENTVAULT_VAULT_APPROLE_ROLE_ID) and a secret id (EVENTVAULT_VAULT_APPROLE_SECRET_ID)")
	case !hasToken && !c.usesAppRole():
		return fmt.Errorf("no Vault credentials: set EVENTVAULT_VAULT_TOKEN (or -vault-token-file), or an AppRole role id and secret id (EVENTVAULT_VAULT_APPROLE_ROLE_ID, EVENTVAULT_VAULT_APPROLE_SECRET_ID)")
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return fmt.Errorf("-vault-client-cert and -vault-client-key go together: give both or neither")
	}
	if c.Timeout < 0 || c.MaxRetries < 0 || c.MinRetryWait < 0 || c.MaxRetryWait < 0 {
		return fmt.Errorf("the Vault timeout, retries and retry waits cannot be negative")
	}
	return nil
}

func validKeyName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return s != "." && s != ".."
}

// httpTransport is the transport to Vault: the standard library's with
// Config's TLS settings and timeouts like those of the Vault client's
// default, HTTP/2 included.
func (c Config) httpTransport() (*http.Transport, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("read Vault CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the Vault CA certificate %s holds no PEM certificate", c.CACert)
		}
		tc.RootCAs = pool
	}
	if c.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("load Vault client certificate %s: %w", c.ClientCert, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tc,
	}, nil
}

// readSecretFile returns the trimmed content of a file holding a token or
// an id; what it holds never enters an error.
func readSecretFile(what, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s file: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("the %s file %s is empty", what, path)
	}
	return s, nil
}
