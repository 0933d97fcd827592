package jwtauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
)

func newVerifier(t *testing.T, cfg jwtauth.Config) *jwtauth.Verifier {
	t.Helper()
	v, err := jwtauth.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

func idpConfig(idp *jwttest.IdP) jwtauth.Config {
	return jwtauth.Config{Issuer: jwttest.Issuer, Audiences: []string{jwttest.Audience}, JWKSURL: idp.URL()}
}

// wantRefused checks err is code with a message naming every one of says
// and none of the token's claim values in secrets.
func wantRefused(t *testing.T, err error, code eventvault.Code, says string, secrets ...string) {
	t.Helper()
	if eventvault.ErrorCode(err) != code {
		t.Fatalf("error %v: code %s, want %s", err, eventvault.ErrorCode(err), code)
	}
	msg := eventvault.ErrorMessage(err)
	if !strings.Contains(msg, says) {
		t.Fatalf("message %q does not say %q", msg, says)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Fatalf("message %q echoes the claim value %q", msg, s)
		}
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", true},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", true}, // unsigned: refused later, by name
		{"evt_0123456789abcdef", false},
		{"", false},
		{"a.b", false},
		{"a.b.c.d.e", false}, // a JWE: not a JWS
		{".b.c", false},
		{"a..c", false},
		{"a.b=.c", false}, // padding is not base64url of JWS
		{"a.b.c d", false},
		{"a+b.c.d", false},
	} {
		if got := jwtauth.LooksLikeJWT(c.in); got != c.want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestNewRefusesConfigWithActionableErrors(t *testing.T) {
	good := jwtauth.Config{Issuer: "https://idp.example.com", Audiences: []string{"api"}, JWKSURL: "https://idp.example.com/jwks"}
	for _, c := range []struct {
		name   string
		change func(*jwtauth.Config)
		want   string
	}{
		{"no issuer", func(c *jwtauth.Config) { c.Issuer = "" }, "issuer is required"},
		{"no audience", func(c *jwtauth.Config) { c.Audiences = nil }, "at least one audience"},
		{"empty audience", func(c *jwtauth.Config) { c.Audiences = []string{"api", ""} }, "none may be empty"},
		{"alg none", func(c *jwtauth.Config) { c.Algorithms = []string{"RS256", "none"} }, "never accepted"},
		{"HS256", func(c *jwtauth.Config) { c.Algorithms = []string{"HS256"} }, "shared-secret"},
		{"unknown alg", func(c *jwtauth.Config) { c.Algorithms = []string{"rs256"} }, "case-sensitive"},
		{"no keys", func(c *jwtauth.Config) { c.JWKSURL = "" }, "no keys"},
		{"plain http", func(c *jwtauth.Config) { c.JWKSURL = "http://idp.example.com/jwks" }, "loopback addresses only"},
		{"relative URL", func(c *jwtauth.Config) { c.JWKSURL = "/jwks" }, "not an absolute URL"},
		{"same claim", func(c *jwtauth.Config) { c.GroupsClaim = "tenant" }, "two different claims"},
		{"leeway too long", func(c *jwtauth.Config) { c.Leeway = time.Hour }, "at most 5m0s"},
		{"negative leeway", func(c *jwtauth.Config) { c.Leeway = -time.Second }, "out of range"},
		{"refresh too often", func(c *jwtauth.Config) { c.RefreshInterval = time.Millisecond }, "too short"},
		{"missing keys file", func(c *jwtauth.Config) { c.KeysFile = filepath.Join(t.TempDir(), "none.json") }, "read keys file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.change(&cfg)
			_, err := jwtauth.New(context.Background(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestClaimsMapToPrincipal: the tenant and groups come from the claims the
// configuration names; groups may be one string or an array.
func TestClaimsMapToPrincipal(t *testing.T) {
	idp := jwttest.New(t)
	cfg := idpConfig(idp)
	cfg.TenantClaim, cfg.GroupsClaim = "https://eventvault.example/tenant", "roles"
	v := newVerifier(t, cfg)
	ctx := context.Background()

	claims := jwttest.Claims("user-1", cfg.TenantClaim, "acme", "roles", "app", "analyst", "app")
	p, err := v.Authenticate(ctx, idp.Sign(t, jwttest.KidRSA, claims))
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := eventvault.Principal{Tenant: "acme", Subject: jwttest.Issuer + "#user-1", Policies: []string{"app", "analyst"}}
	if p.Tenant != want.Tenant || p.Subject != want.Subject || !slices.Equal(p.Policies, want.Policies) || p.Root || p.TokenID != "" {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	// The actor id names the caller without its subject, alike for the
	// same subject, apart for another.
	if !regexp.MustCompile(`^jwt_[0-9a-f]{16}$`).MatchString(p.Actor()) || strings.Contains(p.Actor(), "user-1") {
		t.Fatalf("actor %q, want jwt_ and 16 hex digits", p.Actor())
	}
	again, _ := v.Authenticate(ctx, idp.Sign(t, jwttest.KidRSA, claims))
	other, _ := v.Authenticate(ctx, idp.Sign(t, jwttest.KidRSA, jwttest.Claims("user-2", cfg.TenantClaim, "acme", "roles", "app")))
	if again.Actor() != p.Actor() || other.Actor() == p.Actor() {
		t.Fatalf("actor ids %q, %q (same subject), %q (another); want the same for one subject only", p.Actor(), again.Actor(), other.Actor())
	}

	claims["roles"] = "dpo"
	if p, err = v.Authenticate(ctx, idp.Sign(t, jwttest.KidEC, claims)); err != nil || !slices.Equal(p.Policies, []string{"dpo"}) {
		t.Fatalf("one string: %+v, %v", p, err)
	}
	delete(claims, "roles")
	if p, err = v.Authenticate(ctx, idp.Sign(t, jwttest.KidEd25519, claims)); err != nil || len(p.Policies) != 0 {
		t.Fatalf("no groups claim: %+v, %v; want no policies", p, err)
	}

	for _, c := range []struct {
		name   string
		change func(jwt.MapClaims)
		says   string
		secret string
	}{
		{"no tenant", func(c jwt.MapClaims) { delete(c, cfg.TenantClaim) }, `no "https://eventvault.example/tenant" claim`, ""},
		{"bad tenant", func(c jwt.MapClaims) { c[cfg.TenantClaim] = "Alice Smith" }, "not a valid tenant", "Alice"},
		{"tenant not a string", func(c jwt.MapClaims) { c[cfg.TenantClaim] = []string{"acme"} }, "must be a string", ""},
		{"groups of numbers", func(c jwt.MapClaims) { c["roles"] = []int{1} }, "array of strings", ""},
		{"no sub", func(c jwt.MapClaims) { delete(c, "sub") }, "no subject", ""},
		{"sub too long", func(c jwt.MapClaims) { c["sub"] = strings.Repeat("s", 256) }, "the limit is 255", "sss"},
	} {
		t.Run(c.name, func(t *testing.T) {
			claims := jwttest.Claims("user-1", cfg.TenantClaim, "acme", "roles", "app")
			c.change(claims)
			_, err := v.Authenticate(ctx, idp.Sign(t, jwttest.KidRSA, claims))
			var secrets []string
			if c.secret != "" {
				secrets = append(secrets, c.secret)
			}
			wantRefused(t, err, eventvault.EUNAUTHORIZED, c.says, secrets...)
		})
	}
}

// TestKeysFileServesWithoutJWKS: a JWK Set file alone verifies tokens; a
// file holding private or symmetric keys is refused.
func TestKeysFileServesWithoutJWKS(t *testing.T) {
	idp := jwttest.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	resp := fetchJWKS(t, idp)
	if err := os.WriteFile(path, resp, 0o600); err != nil {
		t.Fatal(err)
	}
	idp.Stop() // the file is all there is
	v := newVerifier(t, jwtauth.Config{Issuer: jwttest.Issuer, Audiences: []string{jwttest.Audience}, KeysFile: path})
	ctx := context.Background()
	if _, err := v.Authenticate(ctx, idp.Sign(t, jwttest.KidEd25519, jwttest.Claims("u", "tenant", "acme", "groups"))); err != nil {
		t.Fatalf("Authenticate with a file key: %v", err)
	}
	idp.AddKey(t, "rsa-2", jwt.SigningMethodRS256)
	_, err := v.Authenticate(ctx, idp.Sign(t, "rsa-2", jwttest.Claims("u", "tenant", "acme", "groups")))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "does not know")

	// A key marked for encryption verifies no signature (RFC 7517 §4.2).
	enc := jwttest.NewKey(t, jwt.SigningMethodES256)
	jwk, err := jwkset.NewJWKFromKey(enc.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "enc-1", USE: jwkset.UseEnc}})
	if err != nil {
		t.Fatal(err)
	}
	encFile := filepath.Join(dir, "enc.json")
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil || os.WriteFile(encFile, b, 0o600) != nil {
		t.Fatalf("write enc key file: %v", err)
	}
	ve := newVerifier(t, jwtauth.Config{Issuer: jwttest.Issuer, Audiences: []string{jwttest.Audience}, KeysFile: encFile})
	_, err = ve.Authenticate(ctx, jwttest.SignWith(t, jwt.SigningMethodES256, enc, "enc-1", jwttest.Claims("u", "tenant", "acme", "groups")))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "for another algorithm or use")

	for _, c := range []struct{ body, want string }{
		{`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`, "symmetric"},
		{`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","kid":"p"}]}`, "private key material"},
		{`{"keys":[]}`, "holds no keys"},
		{`[1,2]`, "not a JWK Set"},
	} {
		bad := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(bad, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := jwtauth.New(ctx, jwtauth.Config{Issuer: jwttest.Issuer, Audiences: []string{jwttest.Audience}, KeysFile: bad}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("keys file %s: %v, want an error saying %q", c.body, err, c.want)
		}
	}
}

// TestKeyMustSuitTheAlgorithm: a token whose alg differs from its key's
// (an ES256 token naming the RSA key's kid) is refused, naming the cause;
// a token without kid is tried against the keys for its algorithm.
func TestKeyMustSuitTheAlgorithm(t *testing.T) {
	idp := jwttest.New(t)
	cfg := idpConfig(idp)
	cfg.Algorithms = []string{"RS256", "ES256", "EdDSA", "PS256"}
	v := newVerifier(t, cfg)
	ctx := context.Background()
	claims := jwttest.Claims("u", "tenant", "acme", "groups")
	key := jwttest.NewKey(t, jwt.SigningMethodES256)
	_, err := v.Authenticate(ctx, jwttest.SignWith(t, jwt.SigningMethodES256, key, jwttest.KidRSA, claims))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "not a key for its algorithm ES256")

	if _, err := v.Authenticate(ctx, idp.SignWithoutKid(t, jwttest.KidEd25519, claims)); err != nil {
		t.Fatalf("a token without kid, signed by a published key: %v", err)
	}
	_, err = v.Authenticate(ctx, jwttest.SignWith(t, jwt.SigningMethodPS256, jwttest.NewKey(t, jwt.SigningMethodPS256), "", claims))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "names no key (kid)")
}

func fetchJWKS(t testing.TB, idp *jwttest.IdP) []byte {
	t.Helper()
	resp, err := httpGet(idp.URL())
	if err != nil {
		t.Fatal(err)
	}
	var set map[string]any
	if err := json.Unmarshal(resp, &set); err != nil {
		t.Fatal(err)
	}
	return resp
}

func httpGet(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// TestJWKSFailureIsUnavailableUntilAFetchSucceeds: while the JWKS answers
// 500, a token whose key is not held is EUNAVAILABLE and one whose key is
// held verifies; once the JWKS answers again, the next unknown kid
// refreshes it and the token is accepted.
func TestJWKSFailureIsUnavailableUntilAFetchSucceeds(t *testing.T) {
	idp := jwttest.New(t)
	v := newVerifier(t, idpConfig(idp))
	ctx := context.Background()
	claims := jwttest.Claims("u", "tenant", "acme", "groups")
	idp.AddKey(t, "rsa-2", jwt.SigningMethodRS256)
	idp.Fail(true)
	_, err := v.Authenticate(ctx, idp.Sign(t, "rsa-2", claims))
	wantRefused(t, err, eventvault.EUNAVAILABLE, "cannot be fetched just now")
	if _, err := v.Authenticate(ctx, idp.Sign(t, jwttest.KidEC, claims)); err != nil {
		t.Fatalf("a key already held, while the JWKS fails: %v", err)
	}
	idp.Fail(false)
	if _, err := v.Authenticate(ctx, idp.Sign(t, "rsa-2", claims)); err != nil {
		t.Fatalf("after the JWKS recovered: %v", err)
	}
	// Answering again, the JWKS that lacks a kid makes it 401, not 503.
	_, err = v.Authenticate(ctx, jwttest.SignWith(t, jwt.SigningMethodRS256, jwttest.NewKey(t, jwt.SigningMethodRS256), "nobody", claims))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "does not know")
}

// TestCancelledRequestDoesNotMarkTheJWKSDown: a caller that goes away
// while its unknown kid is being fetched tells nothing about the provider:
// the next unknown kid (the limiter now allows no fetch) is 401, as the
// JWKS last answered, not 503.
func TestCancelledRequestDoesNotMarkTheJWKSDown(t *testing.T) {
	idp := jwttest.New(t)
	cfg := idpConfig(idp)
	cfg.UnknownKIDBurst, cfg.UnknownKIDInterval = 1, time.Hour
	v := newVerifier(t, cfg)
	claims := jwttest.Claims("u", "tenant", "acme", "groups")
	forged := func(kid string) string {
		return jwttest.SignWith(t, jwt.SigningMethodRS256, jwttest.NewKey(t, jwt.SigningMethodRS256), kid, claims)
	}
	idp.Delay(5 * time.Second)
	before := idp.Fetches()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for idp.Fetches() == before {
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // the caller leaves while its fetch is under way
	}()
	if _, err := v.Authenticate(ctx, forged("gone-1")); err == nil {
		t.Fatal("a forged token was accepted")
	}
	idp.Delay(0)
	_, err := v.Authenticate(context.Background(), forged("gone-2"))
	wantRefused(t, err, eventvault.EUNAUTHORIZED, "does not know")
	if n := idp.Fetches() - before; n != 1 {
		t.Fatalf("%d fetches; want the cancelled one only", n)
	}
}
