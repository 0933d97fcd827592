package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
)

// TestJWTFlagsRefusePartialConfig: JWT settings without -jwt-issuer, or an
// issuer without an audience or keys, stop the start with a message naming
// the flag to set.
func TestJWTFlagsRefusePartialConfig(t *testing.T) {
	issuer := []string{"-dev", "-jwt-issuer", "https://idp.example.com/realms/acme"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-dev", "-jwt-audience", "api"}, "-jwt-audience set but no -jwt-issuer"},
		{[]string{"-dev", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-groups-claim", "roles"}, "-jwt-jwks-url, -jwt-groups-claim set but no -jwt-issuer"},
		{issuer, "needs -jwt-audience"},
		{append(issuer, "-jwt-audience", "api"), "needs -jwt-jwks-url"},
		{append(issuer, "-jwt-audience", "api", "-jwt-jwks-url", "http://idp.example.com/certs"), "loopback addresses only"},
		{append(issuer, "-jwt-audience", "api", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-algorithms", "RS256,HS256"), "shared-secret"},
		{append(issuer, "-jwt-audience", "api", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-algorithms", "none"), "never accepted"},
		{append(issuer, "-jwt-audience", "api", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-leeway", "1h"), "at most 5m0s"},
		{append(issuer, "-jwt-audience", "api", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-leeway", "0s"), "-jwt-leeway 0"},
	} {
		_, err := parseServerFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flags %q: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
	cfg, err := parseServerFlags(append(issuer, "-jwt-audience", " api, other ,api", "-jwt-jwks-url", "https://idp.example.com/certs", "-jwt-algorithms", "RS256, PS256"), io.Discard)
	if err != nil {
		t.Fatalf("complete JWT flags: %v", err)
	}
	if !cfg.JWTOn || strings.Join(cfg.JWT.Audiences, "|") != "api|other" || strings.Join(cfg.JWT.Algorithms, "|") != "RS256|PS256" || cfg.JWT.TenantClaim != "tenant" || cfg.JWT.GroupsClaim != "groups" {
		t.Fatalf("JWT config %+v", cfg.JWT)
	}
	if cfg, err := parseServerFlags([]string{"-dev"}, io.Discard); err != nil || cfg.JWTOn {
		t.Fatalf("no JWT flags: on %v, %v; want off", cfg.JWTOn, err)
	}
}

// TestServerAcceptsJWTsWhenConfigured: a server started with the -jwt-*
// flags authenticates a JWT from the IdP's JWKS (then policies decide:
// with no policy document, 403), refuses one for another audience with
// 401, and logs the caller as iss#sub.
func TestServerAcceptsJWTsWhenConfigured(t *testing.T) {
	idp := jwttest.New(t)
	s := startServer(t, "-dev", "-jwt-issuer", jwttest.Issuer, "-jwt-audience", jwttest.Audience, "-jwt-jwks-url", idp.URL(), "-jwt-tenant-claim", "org")
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"OrderPlaced","data":{}}]}`, uuid.NewString())
	good := idp.Sign(t, jwttest.KidEd25519, jwttest.Claims("user-7", "org", "acme", "groups", "app"))
	code, _, b := do(t, http.MethodPost, s.base+"/v1/streams/order-1/events", good, body)
	expectStatus(t, "valid JWT without a policy that grants", http.StatusForbidden, code, b)
	claims := jwttest.Claims("user-7", "org", "acme", "groups", "app")
	claims["aud"] = "another-api"
	code, _, b = do(t, http.MethodPost, s.base+"/v1/streams/order-1/events", idp.Sign(t, jwttest.KidEd25519, claims), body)
	expectStatus(t, "JWT for another audience", http.StatusUnauthorized, code, b)
	if !strings.Contains(b, "audience") {
		t.Errorf("401 body %s does not name the audience", b)
	}
	s.stop()
	if log := s.log.String(); !regexp.MustCompile(`actor=jwt_[0-9a-f]{16}`).MatchString(log) || strings.Contains(log, "user-7") || strings.Contains(log, good) {
		t.Errorf("log does not name the JWT caller by its actor id, or holds its subject or the token:\n%s", log)
	}
}
