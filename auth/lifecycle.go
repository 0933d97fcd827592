package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

// Operator is the principal of an operator at the command line (eventvault
// token create, tenant shred): whoever holds the database and the root of
// trust is admin over every tenant. It is never the principal of a request.
var Operator = eventvault.Principal{TokenID: "operator", Name: "operator (command line)", Root: true}

// RevokeRootCommand is the command that removes root tokens.
const RevokeRootCommand = "eventvault token revoke-root"

var errRootRefused = eventvault.Errorf(eventvault.EUNAUTHORIZED, "this is a dev root token, and a production server (started without -dev) never honours one: use a token issued with 'eventvault token create', and remove root tokens with '"+RevokeRootCommand+"'")

// usable checks a token the store returned: not expired, and not a root
// token when RefuseRoot is set.
func (s *Tokens) usable(ctx context.Context, t eventvault.Token, now time.Time) error {
	if t.Root && s.RefuseRoot {
		if s.Logger != nil {
			s.Logger.WarnContext(ctx, "a dev root token was refused: production servers never honour one; remove it with '"+RevokeRootCommand+"'", slog.String("token_id", t.ID))
		}
		return errRootRefused
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return eventvault.Errorf(eventvault.EUNAUTHORIZED, "the bearer token %s expired at %s: ask an admin for a new one", t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// List returns the tokens of tenant (never a root token), oldest first;
// their hashes stay in the store's records and must never be shown.
// Errors: EFORBIDDEN unless p is root or an admin of tenant.
func (s *Tokens) List(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) ([]eventvault.Token, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.ManageTokens}); err != nil {
		return nil, err
	}
	ts, err := s.Store.ListTokens(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// Revoke deletes the token id of tenant and purges this node's cache, so
// that it stops authenticating here at once; other processes on the same
// database stop honouring it within their token cache TTL.
// Errors: EFORBIDDEN unless p is root or an admin of tenant; ENOTFOUND if
// tenant has no such token (a root token is never revoked this way: see
// RevokeRoot), and for an id that is not of a token id's shape, whose
// problem does not name it: such an id (DELETE
// /v1/tokens/alice@example.com) may be personal data, and is never echoed
// nor written into the audit log.
func (s *Tokens) Revoke(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, id string) error {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	if err := policies.Authorize(p, policies.Request{Tenant: tenant, Action: policies.ManageTokens}); err != nil {
		return err
	}
	if !ValidTokenID(id) {
		return eventvault.Errorf(eventvault.ENOTFOUND, "no such token: token ids look like tok_ and 16 hex digits (tok_0123456789abcdef), as GET /v1/tokens lists them")
	}
	ctx, err := eventvault.WithAuditEvents(ctx, s.Audit, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: "token_revoked", Resource: "token:" + id, Outcome: "ok"})
	if err != nil {
		return err
	}
	err = s.Store.DeleteToken(ctx, tenant, id)
	// Purged even on an error, which may hide a delete that committed.
	s.Purge()
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// RevokeRoot deletes every root token and returns how many it deleted.
func (s *Tokens) RevokeRoot(ctx context.Context) (int, error) {
	n, err := s.Store.DeleteRootTokens(ctx)
	s.Purge()
	if err != nil {
		return 0, fmt.Errorf("remove root tokens: %w", err)
	}
	return n, nil
}
