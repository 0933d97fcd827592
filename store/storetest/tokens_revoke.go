package storetest

import (
	"slices"
	"testing"

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
