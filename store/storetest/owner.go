package storetest

import (
	"testing"

	"github.com/eventvault/eventvault"
)

// testStreamOwner checks StreamOwner: the owner the first naming append
// set, empty for a stream without one (even one that has only a key),
// kept through a shred and a purge, scoped to the tenant; ENOTFOUND for a
// stream that never existed, EINVALID for malformed names.
func testStreamOwner(t *testing.T, open opener) {
	h := setup(t, open)
	alice := pseudonym("alice")
	owned := h.streamKey(tenantA, "order-1")
	h.mustAppendOwned(tenantA, "order-1", owned.ID, alice, newEvents(1))
	h.mustAppend(tenantA, "order-1", owned.ID, eventvault.ExpectAny, newEvents(1)) // names nobody: the owner stays
	plain := h.streamKey(tenantA, "order-2")
	h.mustAppend(tenantA, "order-2", plain.ID, eventvault.ExpectNoStream, newEvents(1))
	h.streamKey(tenantA, "order-3") // a key, no events yet
	shredded := h.streamKey(tenantA, "loan-1")
	h.mustAppendOwned(tenantA, "loan-1", shredded.ID, alice, newEvents(1))
	h.shred(tenantA, "loan-1", false, stamp())
	purged := h.streamKey(tenantA, "loan-2")
	h.mustAppendOwned(tenantA, "loan-2", purged.ID, alice, newEvents(2))
	h.shred(tenantA, "loan-2", true, stamp())

	for _, c := range []struct {
		stream eventvault.StreamName
		want   eventvault.Pseudonym
	}{
		{"order-1", alice}, {"order-2", ""}, {"order-3", ""}, {"loan-1", alice}, {"loan-2", alice},
	} {
		got, err := h.store.StreamOwner(h.ctx, tenantA, c.stream)
		if err != nil {
			t.Fatalf("StreamOwner %s: %v", c.stream, err)
		}
		if got != c.want {
			t.Errorf("StreamOwner %s = %q, want %q", c.stream, got, c.want)
		}
	}

	for _, c := range []struct {
		name   string
		tenant eventvault.TenantID
		stream eventvault.StreamName
		code   eventvault.Code
	}{
		{"a stream that never existed", tenantA, "order-404", eventvault.ENOTFOUND},
		{"another tenant's stream", tenantB, "order-1", eventvault.ENOTFOUND},
		{"a malformed tenant", "Tenant A", "order-1", eventvault.EINVALID},
		{"a malformed stream", tenantA, "order", eventvault.EINVALID},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := h.store.StreamOwner(t.Context(), c.tenant, c.stream)
			wantCode(t, err, c.code)
			if got != "" {
				t.Errorf("StreamOwner returned %q with the error", got)
			}
		})
	}
}
