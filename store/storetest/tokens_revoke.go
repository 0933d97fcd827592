package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// testDeleteTenantTokens checks DeleteTenantTokens: it removes every
// non-root token of the tenant and counts them; another tenant's tokens
// and root tokens (even one naming the tenant) stay; a second call removes
// nothing; EINVALID for a malformed tenant.
func testDeleteTenantTokens(t *testing.T, open opener) {
	h := setup(t, open)
	gone := []eventvault.Token{newToken(tenantA, "svc-a", false, nil), newToken(tenantA, "dpo-a", false, []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapErase}, Streams: "*"},
	})}
	kept := []eventvault.Token{newToken(tenantB, "svc-b", false, nil), newToken(tenantA, "root-a", true, nil), newToken("", "root", true, nil)}
	for _, tok := range slices.Concat(gone, kept) {
		if err := h.store.CreateToken(h.ctx, tok); err != nil {
			t.Fatalf("CreateToken %s: %v", tok.Name, err)
		}
	}
	n, err := h.store.DeleteTenantTokens(h.ctx, tenantA)
	if err != nil {
		t.Fatalf("DeleteTenantTokens: %v", err)
	}
	if n != len(gone) {
		t.Errorf("DeleteTenantTokens removed %d, want %d", n, len(gone))
	}
	for _, tok := range gone {
		_, err := h.store.TokenByHash(h.ctx, tok.Hash)
		wantCode(t, err, eventvault.ENOTFOUND)
	}
	for _, tok := range kept {
		got, err := h.store.TokenByHash(h.ctx, tok.Hash)
		if err != nil {
			t.Fatalf("TokenByHash %s after DeleteTenantTokens: %v", tok.Name, err)
		}
		wantToken(t, "kept token", got, tok)
	}
	if n, err := h.store.DeleteTenantTokens(h.ctx, tenantA); err != nil || n != 0 {
		t.Errorf("DeleteTenantTokens again = %d, %v; want 0, nil", n, err)
	}
	// A deleted token's id is free again.
	again := newToken(tenantA, "svc-a", false, nil)
	again.ID = gone[0].ID
	if err := h.store.CreateToken(h.ctx, again); err != nil {
		t.Fatalf("CreateToken reusing a deleted token's id: %v", err)
	}
	_, err = h.store.DeleteTenantTokens(h.ctx, "Tenant A")
	wantCode(t, err, eventvault.EINVALID)
}

// testTokenLifecycle checks ListTokens, DeleteToken and ExpiresAt: a list
// holds the tenant's own tokens, oldest first, with their expiry, never a
// root token nor another tenant's; DeleteToken removes one token of the
// tenant and answers ENOTFOUND for another tenant's, a root token, an
// unknown or an already deleted id.
func testTokenLifecycle(t *testing.T, open opener) {
	h := setup(t, open)
	base := time.Now().UTC().Truncate(time.Microsecond)
	a1 := newToken(tenantA, "svc-a", false, nil)
	a1.CreatedAt = base.Add(-2 * time.Hour)
	a2 := newToken(tenantA, "ops-a", false, []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"}})
	a2.CreatedAt = base.Add(-time.Hour)
	a2.ExpiresAt = base.Add(720 * time.Hour)
	b1 := newToken(tenantB, "svc-b", false, nil)
	rootA := newToken(tenantA, "root", true, nil)
	for _, tok := range []eventvault.Token{a2, b1, rootA, a1} {
		if err := h.store.CreateToken(h.ctx, tok); err != nil {
			t.Fatalf("CreateToken %s: %v", tok.Name, err)
		}
	}
	got, err := h.store.TokenByHash(h.ctx, a2.Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	wantToken(t, "a token with an expiry", got, a2)
	if !got.ExpiresAt.Equal(a2.ExpiresAt) {
		t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, a2.ExpiresAt)
	}
	if got, err := h.store.TokenByHash(h.ctx, a1.Hash); err != nil || !got.ExpiresAt.IsZero() {
		t.Errorf("a token without an expiry: ExpiresAt %v, %v; want zero", got.ExpiresAt, err)
	}

	list, err := h.store.ListTokens(h.ctx, tenantA)
	if err != nil {
		t.Fatalf("ListTokens: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("ListTokens(%s) = %d tokens %+v, want 2 (its own, no root token)", tenantA, len(list), list)
	}
	wantToken(t, "first listed", list[0], a1)
	wantToken(t, "second listed", list[1], a2)
	if !list[1].ExpiresAt.Equal(a2.ExpiresAt) {
		t.Errorf("listed ExpiresAt = %v, want %v", list[1].ExpiresAt, a2.ExpiresAt)
	}
	if list, err := h.store.ListTokens(h.ctx, "tenant-none"); err != nil || len(list) != 0 {
		t.Errorf("ListTokens of a tenant without tokens = %v, %v; want empty", list, err)
	}

	wantCode(t, h.store.DeleteToken(h.ctx, tenantA, b1.ID), eventvault.ENOTFOUND)
	wantCode(t, h.store.DeleteToken(h.ctx, tenantA, rootA.ID), eventvault.ENOTFOUND)
	wantCode(t, h.store.DeleteToken(h.ctx, tenantA, "tok_unknown"), eventvault.ENOTFOUND)
	wantCode(t, h.store.DeleteToken(h.ctx, tenantA, ""), eventvault.ENOTFOUND)
	if err := h.store.DeleteToken(h.ctx, tenantA, a2.ID); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	_, err = h.store.TokenByHash(h.ctx, a2.Hash)
	wantCode(t, err, eventvault.ENOTFOUND)
	wantCode(t, h.store.DeleteToken(h.ctx, tenantA, a2.ID), eventvault.ENOTFOUND)
	for _, tok := range []eventvault.Token{a1, b1, rootA} {
		if _, err := h.store.TokenByHash(h.ctx, tok.Hash); err != nil {
			t.Errorf("TokenByHash %s after revoking another: %v", tok.Name, err)
		}
	}
	if list, err := h.store.ListTokens(h.ctx, tenantA); err != nil || len(list) != 1 || list[0].ID != a1.ID {
		t.Errorf("ListTokens after DeleteToken = %+v, %v; want %s only", list, err, a1.ID)
	}
	wantCode(t, h.store.DeleteToken(h.ctx, "Tenant A", a1.ID), eventvault.EINVALID)
	_, err = h.store.ListTokens(h.ctx, "Tenant A")
	wantCode(t, err, eventvault.EINVALID)
}
