package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventvault/eventvault"
)

// keyError explains a failed key lookup: a kid this server knows whose
// JWK does not fit (its alg or use), a kid unknown to a JWKS that answers
// (401), or one unknown while the JWKS cannot be fetched (503).
func (v *Verifier) keyError(ctx context.Context, t *jwt.Token, err error) *eventvault.Error {
	kid, hasKid := t.Header["kid"].(string)
	if hasKid && v.holds(ctx, kid) {
		return unauthorized(err, "the token's key (kid) is not a key for its algorithm %s: the identity provider's key set lists that key for another algorithm or use", t.Method.Alg())
	}
	if v.cfg.JWKSURL != "" && v.health.failing.Load() {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Err: err,
			Message: "the token is signed with a key this server does not hold yet, and the identity provider's key set (JWKS) cannot be fetched just now: retry later; EventVault API tokens are not affected"}
	}
	if !hasKid {
		return unauthorized(err, "the token names no key (kid), and no configured key verifies it")
	}
	return unauthorized(err, "the token is signed with a key (kid) this server does not know: the identity provider's key set does not list it; get a new token, or check that the token comes from the configured issuer")
}

// holds reports whether kid is among the keys held now, without fetching.
func (v *Verifier) holds(ctx context.Context, kid string) bool {
	all, err := v.keys.Storage().KeyReadAll(ctx)
	if err != nil {
		return false
	}
	for _, k := range all {
		if k.Marshal().KID == kid {
			return true
		}
	}
	return false
}

// refusal turns a parse error into the message for the caller. Only
// claims' names and this server's own settings appear in it, never a
// claim's value.
func (v *Verifier) refusal(tok *jwt.Token, claims jwt.MapClaims, err error) *eventvault.Error {
	var e *eventvault.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized(err, "the bearer value is not a well-formed JWT: it must be three base64url segments (header.payload.signature) of JSON objects (RFC 7519 §7.2)")
	case tok != nil && !v.accepts(tok):
		return unauthorized(err, "%s is not accepted: this server accepts %s (RFC 8725 §3.1)", algorithmOf(tok), strings.Join(v.cfg.Algorithms, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized(err, "the token's signature does not verify with the key it names: it was signed by another key, or altered")
	case errors.Is(err, jwt.ErrInvalidType):
		return unauthorized(err, "the token's registered claims have the wrong types: exp, nbf and iat must be numbers, iss and sub strings, aud a string or an array of strings (RFC 7519 §4.1)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized(err, "the token has expired: get a new one from the identity provider")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized(err, "the token is not valid yet: its nbf is in the future, beyond the %s this server allows for clock skew; check the clocks", v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthorized(err, "the token was issued in the future: its iat is later than now, beyond the %s this server allows for clock skew; check the clocks", v.cfg.Leeway)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		name, rule := missingClaim(claims)
		return unauthorized(err, "the token lacks the %s claim: this server accepts only tokens that %s", name, rule)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthorized(err, "the token's issuer is not the one this server trusts: it accepts tokens from %s only", v.cfg.Issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthorized(err, "the token's audience is not one this server accepts: ask the identity provider for a token for %s", strings.Join(v.cfg.Audiences, " or "))
	default:
		return unauthorized(err, "the token does not verify")
	}
}

// accepts reports whether tok's alg is one this server accepts.
func (v *Verifier) accepts(tok *jwt.Token) bool {
	if tok.Method == nil {
		return false
	}
	for _, a := range v.cfg.Algorithms {
		if a == tok.Method.Alg() {
			return true
		}
	}
	return false
}

// algorithmOf names tok's alg for a message: quoted when it is a short
// name, as algorithms are, and otherwise described, never echoed.
func algorithmOf(tok *jwt.Token) string {
	alg, ok := tok.Header["alg"].(string)
	if !ok {
		return "a token without an algorithm (alg)"
	}
	if len(alg) == 0 || len(alg) > 20 {
		return "the token's algorithm"
	}
	for _, r := range alg {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '+') {
			return "the token's algorithm"
		}
	}
	return fmt.Sprintf("algorithm %q", alg)
}

// missingClaim names the first required claim claims lack, and the rule
// it serves.
func missingClaim(claims jwt.MapClaims) (string, string) {
	for _, c := range []struct{ name, rule string }{
		{"exp", "expire (RFC 9068 §2.2; OpenID Connect Core §2)"},
		{"iss", "name their issuer (RFC 8725 §3.8)"},
		{"aud", "name their audience (RFC 8725 §3.9)"},
	} {
		if _, ok := claims[c.name]; !ok {
			return c.name, c.rule
		}
	}
	return "a required", "carry every required claim"
}

func unauthorized(cause error, format string, args ...any) *eventvault.Error {
	e := eventvault.Errorf(eventvault.EUNAUTHORIZED, format, args...)
	e.Err = cause
	return e
}
