package api

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
	"github.com/eventvault/eventvault/store/bolt"
)

// The claim names the JWT tests configure, not the defaults, so that a
// test passing proves the names are read from the configuration.
const (
	tenantClaim = "https://eventvault.example/tenant"
	groupsClaim = "roles"
	// personalSub is a subject that must never come back in a body.
	personalSub = "alice.smith@example.com"
)

// jwtAPI is the whole server, authenticating JWTs with a real verifier
// against idp's JWKS served over HTTP. Tenant acme has the policy document
// "app": append and read on every stream.
type jwtAPI struct {
	*testAPI
	idp *jwttest.IdP
}

func newJWTAPI(t *testing.T, change func(*jwtauth.Config)) *jwtAPI {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return newJWTAPIOver(t, store, change)
}

// appDocument is the "app" policy the JWT callers' groups claim names.
const appDocument = `permit (principal, action in [Action::"append", Action::"read"], resource is Stream);`

func newJWTAPIOver(t *testing.T, store eventvault.Store, change func(*jwtauth.Config)) *jwtAPI {
	t.Helper()
	idp := jwttest.New(t)
	cfg := jwtauth.Config{
		Issuer:      jwttest.Issuer,
		Audiences:   []string{"another-api", jwttest.Audience},
		JWKSURL:     idp.URL(),
		TenantClaim: tenantClaim,
		GroupsClaim: groupsClaim,
	}
	if change != nil {
		change(&cfg)
	}
	v, err := jwtauth.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("jwtauth.New: %v", err)
	}
	t.Cleanup(v.Close)
	a := &jwtAPI{testAPI: newTestAPIWith(t, store, nil, v), idp: idp}
	a.putPolicy("acme", "app", appDocument, http.StatusCreated)
	return a
}

// validClaims are claims of tenant acme with the "app" policy.
func validClaims() jwt.MapClaims {
	return jwttest.Claims(personalSub, tenantClaim, "acme", groupsClaim, "app")
}

// appendOne appends one event to stream with token.
func (a *testAPI) appendOne(stream, token string) *httptest.ResponseRecorder {
	a.t.Helper()
	b := fmt.Appendf(nil, `{"events":[{"id":%q,"type":"OrderPlaced","data":{"total":1}}]}`, uuid.NewString())
	return a.do(http.MethodPost, "/v1/streams/"+stream+"/events", token, b)
}

// wantJWTRefused checks a 401 problem whose detail says says, that asks
// for a bearer token and echoes neither the token nor its subject.
func wantJWTRefused(t *testing.T, rec *httptest.ResponseRecorder, token, says string) {
	t.Helper()
	wantProblem(t, rec, http.StatusUnauthorized, eventvault.EUNAUTHORIZED, says)
	if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q, want Bearer", rec.Header().Get("WWW-Authenticate"))
	}
	if body := rec.Body.String(); strings.Contains(body, personalSub) || strings.Contains(body, token) {
		t.Errorf("problem %s echoes the token or its subject", body)
	}
}

// TestJWTRefusedPerRFC8725: each attack or mistake RFC 8725 names is 401
// with a problem body naming the problem class, through the real API and a
// real verifier that fetches a real JWKS over HTTP; valid RSA, EC and
// Ed25519 tokens are accepted, their tenant and policies read from the
// configured claims.
func TestJWTRefusedPerRFC8725(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testJWTRefusedPerRFC8725(t, newJWTAPI(t, nil)) })
	t.Run("postgres", func(t *testing.T) { testJWTRefusedPerRFC8725(t, newJWTAPIOver(t, newPostgresStore(t), nil)) })
}

func testJWTRefusedPerRFC8725(t *testing.T, a *jwtAPI) {
	rsaPEM := a.idp.PublicKeyPEM(t, jwttest.KidRSA)
	block, _ := pem.Decode(rsaPEM)
	now := time.Now()
	other := jwttest.NewKey(t, jwt.SigningMethodRS256)
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := validClaims()
		change(c)
		return c
	}
	rows := []struct {
		name  string
		token string
		says  string // "" for a token accepted
	}{
		{"alg none",
			jwttest.SignWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwttest.KidRSA, validClaims()),
			`algorithm "none" is not accepted: this server accepts RS256, ES256, EdDSA`},
		{"HS256 keyed with the RSA public key as PEM",
			jwttest.SignWith(t, jwt.SigningMethodHS256, rsaPEM, jwttest.KidRSA, validClaims()),
			`algorithm "HS256" is not accepted: this server accepts RS256, ES256, EdDSA`},
		{"HS256 keyed with the RSA public key as DER",
			jwttest.SignWith(t, jwt.SigningMethodHS256, block.Bytes, jwttest.KidRSA, validClaims()),
			`algorithm "HS256" is not accepted`},
		{"kid naming an unknown key",
			jwttest.SignWith(t, jwt.SigningMethodRS256, other, "rsa-nobody-published", validClaims()),
			"signed with a key (kid) this server does not know"},
		{"expired",
			a.idp.Sign(t, jwttest.KidRSA, with(func(c jwt.MapClaims) { c["iat"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix() })),
			"the token has expired"},
		{"not yet valid",
			a.idp.Sign(t, jwttest.KidEC, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() })),
			"the token is not valid yet"},
		{"no exp",
			a.idp.Sign(t, jwttest.KidEd25519, with(func(c jwt.MapClaims) { delete(c, "exp") })),
			"the token lacks the exp claim"},
		{"wrong iss",
			a.idp.Sign(t, jwttest.KidRSA, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.test" })),
			"the token's issuer is not the one this server trusts: it accepts tokens from " + jwttest.Issuer},
		{"wrong aud",
			a.idp.Sign(t, jwttest.KidRSA, with(func(c jwt.MapClaims) { c["aud"] = []string{"billing-api"} })),
			"the token's audience is not one this server accepts"},
		{"signature by another key under the right kid",
			jwttest.SignWith(t, jwt.SigningMethodRS256, other, jwttest.KidRSA, validClaims()),
			"the token's signature does not verify"},
		{"valid RS256", a.idp.Sign(t, jwttest.KidRSA, validClaims()), ""},
		{"valid ES256", a.idp.Sign(t, jwttest.KidEC, validClaims()), ""},
		{"valid EdDSA", a.idp.Sign(t, jwttest.KidEd25519, validClaims()), ""},
	}
	apiToken := a.tokenFor("acme")
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			a.t = t
			if !jwtauth.LooksLikeJWT(r.token) {
				t.Fatalf("test token does not look like a JWT")
			}
			stream := fmt.Sprintf("order-%d", i)
			rec := a.appendOne(stream, r.token)
			if r.says != "" {
				wantJWTRefused(t, rec, r.token, r.says)
				wantJWTRefused(t, a.do(http.MethodGet, "/v1/streams/"+stream+"/events", r.token, nil), r.token, r.says)
				return
			}
			if rec.Code != http.StatusCreated {
				t.Fatalf("append with a valid JWT: %d %s", rec.Code, rec.Body)
			}
			// The event is in tenant acme, from the configured tenant
			// claim: an API token of acme reads it.
			var out streamOut
			a.doJSON(http.MethodGet, "/v1/streams/"+stream+"/events", apiToken, nil, http.StatusOK, &out)
			if len(out.Events) != 1 {
				t.Fatalf("acme's API token reads %d events of %s, want the one the JWT appended", len(out.Events), stream)
			}
		})
	}
	a.t = t
	// The groups claim names policy documents: a name that matches none
	// grants nothing.
	nothing := a.idp.Sign(t, jwttest.KidRSA, jwttest.Claims("bob", tenantClaim, "acme", groupsClaim, "no-such-policy"))
	wantProblem(t, a.appendOne("order-99", nothing), http.StatusForbidden, eventvault.EFORBIDDEN)
	// A JWT caller's erasure request names it by its actor id, never by
	// its subject (an e-mail address here).
	a.putPolicy("acme", "dpo", `permit (principal, action == Action::"erase", resource);`, http.StatusCreated)
	dpo := a.idp.Sign(t, jwttest.KidRSA, jwttest.Claims(personalSub, tenantClaim, "acme", groupsClaim, "dpo"))
	rec := a.do(http.MethodPost, "/v1/erasure-requests", dpo, []byte(`{"subject":"customer-1"}`))
	var er struct {
		Certificate struct{ Payload []byte } `json:"certificate"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &er); rec.Code != http.StatusCreated || err != nil {
		t.Fatalf("a JWT caller's erasure request: %d %s", rec.Code, rec.Body)
	}
	if cert := string(er.Certificate.Payload); !regexp.MustCompile(`"jwt_[0-9a-f]{16}"`).MatchString(cert) || strings.Contains(cert+rec.Body.String(), personalSub) {
		t.Errorf("the certificate of a JWT caller's request: %s; want its jwt_ actor id, never its subject", cert)
	}
	// The access log names the JWT caller by its actor id, never by its
	// subject, never the token.
	logs := a.logs.String()
	if !regexp.MustCompile(`actor=jwt_[0-9a-f]{16}`).MatchString(logs) {
		t.Errorf("the access log does not name the JWT caller:\n%s", logs)
	}
	if strings.Contains(logs, personalSub) {
		t.Errorf("the access log holds a JWT's subject:\n%s", logs)
	}
	for _, r := range rows {
		if strings.Contains(logs, r.token) {
			t.Fatalf("the %s token reached the logs", r.name)
		}
	}
}

// TestJWTNotConfiguredIs401: a server without a JWT verifier answers a JWT
// with 401 saying so; its API tokens work as before.
func TestJWTNotConfiguredIs401(t *testing.T) {
	a := newTestAPI(t)
	idp := jwttest.New(t)
	token := idp.Sign(t, jwttest.KidRSA, validClaims())
	wantJWTRefused(t, a.appendOne("order-1", token), token, "this server does not accept JWTs: JWT authentication is not configured")
	if rec := a.appendOne("order-1", a.root); rec.Code != http.StatusCreated {
		t.Fatalf("append with the root token: %d %s", rec.Code, rec.Body)
	}
}

// TestJWTKeyRotationAtTheIdP: a key the IdP adds is accepted at once (an
// unknown kid refreshes the JWKS); a key it withdraws stops verifying
// after the next periodic refresh.
func TestJWTKeyRotationAtTheIdP(t *testing.T) {
	a := newJWTAPI(t, func(c *jwtauth.Config) { c.RefreshInterval = time.Second })
	old := a.idp.Sign(t, jwttest.KidRSA, validClaims())
	if rec := a.appendOne("order-1", old); rec.Code != http.StatusCreated {
		t.Fatalf("append with the first key: %d %s", rec.Code, rec.Body)
	}
	a.idp.AddKey(t, "rsa-2", jwt.SigningMethodRS256)
	before := a.idp.Fetches()
	if rec := a.appendOne("order-1", a.idp.Sign(t, "rsa-2", validClaims())); rec.Code != http.StatusCreated {
		t.Fatalf("append with the rotated-in key: %d %s", rec.Code, rec.Body)
	}
	if a.idp.Fetches() <= before {
		t.Fatalf("the new kid was accepted without a JWKS fetch")
	}

	a.idp.Retire(jwttest.KidRSA)
	// Two periodic fetches after the retirement: the refresh loop runs one
	// at a time, so the first has stored its key set when the second
	// starts.
	retired := a.idp.Fetches()
	deadline := time.Now().Add(15 * time.Second)
	for a.idp.Fetches() < retired+2 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than two periodic JWKS refreshes within 15s (refresh interval 1s)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantJWTRefused(t, a.appendOne("order-1", old), old, "a key (kid) this server does not know")
}

// TestJWTUnknownKIDBurstIsRateLimited: tokens naming made-up kids cause at
// most the burst of JWKS fetches, not one each; the first unknown kid,
// a key the IdP just published, is still refreshed and accepted.
func TestJWTUnknownKIDBurstIsRateLimited(t *testing.T) {
	const burst = 2
	a := newJWTAPI(t, func(c *jwtauth.Config) { c.UnknownKIDBurst, c.UnknownKIDInterval = burst, time.Hour })
	start := a.idp.Fetches() // the first fetch, at New
	a.idp.AddKey(t, "ec-2", jwt.SigningMethodES256)
	if rec := a.appendOne("order-1", a.idp.Sign(t, "ec-2", validClaims())); rec.Code != http.StatusCreated {
		t.Fatalf("the first unknown kid, just published: %d %s", rec.Code, rec.Body)
	}
	forger := jwttest.NewKey(t, jwt.SigningMethodRS256)
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := jwttest.SignWith(t, jwt.SigningMethodRS256, forger, fmt.Sprintf("made-up-%d", i), validClaims())
			codes[i] = a.appendOne(fmt.Sprintf("order-%d", i), token).Code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusUnauthorized {
			t.Errorf("made-up kid %d: status %d, want 401", i, c)
		}
	}
	if n := a.idp.Fetches() - start; n > burst {
		t.Fatalf("%d JWKS fetches for 21 unknown kids; the limiter allows %d", n, burst)
	}
}

// TestJWKSDownIs503ForJWTCallersOnly: with the IdP's JWKS unreachable, a
// JWT whose key this server does not hold is 503 with Retry-After; a JWT
// whose key it holds, and an API token, still work.
func TestJWKSDownIs503ForJWTCallersOnly(t *testing.T) {
	a := newJWTAPI(t, nil)
	apiToken := a.tokenFor("acme")
	a.idp.AddKey(t, "ed-2", jwt.SigningMethodEdDSA)
	a.idp.Stop()

	token := a.idp.Sign(t, "ed-2", validClaims())
	rec := a.appendOne("order-1", token)
	wantProblem(t, rec, http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "identity provider's key set (JWKS) cannot be fetched", "API tokens are not affected")
	if rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if strings.Contains(rec.Body.String(), personalSub) {
		t.Errorf("problem %s echoes the subject", rec.Body)
	}
	if rec := a.appendOne("order-1", apiToken); rec.Code != http.StatusCreated {
		t.Fatalf("API token while the JWKS is down: %d %s", rec.Code, rec.Body)
	}
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", apiToken, nil, http.StatusOK, nil)
	if rec := a.appendOne("order-1", a.idp.Sign(t, jwttest.KidRSA, validClaims())); rec.Code != http.StatusCreated {
		t.Fatalf("JWT with a key already held, while the JWKS is down: %d %s", rec.Code, rec.Body)
	}
}
