package jwtauth

import (
	"encoding/hex"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventvault/eventvault"
)

// principal maps verified claims to a principal: Subject "iss#sub", the
// tenant claim to Tenant, the groups claim to Policies. Errors are
// EUNAUTHORIZED naming the claim, never its value.
func (v *Verifier) principal(claims jwt.MapClaims) (eventvault.Principal, *eventvault.Error) {
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return eventvault.Principal{}, unauthorized(err, "the token has no subject: its sub claim must be a non-empty string (RFC 8725 §3.8)")
	}
	if len(sub) > MaxSubjectLength {
		return eventvault.Principal{}, unauthorized(nil, "the token's sub claim is %d bytes long; the limit is %d (OpenID Connect Core §2)", len(sub), MaxSubjectLength)
	}
	iss, _ := claims.GetIssuer() // checked equal to the configured issuer
	tenant, e := v.tenant(claims)
	if e != nil {
		return eventvault.Principal{}, e
	}
	groups, e := v.groups(claims)
	if e != nil {
		return eventvault.Principal{}, e
	}
	subject := iss + "#" + sub
	return eventvault.Principal{Tenant: tenant, Subject: subject, ActorID: v.actorID(subject), Policies: groups}, nil
}

// ActorKey computes a keyed hash: the deployment key of token verifiers
// (crypto/deploykeys) implements it.
type ActorKey interface {
	TokenVerifier(secret string) [32]byte
}

// actorID is "jwt_" and 16 hex digits of the keyed hash of subject, in a
// domain of its own ("jwt-actor\x00"), so that it matches no token
// verifier.
func (v *Verifier) actorID(subject string) string {
	mac := v.actorKey.TokenVerifier("jwt-actor\x00" + subject)
	return "jwt_" + hex.EncodeToString(mac[:8])
}

func (v *Verifier) tenant(claims jwt.MapClaims) (eventvault.TenantID, *eventvault.Error) {
	raw, ok := claims[v.cfg.TenantClaim]
	if !ok {
		return "", unauthorized(nil, "the token has no %q claim: this server takes the caller's tenant from it; ask the identity provider's administrator to add it", v.cfg.TenantClaim)
	}
	s, ok := raw.(string)
	if !ok {
		return "", unauthorized(nil, "the token's %q claim must be a string naming one tenant", v.cfg.TenantClaim)
	}
	t := eventvault.TenantID(s)
	if err := eventvault.ValidateTenant(t); err != nil {
		return "", unauthorized(err, "the token's %q claim is not a valid tenant: a tenant is 1 to 63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit", v.cfg.TenantClaim)
	}
	return t, nil
}

// groups reads the groups claim: absent (no policies), one string, or an
// array of strings; duplicates are dropped, the order kept.
func (v *Verifier) groups(claims jwt.MapClaims) ([]string, *eventvault.Error) {
	raw, ok := claims[v.cfg.GroupsClaim]
	if !ok || raw == nil {
		return nil, nil
	}
	var names []string
	switch g := raw.(type) {
	case string:
		names = []string{g}
	case []any:
		if len(g) > MaxGroups {
			return nil, unauthorized(nil, "the token's %q claim names %d groups; the limit is %d", v.cfg.GroupsClaim, len(g), MaxGroups)
		}
		for _, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, unauthorized(nil, "the token's %q claim must be a string or an array of strings", v.cfg.GroupsClaim)
			}
			names = append(names, s)
		}
	default:
		return nil, unauthorized(nil, "the token's %q claim must be a string or an array of strings", v.cfg.GroupsClaim)
	}
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || len(n) > MaxGroupLength {
			return nil, unauthorized(nil, "the token's %q claim holds an empty name or one longer than %d bytes", v.cfg.GroupsClaim, MaxGroupLength)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}
