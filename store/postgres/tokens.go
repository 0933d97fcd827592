package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
)

// tenantLiveSQL raises EV410 (EERASED, ErrTenantShredded) for a shredded
// tenant (0003's function); FOR SHARE waits for a shred in progress, then
// sees it. A tenant without a row yet is live, and the query returns
// nothing.
const tenantLiveSQL = `SELECT eventvault_check_tenant_live(tenant_id, shredded_at) FROM tenants WHERE tenant_id = $1 FOR SHARE`

const insertTokenSQL = `INSERT INTO api_tokens (id, token_hash, tenant_id, name, root, rules, created_at, expires_at, policies)
	VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9)`

const tokenByHashSQL = `SELECT id, token_hash, tenant_id, name, root, rules, created_at, expires_at, policies FROM api_tokens
	WHERE token_hash = $1`

const deleteRootTokensSQL = `DELETE FROM api_tokens WHERE root`

// CreateToken stores t. A root token is written in the admin scope (its
// tenant may be empty); any other in its tenant's.
// Errors: ECONFLICT if its id or hash exists.
func (db *DB) CreateToken(ctx context.Context, t eventvault.Token) error {
	const op = "postgres.CreateToken"
	if t.ID == "" || len(t.Hash) == 0 {
		return eventvault.Errorf(eventvault.EINVALID, "a token needs an id and a hash")
	}
	if !t.Root {
		if err := eventvault.ValidateTenant(t.Tenant); err != nil {
			return err
		}
	}
	rules := t.Rules
	if rules == nil {
		rules = []eventvault.Rule{}
	}
	rulesJSON, err := json.Marshal(rules)
	if err != nil {
		return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: "the token's rules do not encode as JSON", Err: err}
	}
	sc := scope{tenant: t.Tenant, admin: t.Root}
	err = db.run(ctx, txSpec{op: op, scope: sc}, func(ctx context.Context, tx *txn) error {
		b := &pgx.Batch{}
		if !t.Root {
			// A shredded tenant takes no new token (root tokens stay).
			b.Queue(tenantLiveSQL, string(t.Tenant))
		}
		b.Queue(insertTokenSQL, t.ID, t.Hash, string(t.Tenant), t.Name, t.Root, string(rulesJSON), nullTime(t.CreatedAt), nullTime(t.ExpiresAt), policyNames(t.Policies))
		return tx.send(ctx, b, true)
	})
	if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
		return &eventvault.Error{Code: eventvault.ECONFLICT, Op: op, Message: fmt.Sprintf("a token with id %s or the same hash exists already", t.ID), Err: err}
	}
	if errors.Is(err, eventvault.ErrTenantShredded) {
		return eventvault.TenantShreddedError(op, t.Tenant, err)
	}
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

// TokenByHash returns the token with this hash. The lookup runs before any
// tenant is known, in a scope that sees the one token with this hash.
// Errors: ENOTFOUND.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (eventvault.Token, error) {
	const op = "postgres.TokenByHash"
	var tok eventvault.Token
	var found bool
	if len(hash) == 0 {
		return tok, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no such token"}
	}
	err := db.run(ctx, txSpec{op: op, scope: scope{tokenHash: hash}, readOnly: true}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(tokenByHashSQL, hash).QueryRow(func(r pgx.Row) error {
			var err error
			tok, err = scanToken(r)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			return nil
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return eventvault.Token{}, fmt.Errorf("look up token: %w", err)
	}
	if !found {
		// The hash is not named: it identifies a secret.
		return eventvault.Token{}, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: "no such token"}
	}
	return tok, nil
}

// DeleteRootTokens removes every root token, in the admin scope, which sees
// root tokens only, and returns how many it removed.
func (db *DB) DeleteRootTokens(ctx context.Context) (int, error) {
	const op = "postgres.DeleteRootTokens"
	var n int
	err := db.run(ctx, txSpec{op: op, scope: scope{admin: true}}, func(ctx context.Context, t *txn) error {
		b := &pgx.Batch{}
		b.Queue(deleteRootTokensSQL).Exec(func(ct pgconn.CommandTag) error {
			n = int(ct.RowsAffected())
			return nil
		})
		return t.send(ctx, b, true)
	})
	if err != nil {
		return 0, fmt.Errorf("delete root tokens: %w", err)
	}
	return n, nil
}

// scanToken reads a row of tokenByHashSQL's columns.
func scanToken(r pgx.Row) (eventvault.Token, error) {
	var tok eventvault.Token
	var tenant string
	var rules []byte
	var expires *time.Time
	if err := r.Scan(&tok.ID, &tok.Hash, &tenant, &tok.Name, &tok.Root, &rules, &tok.CreatedAt, &expires, &tok.Policies); err != nil {
		return eventvault.Token{}, err
	}
	tok.Tenant = eventvault.TenantID(tenant)
	if expires != nil {
		tok.ExpiresAt = *expires
	}
	if err := json.Unmarshal(rules, &tok.Rules); err != nil {
		return eventvault.Token{}, fmt.Errorf("decode rules of token %s: %w", tok.ID, err)
	}
	if len(tok.Rules) == 0 {
		tok.Rules = nil
	}
	if len(tok.Policies) == 0 {
		tok.Policies = nil
	}
	return tok, nil
}

// policyNames is names as a text[] that is never NULL.
func policyNames(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}
