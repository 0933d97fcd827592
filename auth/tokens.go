// Package auth turns API tokens into principals. A token is 32 random bytes
// shown once at creation; the store keeps only its verifier: HMAC-SHA256 of
// the token under the deployment's token-verifier key, which the database
// does not hold (it is wrapped by the root key), so that a row written into
// the database by anyone but a server authenticates nothing. (A fast MAC is
// enough for a 256-bit random secret: there is nothing to brute-force.)
// Tokens never appear in logs or errors; each has a public id that may.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// TokenPrefix starts every token EventVault generates, so that secret
// scanners can recognise a leaked one.
const TokenPrefix = "evt_"

// MaxTokenLength bounds what Authenticate accepts before it hashes anything.
const MaxTokenLength = 512

// Tokens issues and verifies API tokens.
//
// Built with NewTokens and a positive cache TTL, it remembers the principal
// of each token that authenticated (by the token's hash) for that long, so
// that most requests make no store call. The price is a revocation delay:
// a token deleted from the store by another process sharing the database
// keeps authenticating here for up to the TTL. Revocations made through
// this Tokens (InstallRoot's retirement of earlier root tokens) purge the
// cache and take effect at once; any future revocation must call Purge
// too. Tokens that fail to authenticate are never cached. A Tokens built
// as a literal has no cache.
//
// Key computes the verifiers the store keeps. Every server of a deployment
// must use the same key (the deployment's token-verifier key); a Tokens
// without one binds its verifiers to a random key of its own, so that the
// tokens it issues authenticate through it only. Never SHA-256 alone.
type Tokens struct {
	Store eventvault.TokenStore
	Key   VerifierKey      // a random key of this Tokens when nil
	Rand  io.Reader        // crypto/rand.Reader when nil
	Now   func() time.Time // time.Now when nil
	// RefuseRoot makes Authenticate refuse root tokens (401) and warn
	// through Logger: a production server sets it, since a root token is
	// the dev server's, admin over every tenant, and one left in a
	// database that a dev server once used must not open it.
	RefuseRoot bool
	// Policies checks that the documents a new token names exist
	// (policies.Resolver); nil refuses tokens that name any.
	Policies PolicyChecker
	// Audit, when set, records every token issued and revoked in the
	// tenant's audit log, in the same transaction.
	Audit  eventvault.AuditRecorder
	Logger *slog.Logger // nil: no warnings
	cache  *tokenCache  // nil: no cache

	ownKeyOnce sync.Once
	ownKey     VerifierKey
}

// PolicyChecker checks policy names: policies.Resolver implements it.
type PolicyChecker interface {
	// Exist returns EINVALID naming the first name that is not a current
	// document of tenant.
	Exist(ctx context.Context, tenant eventvault.TenantID, names []string) error
}

// VerifierKey computes what the store keeps of a token: a MAC of the
// secret under a key the database does not hold. The deployment's
// token-verifier key (crypto/deploykeys) is one.
type VerifierKey interface {
	// TokenVerifier returns the 32-byte verifier of secret.
	TokenVerifier(secret string) [sha256.Size]byte
}

// hmacKey is the VerifierKey of a Tokens given none: 32 random bytes that
// live as long as it does.
type hmacKey struct{ key *[32]byte }

func (k hmacKey) TokenVerifier(secret string) [sha256.Size]byte {
	m := hmac.New(sha256.New, k.key[:])
	m.Write([]byte(secret))
	var v [sha256.Size]byte
	m.Sum(v[:0])
	return v
}

func (k hmacKey) String() string { return "auth.hmacKey" }

func (k hmacKey) GoString() string { return k.String() }

func (k hmacKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// verifier is what the store keeps of secret.
func (s *Tokens) verifier(secret string) [sha256.Size]byte {
	if s.Key != nil {
		return s.Key.TokenVerifier(secret)
	}
	s.ownKeyOnce.Do(func() {
		k := new([32]byte)
		if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
			panic(fmt.Sprintf("auth: no random key for token verifiers: %v", err))
		}
		s.ownKey = hmacKey{key: k}
	})
	return s.ownKey.TokenVerifier(secret)
}

// NewTokens returns Tokens over store that remember authenticated tokens
// for cacheTTL (DefaultTokenCacheTTL is the server's default); 0 or less
// disables the cache.
func NewTokens(store eventvault.TokenStore, cacheTTL time.Duration) *Tokens {
	t := &Tokens{Store: store}
	if cacheTTL > 0 {
		t.cache = newTokenCache(cacheTTL)
	}
	return t
}

// Purge forgets every cached token, so that the next request with any
// token looks it up in the store. Call it after revoking a token.
func (s *Tokens) Purge() {
	if s.cache != nil {
		s.cache.purge()
	}
}

// NewTokenRequest describes a token to issue.
type NewTokenRequest struct {
	Tenant eventvault.TenantID
	Name   string
	// Rules are what the token grants inline (the form before policy
	// documents): policies.DefaultRules when nil and Policies is empty
	// (both left out of the request); an empty, non-nil list is EINVALID,
	// since a token that grants nothing is a mistake, not a default.
	Rules []eventvault.Rule
	// Policies name documents of the tenant that decide what the token
	// may do, with its Rules; each must exist.
	Policies []string
	// TTL is how long the token authenticates: 0 for ever, else between
	// MinTokenTTL and MaxTokenTTL.
	TTL time.Duration
}

// The bounds of a token's TTL.
const (
	MinTokenTTL = time.Minute
	MaxTokenTTL = 366 * 24 * time.Hour
)

// ValidateTTL returns EINVALID (at /ttl) unless ttl is 0 (no expiry) or
// within [MinTokenTTL, MaxTokenTTL]. The message names the bound crossed,
// never the value sent.
func ValidateTTL(ttl time.Duration) error {
	switch {
	case ttl != 0 && ttl < MinTokenTTL:
		return eventvault.FieldErrorf("/ttl", "ttl is shorter than 1m: give a duration from 1m to 8784h (366 days), or leave ttl out for a token that does not expire")
	case ttl > MaxTokenTTL:
		return eventvault.FieldErrorf("/ttl", "ttl is longer than 8784h (366 days): give a duration from 1m to 8784h, or leave ttl out for a token that does not expire")
	}
	return nil
}

// MaxTokenNameLength bounds a token's name.
const MaxTokenNameLength = 100

// Issue creates a token for req.Tenant and returns the secret, which is never
// stored and cannot be shown again, with the stored record.
// Errors: EFORBIDDEN unless issuer is root or an admin of req.Tenant;
// EINVALID for a bad tenant, name (empty included: a token is listed and
// revoked by what its name says it is for) or rules.
func (s *Tokens) Issue(ctx context.Context, issuer eventvault.Principal, req NewTokenRequest) (string, eventvault.Token, error) {
	// Errors about the request name its field in POST /v1/tokens's body
	// by pointer (Fields["pointer"]).
	if err := eventvault.ValidateTenant(req.Tenant); err != nil {
		return "", eventvault.Token{}, eventvault.AtPointer(err, "/tenant")
	}
	if err := policies.Authorize(issuer, policies.Request{Tenant: req.Tenant, Action: policies.ManageTokens}); err != nil {
		return "", eventvault.Token{}, err
	}
	if strings.TrimSpace(req.Name) == "" {
		return "", eventvault.Token{}, eventvault.FieldErrorf("/name", "name is missing: name the token after what uses it, such as \"acme-app\" (GET /v1/tokens lists tokens by name)")
	}
	if len(req.Name) > MaxTokenNameLength {
		return "", eventvault.Token{}, eventvault.FieldErrorf("/name", "token name is %d bytes long; the limit is %d", len(req.Name), MaxTokenNameLength)
	}
	if !utf8.ValidString(req.Name) || strings.IndexFunc(req.Name, unicode.IsControl) >= 0 {
		return "", eventvault.Token{}, eventvault.FieldErrorf("/name", "token name must be UTF-8 text without control characters (NUL, line breaks)")
	}
	if req.Policies != nil && len(req.Policies) == 0 {
		return "", eventvault.Token{}, eventvault.FieldErrorf("/policies", "policies is an empty list, which would grant nothing: name at least one policy document, or leave policies out")
	}
	rules := req.Rules
	switch {
	case rules == nil && len(req.Policies) == 0:
		rules = policies.DefaultRules
	case rules == nil:
	case len(rules) == 0:
		return "", eventvault.Token{}, eventvault.FieldErrorf("/rules", "rules is an empty list, which would grant nothing: name at least one rule, or leave rules out for the default (append and read on every stream)")
	}
	if err := policies.ValidateRules(rules); err != nil {
		return "", eventvault.Token{}, eventvault.AtPointer(err, "/rules")
	}
	if err := ValidateTTL(req.TTL); err != nil {
		return "", eventvault.Token{}, eventvault.AtPointer(err, "/ttl")
	}
	if len(req.Policies) > 0 {
		if s.Policies == nil {
			return "", eventvault.Token{}, eventvault.FieldErrorf("/policies", "this server keeps no policy documents, so a token cannot name policies")
		}
		if err := s.Policies.Exist(ctx, req.Tenant, req.Policies); err != nil {
			return "", eventvault.Token{}, eventvault.AtPointer(err, "/policies")
		}
	}
	secret, err := s.newSecret()
	if err != nil {
		return "", eventvault.Token{}, err
	}
	audited := func(ctx context.Context, t eventvault.Token) (context.Context, error) {
		return eventvault.WithAuditEvents(ctx, s.Audit, eventvault.AuditEvent{Tenant: t.Tenant, Actor: issuer.Actor(), Action: "token_issued", Resource: "token:" + t.ID, Outcome: "ok",
			Detail: map[string]any{"policies": len(req.Policies), "rules": len(rules), "ttl_seconds": int64(req.TTL.Seconds())}})
	}
	t, err := s.storeAudited(ctx, secret, req.Tenant, req.Name, false, rules, req.Policies, req.TTL, audited)
	if err != nil {
		return "", eventvault.Token{}, err
	}
	return secret, t, nil
}

// InstallRoot retires every earlier root token and makes secret the root
// token for tenant, generating one when secret is empty. It returns the
// secret. Dev mode only: the root token is admin over every tenant.
func (s *Tokens) InstallRoot(ctx context.Context, tenant eventvault.TenantID, secret string) (string, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return "", err
	}
	if secret == "" {
		var err error
		if secret, err = s.newSecret(); err != nil {
			return "", err
		}
	}
	if len(secret) > MaxTokenLength {
		return "", eventvault.Errorf(eventvault.EINVALID, "the root token is longer than %d bytes", MaxTokenLength)
	}
	_, err := s.Store.DeleteRootTokens(ctx)
	// Purged even on an error, which may hide a delete that committed.
	s.Purge()
	if err != nil {
		return "", fmt.Errorf("retire earlier root tokens: %w", err)
	}
	rules := []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"}}
	if _, err := s.store(ctx, secret, tenant, "root", true, rules, nil, 0); err != nil {
		return "", err
	}
	return secret, nil
}

// Authenticate returns the principal of a token, from the cache when it
// authenticated less than the cache TTL ago. The principal's Rules may be
// shared with other calls: read them, never modify them.
// Errors: EUNAUTHORIZED for an empty, over-long, unknown or expired token,
// and for a root token when RefuseRoot is set.
func (s *Tokens) Authenticate(ctx context.Context, secret string) (eventvault.Principal, error) {
	if secret == "" || len(secret) > MaxTokenLength {
		return eventvault.Principal{}, errBadToken
	}
	hash := s.verifier(secret)
	now := s.now()
	var gen uint64
	if s.cache != nil {
		if p, ok := s.cache.get(hash, now); ok {
			return p, nil
		}
		gen = s.cache.generation()
	}
	t, err := s.Store.TokenByHash(ctx, hash[:])
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
		return eventvault.Principal{}, errBadToken
	}
	if err != nil {
		return eventvault.Principal{}, fmt.Errorf("look up token: %w", err)
	}
	if err := s.usable(ctx, t, now); err != nil {
		return eventvault.Principal{}, err
	}
	p := eventvault.Principal{Tenant: t.Tenant, TokenID: t.ID, Name: t.Name, Root: t.Root, Rules: t.Rules, Policies: t.Policies}
	if s.cache != nil {
		s.cache.addUntil(hash, p, now, gen, t.ExpiresAt)
	}
	return p, nil
}

// errBadToken is the one answer for every token that authenticates
// nothing: never issued, mistyped, revoked by an admin or by its tenant's
// shred. It names every cause, so that it misleads none of those callers,
// and tells none of them which (an unauthenticated caller learns nothing
// about a token, a tenant or a shred).
var errBadToken = eventvault.Errorf(eventvault.EUNAUTHORIZED, "the bearer token is not valid: it was never issued, was not copied whole, or was revoked (by an admin, or when its tenant was shredded). Ask an admin of your tenant for a new one")

// Verifier is what the store keeps of a token: its verifier under the
// Tokens' key (see Tokens.Key).
func (s *Tokens) Verifier(secret string) []byte {
	v := s.verifier(secret)
	return v[:]
}

// TokenIDPrefix starts every token's public id: "tok_" and 16 lower-case
// hex digits (8 random bytes).
const TokenIDPrefix = "tok_"

// ValidTokenID reports whether id has a token id's shape: TokenIDPrefix
// and 16 lower-case hex digits. An id of any other shape names no token,
// and may be something else pasted in its place (an e-mail address), so
// it is never echoed.
func ValidTokenID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, TokenIDPrefix)
	if !ok || len(hexPart) != 16 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		if c := hexPart[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Tokens) store(ctx context.Context, secret string, tenant eventvault.TenantID, name string, root bool, rules []eventvault.Rule, pols []string, ttl time.Duration) (eventvault.Token, error) {
	return s.storeAudited(ctx, secret, tenant, name, root, rules, pols, ttl, nil)
}

// storeAudited is store, with the token's audit record (made by audited
// once the token's id is known) written in the same transaction.
func (s *Tokens) storeAudited(ctx context.Context, secret string, tenant eventvault.TenantID, name string, root bool, rules []eventvault.Rule, pols []string, ttl time.Duration, audited func(context.Context, eventvault.Token) (context.Context, error)) (eventvault.Token, error) {
	id := make([]byte, 8)
	if _, err := io.ReadFull(s.rand(), id); err != nil {
		return eventvault.Token{}, fmt.Errorf("token id: %w", err)
	}
	t := eventvault.Token{
		ID:       TokenIDPrefix + hex.EncodeToString(id),
		Hash:     s.Verifier(secret),
		Tenant:   tenant,
		Name:     name,
		Root:     root,
		Rules:    rules,
		Policies: pols,
		// Microseconds, as PostgreSQL keeps them and every other time of
		// the API is given: the 201 and a later list agree, on both stores.
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	}
	if ttl > 0 {
		t.ExpiresAt = t.CreatedAt.Add(ttl).Truncate(time.Microsecond)
	}
	if audited != nil {
		var err error
		if ctx, err = audited(ctx, t); err != nil {
			return eventvault.Token{}, err
		}
	}
	if err := s.Store.CreateToken(ctx, t); err != nil {
		return eventvault.Token{}, fmt.Errorf("store token %s: %w", t.ID, err)
	}
	return t, nil
}

func (s *Tokens) newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand(), b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Tokens) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

func (s *Tokens) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
