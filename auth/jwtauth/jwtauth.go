// Package jwtauth authenticates bearer JWTs (OIDC access or ID tokens) as
// EventVault principals, for callers who sign in through an identity
// provider instead of holding an API token.
//
// A token is accepted when (RFC 7519, RFC 8725):
//   - its "alg" is one of the configured algorithms, all public-key ones;
//     "none" and HS* are never accepted (RFC 8725 §3.1, §2.1);
//   - its signature verifies with the key its "kid" names in the
//     configured JWK Set (or with one of the keys, if it names none), and
//     that key suits the algorithm (RSA of 2048 bits or more, the curve ES*
//     names, Ed25519);
//   - "exp" is present and not past, "nbf" and "iat" are not in the
//     future, each within the leeway (RFC 7519 §4.1.4–4.1.6);
//   - "iss" is the configured issuer and "aud" names a configured
//     audience (RFC 8725 §3.8, §3.9);
//   - "sub" is present, and the tenant claim holds a valid tenant.
//
// Keys come only from configuration: a JWKS URL, a JWK Set file, or both;
// never from a token's own "jku", "x5u" or "jwk" header (RFC 8725 §3.10).
// The JWKS is fetched periodically, and at once when a token names an
// unknown kid, as a rate limiter allows: a small burst, then one fetch per
// interval, so that a flood of made-up kids cannot make this server flood
// the provider.
//
// Errors are *eventvault.Error: EUNAUTHORIZED for every token that does
// not verify, with a message naming the problem and never a claim's value;
// EUNAVAILABLE when the token names a key this server does not hold and
// the JWKS cannot be fetched just now.
package jwtauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventvault/eventvault"
)

// Limits on the claims mapped into a principal.
const (
	// MaxSubjectLength is OpenID Connect Core §2's bound on "sub".
	MaxSubjectLength = 255
	// MaxGroups and MaxGroupLength bound the groups claim.
	MaxGroups      = 256
	MaxGroupLength = 256
)

// Verifier authenticates bearer JWTs. It is safe for concurrent use.
type Verifier struct {
	cfg      Config
	actorKey ActorKey
	parser   *jwt.Parser
	keys     keyfunc.Keyfunc
	health   *fetchHealth
	cancel   context.CancelFunc
}

// New validates cfg (an error names the setting to fix), reads the keys
// file, makes the first JWKS fetch and starts the periodic refresh, which
// runs until ctx ends or Close. A first fetch that fails is logged, not
// returned: tokens whose keys are unknown then get EUNAVAILABLE until a
// fetch succeeds. logger may be nil.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	health := &fetchHealth{}
	kf, err := newKeyfunc(ctx, cfg, health, logger)
	if err != nil {
		cancel()
		return nil, err
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	actorKey := cfg.ActorKey
	if actorKey == nil {
		k := new([32]byte)
		if _, err := rand.Read(k[:]); err != nil {
			cancel()
			return nil, fmt.Errorf("jwtauth: a random actor key: %w", err)
		}
		actorKey = randomActorKey{k}
	}
	return &Verifier{cfg: cfg, actorKey: actorKey, parser: parser, keys: kf, health: health, cancel: cancel}, nil
}

// Close stops the periodic JWKS refresh.
func (v *Verifier) Close() { v.cancel() }

// Authenticate verifies raw, a compact JWS (RFC 7515 §7.1), and returns
// its principal: Tenant from the tenant claim, Subject "iss#sub",
// Policies from the groups claim (names of the tenant's policy documents;
// none when the claim is absent). The principal is never Root and has no
// TokenID.
//
// Errors: EUNAUTHORIZED when the token does not verify, with a message
// naming the problem class; EUNAVAILABLE when its kid is unknown and the
// JWKS cannot be fetched.
func (v *Verifier) Authenticate(ctx context.Context, raw string) (eventvault.Principal, error) {
	const op = "jwtauth.Authenticate"
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(ctx))
	if err != nil {
		e := v.refusal(tok, claims, err)
		e.Op = op
		return eventvault.Principal{}, e
	}
	p, e := v.principal(claims)
	if e != nil {
		e.Op = op
		return eventvault.Principal{}, e
	}
	return p, nil
}

// keyfunc returns the key the token names, refreshing the JWKS on an
// unknown kid as the limiter allows, and checks that it suits the
// token's algorithm.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	lookup := v.keys.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		key, err := lookup(t)
		if err != nil {
			return nil, v.keyError(ctx, t, err)
		}
		key, err = fitKey(key, t.Method.Alg())
		if err != nil {
			if _, hasKid := t.Header["kid"]; !hasKid {
				return nil, unauthorized(err, "the token names no key (kid), and this server holds no key for its algorithm %s", t.Method.Alg())
			}
			return nil, unauthorized(err, "the token's key (kid) is not a key for its algorithm %s: the identity provider's key set lists that key for another algorithm or use", t.Method.Alg())
		}
		return key, nil
	}
}

// LooksLikeJWT reports whether s has the shape of a compact JWS (RFC 7515
// §7.1): three base64url segments separated by dots, the first two
// non-empty (the third is empty in an unsigned token, which is refused
// later with a message saying so). EventVault API tokens start with "evt_"
// and hold no dot, so the two never look alike.
func LooksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return false
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// randomActorKey is the ActorKey of a Verifier given none.
type randomActorKey struct{ key *[32]byte }

func (k randomActorKey) TokenVerifier(secret string) [32]byte {
	m := hmac.New(sha256.New, k.key[:])
	m.Write([]byte(secret))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

func (k randomActorKey) String() string { return "jwtauth.randomActorKey" }

func (k randomActorKey) GoString() string { return k.String() }

func (k randomActorKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
