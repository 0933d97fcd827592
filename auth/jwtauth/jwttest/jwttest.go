// Package jwttest is an identity provider for tests: it generates signing
// keys (RSA 2048, ECDSA P-256, Ed25519), publishes their public halves as a
// JWK Set (RFC 7517) from a real HTTP server, counts the fetches, and signs
// tokens with golang-jwt. Keys can be added, retired and the server
// stopped, as an IdP rotates keys or goes down.
//
// It is test support, like net/http/httptest: nothing in the server imports
// it.
package jwttest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience are the iss and aud of the tokens Claims builds.
const (
	Issuer   = "https://idp.example.test/realms/eventvault"
	Audience = "eventvault-api"
)

// The kids of the keys New generates, one per algorithm.
const (
	KidRSA     = "rsa-1"
	KidEC      = "ec-1"
	KidEd25519 = "ed-1"
)

type signingKey struct {
	method jwt.SigningMethod
	key    crypto.Signer
}

// IdP serves a JWK Set over HTTP and signs tokens with its keys.
type IdP struct {
	server  *httptest.Server
	fetches atomic.Int64
	failing atomic.Bool
	delay   atomic.Int64 // nanoseconds before each answer

	mu        sync.Mutex
	keys      map[string]signingKey
	published []string // kids in the JWK Set, in order
}

// New starts an IdP whose JWK Set publishes an RSA (RS256), an EC P-256
// (ES256) and an Ed25519 (EdDSA) key, under KidRSA, KidEC and KidEd25519.
// The server stops when the test ends.
func New(t testing.TB) *IdP {
	t.Helper()
	i := &IdP{keys: map[string]signingKey{}}
	i.AddKey(t, KidRSA, jwt.SigningMethodRS256)
	i.AddKey(t, KidEC, jwt.SigningMethodES256)
	i.AddKey(t, KidEd25519, jwt.SigningMethodEdDSA)
	i.server = httptest.NewServer(http.HandlerFunc(i.serveJWKS))
	t.Cleanup(i.server.Close)
	return i
}

// URL is the JWK Set's address.
func (i *IdP) URL() string { return i.server.URL + "/protocol/openid-connect/certs" }

// Fetches is how many times the JWK Set was requested.
func (i *IdP) Fetches() int { return int(i.fetches.Load()) }

// Stop stops the HTTP server: later fetches fail to connect.
func (i *IdP) Stop() { i.server.Close() }

// AddKey generates a key for method (RS256, ES256 or EdDSA) and publishes
// it under kid.
func (i *IdP) AddKey(t testing.TB, kid string, method jwt.SigningMethod) {
	t.Helper()
	key := NewKey(t, method)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = signingKey{method: method, key: key}
	i.published = append(i.published, kid)
}

// Fail makes the JWKS answer 500 (true) or the key set again (false), as a
// provider that is up but broken.
func (i *IdP) Fail(fail bool) { i.failing.Store(fail) }

// Delay makes every JWKS answer wait d, or until the client gives up.
func (i *IdP) Delay(d time.Duration) { i.delay.Store(int64(d)) }

// Retire removes kid from the JWK Set; its key can still sign.
func (i *IdP) Retire(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.published = slices.DeleteFunc(i.published, func(k string) bool { return k == kid })
}

// NewKey generates a private key for method: RSA 2048 for RS*, ECDSA P-256
// for ES256, Ed25519 for EdDSA.
func NewKey(t testing.TB, method jwt.SigningMethod) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch method.Alg() {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("jwttest: no key type for %s", method.Alg())
	}
	if err != nil {
		t.Fatalf("jwttest: generate %s key: %v", method.Alg(), err)
	}
	return key
}

// PublicKeyPEM returns kid's public key as PEM (SubjectPublicKeyInfo), the
// bytes an attacker would use as an HMAC secret.
func (i *IdP) PublicKeyPEM(t testing.TB, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(i.key(t, kid).key.Public())
	if err != nil {
		t.Fatalf("jwttest: marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Claims returns valid claims: Issuer, Audience, sub, exp in five minutes,
// iat now, and the tenant and groups claims under the names given.
func Claims(sub, tenantClaim, tenant, groupsClaim string, groups ...string) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": Issuer,
		"aud": Audience,
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
	if tenantClaim != "" {
		c[tenantClaim] = tenant
	}
	if groupsClaim != "" {
		c[groupsClaim] = groups
	}
	return c
}

// Sign signs claims with kid's key and algorithm, naming kid in the header.
func (i *IdP) Sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	k := i.key(t, kid)
	return SignWith(t, k.method, k.key, kid, claims)
}

// SignWithoutKid signs claims with kid's key and algorithm, naming no kid
// in the header.
func (i *IdP) SignWithoutKid(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	k := i.key(t, kid)
	return SignWith(t, k.method, k.key, "", claims)
}

// SignWith signs claims with key under method, naming kid in the header
// ("" for none). key is whatever method takes: a private key, or the
// bytes of an HMAC secret.
func SignWith(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("jwttest: sign with %s: %v", method.Alg(), err)
	}
	return s
}

func (i *IdP) key(t testing.TB, kid string) signingKey {
	t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	k, ok := i.keys[kid]
	if !ok {
		t.Fatalf("jwttest: no key %q", kid)
	}
	return k
}

// serveJWKS answers with the public halves of the published keys, each
// with its kid, alg and use "sig".
func (i *IdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.fetches.Add(1)
	if d := time.Duration(i.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if i.failing.Load() {
		http.Error(w, "identity provider unavailable", http.StatusInternalServerError)
		return
	}
	i.mu.Lock()
	store := jwkset.NewMemoryStorage()
	var err error
	for _, kid := range i.published {
		k := i.keys[kid]
		jwk, jerr := jwkset.NewJWKFromKey(k.key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			ALG: jwkset.ALG(k.method.Alg()), KID: kid, USE: jwkset.UseSig,
		}})
		if jerr != nil {
			err = jerr
			break
		}
		if err = store.KeyWrite(context.Background(), jwk); err != nil {
			break
		}
	}
	i.mu.Unlock()
	var body []byte
	if err == nil {
		body, err = store.JSONPublic(r.Context())
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Write(body)
}
