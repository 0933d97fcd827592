package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventvault/eventvault/auth/jwtauth"
)

// JWTSettings are the -jwt-* flags: JWT authentication is on when Issuer
// is set. Audience and Algorithms are comma-separated lists.
type JWTSettings struct {
	Issuer      string
	Audience    string
	Algorithms  string
	JWKSURL     string
	KeysFile    string
	TenantClaim string
	GroupsClaim string
	Leeway      time.Duration
	Refresh     time.Duration
}

var defaultJWTAlgorithms = strings.Join(jwtauth.DefaultAlgorithms, ",")

// jwtFlags defines the flags of JWT (OIDC) authentication; docs/jwt.md
// describes them.
func jwtFlags(fs *flag.FlagSet, j *JWTSettings) {
	fs.StringVar(&j.Issuer, "jwt-issuer", env("EVENTVAULT_JWT_ISSUER", ""), "accept bearer JWTs from this issuer, exactly as its tokens carry it in \"iss\"; setting it turns JWT authentication on (EVENTVAULT_JWT_ISSUER)")
	fs.StringVar(&j.Audience, "jwt-audience", env("EVENTVAULT_JWT_AUDIENCE", ""), "comma-separated \"aud\" values accepted; a token must name one (EVENTVAULT_JWT_AUDIENCE)")
	fs.StringVar(&j.Algorithms, "jwt-algorithms", env("EVENTVAULT_JWT_ALGORITHMS", defaultJWTAlgorithms), "comma-separated algorithms accepted, of "+strings.Join(jwtauth.SupportedAlgorithms, ", ")+"; none and HS* never (EVENTVAULT_JWT_ALGORITHMS)")
	fs.StringVar(&j.JWKSURL, "jwt-jwks-url", env("EVENTVAULT_JWT_JWKS_URL", ""), "the identity provider's JWK Set URL (its jwks_uri); https, or http on loopback only (EVENTVAULT_JWT_JWKS_URL)")
	fs.StringVar(&j.KeysFile, "jwt-keys-file", env("EVENTVAULT_JWT_KEYS_FILE", ""), "JWK Set file of the provider's public keys, besides or instead of -jwt-jwks-url (EVENTVAULT_JWT_KEYS_FILE)")
	fs.StringVar(&j.TenantClaim, "jwt-tenant-claim", env("EVENTVAULT_JWT_TENANT_CLAIM", jwtauth.DefaultTenantClaim), "claim holding the caller's tenant (EVENTVAULT_JWT_TENANT_CLAIM)")
	fs.StringVar(&j.GroupsClaim, "jwt-groups-claim", env("EVENTVAULT_JWT_GROUPS_CLAIM", jwtauth.DefaultGroupsClaim), "claim whose values name the tenant's policy documents (EVENTVAULT_JWT_GROUPS_CLAIM)")
	fs.DurationVar(&j.Leeway, "jwt-leeway", envDuration("EVENTVAULT_JWT_LEEWAY", jwtauth.DefaultLeeway), "clock skew allowed in exp, nbf and iat, at most "+jwtauth.MaxLeeway.String()+" (EVENTVAULT_JWT_LEEWAY)")
	fs.DurationVar(&j.Refresh, "jwt-jwks-refresh", envDuration("EVENTVAULT_JWT_JWKS_REFRESH", jwtauth.DefaultRefreshInterval), "how often the JWK Set is fetched besides on an unknown kid (EVENTVAULT_JWT_JWKS_REFRESH)")
}

// jwtConfig returns the verifier's configuration, and false when JWTs are
// off. Settings without -jwt-issuer are refused, not ignored: a
// half-configured JWT login is a mistake to hear about at start.
func (j JWTSettings) jwtConfig() (jwtauth.Config, bool, error) {
	if j.Issuer == "" {
		var set []string
		for _, s := range []struct {
			name string
			set  bool
		}{
			{"-jwt-audience", j.Audience != ""},
			{"-jwt-algorithms", j.Algorithms != defaultJWTAlgorithms},
			{"-jwt-jwks-url", j.JWKSURL != ""},
			{"-jwt-keys-file", j.KeysFile != ""},
			{"-jwt-tenant-claim", j.TenantClaim != jwtauth.DefaultTenantClaim},
			{"-jwt-groups-claim", j.GroupsClaim != jwtauth.DefaultGroupsClaim},
			{"-jwt-leeway", j.Leeway != jwtauth.DefaultLeeway},
			{"-jwt-jwks-refresh", j.Refresh != jwtauth.DefaultRefreshInterval},
		} {
			if s.set {
				set = append(set, s.name)
			}
		}
		if len(set) > 0 {
			return jwtauth.Config{}, false, fmt.Errorf("%s set but no -jwt-issuer: set -jwt-issuer (EVENTVAULT_JWT_ISSUER) to accept JWTs, or drop the JWT settings", strings.Join(set, ", "))
		}
		return jwtauth.Config{}, false, nil
	}
	cfg := jwtauth.Config{
		Issuer:          j.Issuer,
		Audiences:       splitList(j.Audience),
		Algorithms:      splitList(j.Algorithms),
		JWKSURL:         j.JWKSURL,
		KeysFile:        j.KeysFile,
		TenantClaim:     j.TenantClaim,
		GroupsClaim:     j.GroupsClaim,
		Leeway:          j.Leeway,
		RefreshInterval: j.Refresh,
	}
	if len(cfg.Audiences) == 0 {
		return cfg, false, fmt.Errorf("-jwt-issuer needs -jwt-audience (EVENTVAULT_JWT_AUDIENCE): the \"aud\" the provider writes into tokens for this server")
	}
	if cfg.JWKSURL == "" && cfg.KeysFile == "" {
		return cfg, false, fmt.Errorf("-jwt-issuer needs -jwt-jwks-url (EVENTVAULT_JWT_JWKS_URL), -jwt-keys-file (EVENTVAULT_JWT_KEYS_FILE), or both: where the provider's public keys are")
	}
	if j.Leeway == 0 {
		return cfg, false, fmt.Errorf("-jwt-leeway 0 is not allowed: give a positive duration of at most %s", jwtauth.MaxLeeway)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, true, nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}
