package storetest

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// newToken returns a token record for a random secret.
func newToken(tenant eventvault.TenantID, name string, root bool, rules []eventvault.Rule) eventvault.Token {
	secret := uuid.New()
	hash := sha256.Sum256(secret[:])
	return eventvault.Token{
		ID:        "tok_" + uuid.NewString()[:8],
		Hash:      hash[:],
		Tenant:    tenant,
		Name:      name,
		Root:      root,
		Rules:     rules,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func tokensEqual(a, b eventvault.Token) bool {
	return a.ID == b.ID && bytes.Equal(a.Hash, b.Hash) && a.Tenant == b.Tenant &&
		a.Name == b.Name && a.Root == b.Root && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && slices.Equal(a.Policies, b.Policies) &&
		slices.EqualFunc(a.Rules, b.Rules, func(x, y eventvault.Rule) bool {
			return x.Streams == y.Streams && slices.Equal(x.Capabilities, y.Capabilities)
		})
}

func wantToken(t *testing.T, what string, got, want eventvault.Token) {
	t.Helper()
	if !tokensEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testTokens(t *testing.T, open opener) {
	rules := []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead}, Streams: "order-*"},
		{Capabilities: []eventvault.Capability{eventvault.CapReadPII}, Streams: "user-42"},
	}

	t.Run("round trip", func(t *testing.T) {
		h := setup(t, open)
		tok := newToken(tenantA, "billing service", false, rules)
		tok.Policies = []string{"app", "analyst"}
		if err := h.store.CreateToken(h.ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		got, err := h.store.TokenByHash(h.ctx, tok.Hash)
		if err != nil {
			t.Fatalf("TokenByHash: %v", err)
		}
		wantToken(t, "TokenByHash", got, tok)

		// A root token has no tenant: it is admin over every tenant.
		root := newToken("", "root", true, nil)
		if err := h.store.CreateToken(h.ctx, root); err != nil {
			t.Fatalf("CreateToken root: %v", err)
		}
		got, err = h.store.TokenByHash(h.ctx, root.Hash)
		if err != nil {
			t.Fatalf("TokenByHash root: %v", err)
		}
		wantToken(t, "TokenByHash root", got, root)
	})

	t.Run("unknown hash", func(t *testing.T) {
		h := setup(t, open)
		tok := newToken(tenantA, "svc", false, rules)
		if err := h.store.CreateToken(h.ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		other := sha256.Sum256([]byte("not a token"))
		_, err := h.store.TokenByHash(h.ctx, other[:])
		wantCode(t, err, eventvault.ENOTFOUND)
	})

	dupCases := []struct {
		name string
		dup  func(orig eventvault.Token) eventvault.Token
	}{
		{"same hash", func(orig eventvault.Token) eventvault.Token {
			d := newToken(tenantB, "impostor", true, nil)
			d.Hash = slices.Clone(orig.Hash)
			return d
		}},
		{"same id", func(orig eventvault.Token) eventvault.Token {
			d := newToken(tenantB, "impostor", true, nil)
			d.ID = orig.ID
			return d
		}},
	}
	for _, tc := range dupCases {
		t.Run("duplicate "+tc.name, func(t *testing.T) {
			h := setup(t, open)
			orig := newToken(tenantA, "svc", false, rules)
			if err := h.store.CreateToken(h.ctx, orig); err != nil {
				t.Fatalf("CreateToken: %v", err)
			}
			dup := tc.dup(orig)
			wantCode(t, h.store.CreateToken(h.ctx, dup), eventvault.ECONFLICT)

			got, err := h.store.TokenByHash(h.ctx, orig.Hash)
			if err != nil {
				t.Fatalf("TokenByHash of the original: %v", err)
			}
			wantToken(t, "original after the duplicate", got, orig)
			if !bytes.Equal(dup.Hash, orig.Hash) {
				_, err := h.store.TokenByHash(h.ctx, dup.Hash)
				wantCode(t, err, eventvault.ENOTFOUND)
			}
		})
	}

	t.Run("DeleteRootTokens", func(t *testing.T) {
		h := setup(t, open)
		roots := []eventvault.Token{newToken("", "root", true, nil), newToken(tenantA, "root-a", true, nil)}
		others := []eventvault.Token{newToken(tenantA, "svc-a", false, rules), newToken(tenantB, "svc-b", false, nil)}
		for _, tok := range slices.Concat(roots, others) {
			if err := h.store.CreateToken(h.ctx, tok); err != nil {
				t.Fatalf("CreateToken %s: %v", tok.Name, err)
			}
		}
		for i := range 2 { // a second call, with no root token left, succeeds too
			n, err := h.store.DeleteRootTokens(h.ctx)
			if err != nil {
				t.Fatalf("DeleteRootTokens: %v", err)
			}
			if want := []int{len(roots), 0}[i]; n != want {
				t.Fatalf("DeleteRootTokens call %d removed %d, want %d", i+1, n, want)
			}
			for _, tok := range roots {
				_, err := h.store.TokenByHash(h.ctx, tok.Hash)
				wantCode(t, err, eventvault.ENOTFOUND)
			}
			for _, tok := range others {
				got, err := h.store.TokenByHash(h.ctx, tok.Hash)
				if err != nil {
					t.Fatalf("TokenByHash %s after DeleteRootTokens: %v", tok.Name, err)
				}
				wantToken(t, "kept token", got, tok)
			}
		}
		// A deleted root token's id is free again.
		again := newToken("", "root", true, nil)
		again.ID = roots[0].ID
		if err := h.store.CreateToken(h.ctx, again); err != nil {
			t.Fatalf("CreateToken reusing a deleted root token's id: %v", err)
		}
	})
}
