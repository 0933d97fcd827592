package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
)

// subscriptionTables are the tenant tables of migration 0010.
var subscriptionTables = []string{"subscription_consumers", "erasure_propagations"}

// withSubscriptionRecords gives both tenants a consumer and an erasure
// propagation, so that the RLS tests have rows of each in every table.
func withSubscriptionRecords(t *testing.T, db *postgres.DB) {
	t.Helper()
	for _, tenant := range []eventvault.TenantID{tenantA, tenantB} {
		if _, _, err := db.PutConsumer(t.Context(), eventvault.Consumer{Tenant: tenant, Name: "view", CreatedAt: time.Now(), CreatedBy: "tok"}); err != nil {
			t.Fatalf("PutConsumer %s: %v", tenant, err)
		}
		if _, err := db.CreatePropagation(t.Context(), eventvault.Propagation{Tenant: tenant, RequestID: uuid.New(), TombstonePosition: 1, Pending: []string{"view"}}); err != nil {
			t.Fatalf("CreatePropagation %s: %v", tenant, err)
		}
	}
}

// TestRLSSubscriptionTables: a tenant's transaction sees its own
// consumers and propagations only, and the admin scope none.
func TestRLSSubscriptionTables(t *testing.T) {
	db, url := twoTenants(t)
	withSubscriptionRecords(t, db)
	for _, table := range subscriptionTables {
		t.Run(table, func(t *testing.T) {
			seen := tenantsOf(t, asApp(t, url, tenantA, "", ""), table)
			if seen[string(tenantA)] == 0 {
				t.Errorf("tenant A's context sees no row of A in %s: the test proves nothing", table)
			}
			for tenant, n := range seen {
				if tenant != string(tenantA) {
					t.Errorf("tenant A's context sees %d rows of tenant %q in %s", n, tenant, table)
				}
			}
			if seen := tenantsOf(t, asApp(t, url, "", "", "on"), table); len(seen) != 0 {
				t.Errorf("the admin scope sees rows of %v in %s", seen, table)
			}
		})
	}
}
