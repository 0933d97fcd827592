package eventvault

import (
	"context"
	"time"
)

// Token is an API token as stored: its verifier, never the token.
type Token struct {
	ID     string // public id, safe to log
	Hash   []byte // verifier of the secret token: HMAC-SHA256 under the token-verifier key (auth)
	Tenant TenantID
	Name   string
	Root   bool
	Rules  []Rule
	// Policies name the tenant's policy documents attached to the token.
	Policies  []string
	CreatedAt time.Time
	// ExpiresAt is when the token stops authenticating; zero: never.
	ExpiresAt time.Time
}

// TokenStore keeps API tokens by hash.
type TokenStore interface {
	// CreateToken stores t. Errors: ECONFLICT if its id or hash exists;
	// EERASED wrapping ErrTenantShredded for a token (not a root token) of
	// a shredded tenant, which takes no new token.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token with this hash. Errors: ENOTFOUND.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// DeleteRootTokens removes every root token, so that a dev server's
	// restart retires the previous root token, and returns how many it
	// removed (0 when there were none).
	DeleteRootTokens(ctx context.Context) (int, error)
	// DeleteTenantTokens removes every token of the tenant that is not a
	// root token (a root token is admin over every tenant, whatever tenant
	// it names), and returns how many it removed: a tenant shred revokes
	// its tokens with it. Errors: EINVALID for a malformed tenant.
	DeleteTenantTokens(ctx context.Context, tenant TenantID) (int, error)
	// ListTokens returns the tenant's tokens that are not root tokens,
	// oldest first (then by id). Errors: EINVALID for a malformed tenant.
	ListTokens(ctx context.Context, tenant TenantID) ([]Token, error)
	// DeleteToken removes the tenant's token with this id, unless it is a
	// root token. Errors: ENOTFOUND if the tenant has no such token (one
	// of another tenant, or a root token, is not found either); EINVALID
	// for a malformed tenant.
	DeleteToken(ctx context.Context, tenant TenantID, id string) error
}

// PolicyVersion is one version of a tenant's named policy document: each
// write and each deletion makes the next version, and no version is ever
// changed or removed, so the history of who could do what is kept.
type PolicyVersion struct {
	Tenant  TenantID
	Name    string
	Version int64 // 1, 2, 3, ... per name
	// Body is the document's Cedar text; "" when Deleted.
	Body    string
	Deleted bool
	// CreatedBy is the actor that wrote it (Principal.Actor).
	CreatedBy string
	CreatedAt time.Time
}

// PolicyStore keeps the versions of policy documents, per tenant.
type PolicyStore interface {
	// AddPolicyVersion stores v, whose Version must be one more than the
	// name's latest (1 for a new name). Errors: ECONFLICT if that version
	// exists (a concurrent write won); EINVALID for a malformed tenant;
	// EERASED wrapping ErrTenantShredded for a shredded tenant.
	AddPolicyVersion(ctx context.Context, v PolicyVersion) error
	// LatestPolicyVersion returns the name's latest version, which may be
	// a deletion. Errors: ENOTFOUND if the name never existed.
	LatestPolicyVersion(ctx context.Context, tenant TenantID, name string) (PolicyVersion, error)
	// PolicyVersion returns one version. Errors: ENOTFOUND.
	PolicyVersion(ctx context.Context, tenant TenantID, name string, version int64) (PolicyVersion, error)
	// ListPolicies returns the latest version of each of the tenant's
	// names that is not deleted, by name.
	ListPolicies(ctx context.Context, tenant TenantID) ([]PolicyVersion, error)
}
