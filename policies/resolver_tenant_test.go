package policies

import (
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
)

// TestTwoTenantsDocumentsOfOneNameAreNeverShared plays a JWT user of one
// tenant whose group names a document that another tenant also has, at the
// same version, with other text (JWT principals have no token id and no
// rules, which once made the compiled Sets' cache key the same): each user
// is decided by their own tenant's document, whichever resolves first.
func TestTwoTenantsDocumentsOfOneNameAreNeverShared(t *testing.T) {
	for _, first := range []eventvault.TenantID{"acme", "globex"} {
		store, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
		if err != nil {
			t.Fatal(err)
		}
		r := NewResolver(store, DefaultCacheTTL, nil)
		root := eventvault.Principal{Root: true}
		if _, _, err := r.Put(t.Context(), root, "acme", "readers", `permit (principal, action == Action::"read_pii", resource);`); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Put(t.Context(), root, "globex", "readers", `permit (principal, action == Action::"read", resource is Stream);`); err != nil {
			t.Fatal(err)
		}
		users := map[eventvault.TenantID]eventvault.Principal{
			"acme":   {Tenant: "acme", Subject: "iss#alice", Policies: []string{"readers"}},
			"globex": {Tenant: "globex", Subject: "iss#mallory", Policies: []string{"readers"}},
		}
		order := []eventvault.TenantID{first, map[eventvault.TenantID]eventvault.TenantID{"acme": "globex", "globex": "acme"}[first]}
		resolved := map[eventvault.TenantID]eventvault.Principal{}
		for _, tenant := range order {
			if resolved[tenant], err = r.Resolve(t.Context(), users[tenant]); err != nil {
				t.Fatal(err)
			}
		}
		pii := func(tenant eventvault.TenantID) bool {
			return Decide(resolved[tenant], Request{Tenant: tenant, Action: ReadPII, Stream: "customer-1", Pointer: "/email", Class: eventvault.PIIEmail}).Allowed
		}
		read := func(tenant eventvault.TenantID) bool {
			return Decide(resolved[tenant], Request{Tenant: tenant, Action: Read, Stream: "customer-1"}).Allowed
		}
		if !pii("acme") || read("acme") || pii("globex") || !read("globex") {
			t.Fatalf("%s resolved first: acme read_pii %v read %v, globex read_pii %v read %v; want each tenant's own document (true false false true)",
				first, pii("acme"), read("acme"), pii("globex"), read("globex"))
		}
		store.Close()
	}
}
