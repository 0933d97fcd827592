package jwtauth

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults and bounds of a Config.
const (
	DefaultTenantClaim = "tenant"
	DefaultGroupsClaim = "groups"
	// DefaultLeeway absorbs clock skew between the identity provider and
	// this server in exp, nbf and iat; MaxLeeway bounds it, so that an
	// expired token is not honoured for long.
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 5 * time.Minute
	// DefaultRefreshInterval is how often the JWKS is fetched even when
	// every kid is known, so that a key the provider withdraws stops
	// verifying; MinRefreshInterval bounds it from below.
	DefaultRefreshInterval = time.Hour
	MinRefreshInterval     = time.Second
	// An unknown kid refreshes the JWKS at once while the burst lasts,
	// then at most once per DefaultUnknownKIDInterval.
	DefaultUnknownKIDInterval = 30 * time.Second
	DefaultUnknownKIDBurst    = 3
	// DefaultFetchTimeout bounds one JWKS fetch, and how long a request
	// with an unknown kid waits for the rate limiter and the fetch.
	DefaultFetchTimeout = 10 * time.Second
)

// DefaultAlgorithms are the algorithms accepted when Config.Algorithms is
// empty: what OIDC providers sign with (RS256 is mandatory in OpenID
// Connect Core §15.1), ECDSA P-256 and Ed25519.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// SupportedAlgorithms are those Config.Algorithms may name: the
// public-key signature algorithms of RFC 7518 §3.3–3.5 and RFC 8037. "none"
// and the HS* family are never accepted (RFC 8725 §2.1, §3.1): the keys
// come from a JWKS that anyone can read, so a shared-secret algorithm
// would let anyone holding the public key sign.
var SupportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config says which JWTs a Verifier accepts and where their keys are.
// Issuer, at least one audience, and JWKSURL or KeysFile (or both) are
// required; the rest have defaults.
type Config struct {
	// ActorKey keys the hash that names a JWT caller in logs and records
	// (Principal.ActorID) instead of its subject: the deployment's
	// token-verifier key, so that every node names a caller alike. nil:
	// a random key of this Verifier.
	ActorKey ActorKey
	// Issuer is the one "iss" accepted, exactly as the provider writes it
	// (RFC 7519 §4.1.1; OpenID Connect Discovery's "issuer").
	Issuer string
	// Audiences are the "aud" values accepted; a token must name at least
	// one of them (RFC 7519 §4.1.3, RFC 8725 §3.9).
	Audiences []string
	// Algorithms are the "alg" values accepted, a subset of
	// SupportedAlgorithms; empty means DefaultAlgorithms.
	Algorithms []string
	// JWKSURL is the provider's JWK Set (OpenID Connect Discovery's
	// "jwks_uri"): https, or http on a loopback address only.
	JWKSURL string
	// KeysFile is a JWK Set file of public keys, used besides JWKSURL or
	// instead of it. It is read once, by New.
	KeysFile string
	// TenantClaim names the claim holding the caller's tenant; empty means
	// DefaultTenantClaim.
	TenantClaim string
	// GroupsClaim names the claim whose values name the tenant's policy
	// documents (a string or an array of strings); empty means
	// DefaultGroupsClaim.
	GroupsClaim string
	// Leeway is the clock skew allowed in exp, nbf and iat; 0 means
	// DefaultLeeway, at most MaxLeeway.
	Leeway time.Duration
	// RefreshInterval is how often JWKSURL is fetched; 0 means
	// DefaultRefreshInterval, at least MinRefreshInterval.
	RefreshInterval time.Duration
	// UnknownKIDInterval and UnknownKIDBurst limit the fetches a token with
	// an unknown kid causes: UnknownKIDBurst at once, then one per
	// UnknownKIDInterval. 0 means the defaults.
	UnknownKIDInterval time.Duration
	UnknownKIDBurst    int
	// FetchTimeout bounds a JWKS fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// HTTPClient fetches JWKSURL; nil means a client with FetchTimeout
	// that follows no redirects.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// withDefaults returns c with every empty setting at its default, or an
// error naming the first setting that is wrong and what would be right.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		return c, fmt.Errorf("jwt: the issuer is required: give the identity provider's issuer URL, exactly as its tokens carry it in \"iss\" (OpenID Connect Discovery's \"issuer\")")
	}
	if len(c.Audiences) == 0 || slices.Contains(c.Audiences, "") {
		return c, fmt.Errorf("jwt: at least one audience is required, and none may be empty: give the \"aud\" the provider writes into tokens meant for this server (its client id or API identifier)")
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	for _, a := range c.Algorithms {
		if err := checkAlgorithm(a); err != nil {
			return c, err
		}
	}
	if c.JWKSURL == "" && c.KeysFile == "" {
		return c, fmt.Errorf("jwt: no keys: give the provider's JWKS URL (its \"jwks_uri\"), a JWK Set file of its public keys, or both")
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			return c, err
		}
	}
	if c.TenantClaim == "" {
		c.TenantClaim = DefaultTenantClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	if c.TenantClaim == c.GroupsClaim {
		return c, fmt.Errorf("jwt: the tenant claim and the groups claim are both %q: name two different claims", c.TenantClaim)
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return c, fmt.Errorf("jwt: leeway %s is out of range: give a positive duration of at most %s (0 takes the default %s)", c.Leeway, MaxLeeway, DefaultLeeway)
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.RefreshInterval < MinRefreshInterval {
		return c, fmt.Errorf("jwt: JWKS refresh interval %s is too short: give at least %s (0 takes the default %s)", c.RefreshInterval, MinRefreshInterval, DefaultRefreshInterval)
	}
	if c.UnknownKIDInterval == 0 {
		c.UnknownKIDInterval = DefaultUnknownKIDInterval
	}
	if c.UnknownKIDBurst == 0 {
		c.UnknownKIDBurst = DefaultUnknownKIDBurst
	}
	if c.UnknownKIDInterval < 0 || c.UnknownKIDBurst < 0 {
		return c, fmt.Errorf("jwt: the unknown-kid refresh interval and burst must be positive (0 takes the defaults %s and %d)", DefaultUnknownKIDInterval, DefaultUnknownKIDBurst)
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.FetchTimeout < 0 {
		return c, fmt.Errorf("jwt: the JWKS fetch timeout must be positive, not %s", c.FetchTimeout)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// checkAlgorithm refuses an algorithm outside SupportedAlgorithms, saying
// why for "none" and HS* (RFC 8725 §2.1, §3.1).
func checkAlgorithm(a string) error {
	switch {
	case slices.Contains(SupportedAlgorithms, a):
		return nil
	case strings.EqualFold(a, "none"):
		return fmt.Errorf("jwt: algorithm \"none\" is never accepted: it means an unsigned token (RFC 8725 §3.1)")
	case strings.HasPrefix(strings.ToUpper(a), "HS"):
		return fmt.Errorf("jwt: algorithm %q is not accepted: it is a shared-secret algorithm, and the keys here are the provider's public keys, which anyone can read (RFC 8725 §2.1); use %s", a, strings.Join(SupportedAlgorithms, ", "))
	default:
		return fmt.Errorf("jwt: unknown algorithm %q: use some of %s (names are case-sensitive)", a, strings.Join(SupportedAlgorithms, ", "))
	}
}

// checkJWKSURL requires an absolute https URL, or http to a loopback
// address (a provider on the same host, or a test).
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("jwt: JWKS URL %q is not an absolute URL: give the provider's \"jwks_uri\", such as https://idp.example.com/realms/acme/protocol/openid-connect/certs", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("jwt: JWKS URL %q is plain http: the keys that decide who may call must come over https (http is accepted on loopback addresses only)", s)
	default:
		return fmt.Errorf("jwt: JWKS URL %q must be https", s)
	}
}

// Validate checks c as New does, without reading the keys file or
// fetching the JWKS: an error names the setting to fix.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}
