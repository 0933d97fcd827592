package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

func policyVersion(tenant eventvault.TenantID, name string, version int64, body string) eventvault.PolicyVersion {
	return eventvault.PolicyVersion{
		Tenant: tenant, Name: name, Version: version, Body: body, Deleted: body == "",
		CreatedBy: "tok_test", CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func wantPolicy(t *testing.T, what string, got, want eventvault.PolicyVersion) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Name != want.Name || got.Version != want.Version || got.Body != want.Body ||
		got.Deleted != want.Deleted || got.CreatedBy != want.CreatedBy || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testPolicies(t *testing.T, open opener) {
	t.Run("versions are kept, the latest wins, deletions are versions", func(t *testing.T) {
		h := setup(t, open)
		v1 := policyVersion(tenantA, "app", 1, `permit (principal, action, resource);`)
		v2 := policyVersion(tenantA, "app", 2, `forbid (principal, action, resource);`)
		v3 := policyVersion(tenantA, "app", 3, "")
		for _, v := range []eventvault.PolicyVersion{v1, v2} {
			if err := h.store.AddPolicyVersion(h.ctx, v); err != nil {
				t.Fatalf("AddPolicyVersion %d: %v", v.Version, err)
			}
		}
		got, err := h.store.LatestPolicyVersion(h.ctx, tenantA, "app")
		if err != nil {
			t.Fatalf("LatestPolicyVersion: %v", err)
		}
		wantPolicy(t, "latest", got, v2)
		list, err := h.store.ListPolicies(h.ctx, tenantA)
		if err != nil || len(list) != 1 {
			t.Fatalf("ListPolicies = %v, %v; want app@2", list, err)
		}
		wantPolicy(t, "listed", list[0], v2)
		if err := h.store.AddPolicyVersion(h.ctx, v3); err != nil {
			t.Fatalf("AddPolicyVersion deletion: %v", err)
		}
		got, err = h.store.LatestPolicyVersion(h.ctx, tenantA, "app")
		if err != nil {
			t.Fatalf("LatestPolicyVersion after deletion: %v", err)
		}
		wantPolicy(t, "latest after deletion", got, v3)
		if list, err := h.store.ListPolicies(h.ctx, tenantA); err != nil || len(list) != 0 {
			t.Errorf("ListPolicies after deletion = %v, %v; want none", list, err)
		}
		old, err := h.store.PolicyVersion(h.ctx, tenantA, "app", 1)
		if err != nil {
			t.Fatalf("PolicyVersion 1: %v", err)
		}
		wantPolicy(t, "version 1", old, v1)
		if _, err := h.store.PolicyVersion(h.ctx, tenantA, "app", 4); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("PolicyVersion 4 = %v, want ENOTFOUND", err)
		}
	})

	t.Run("no gaps and no second writer of a version", func(t *testing.T) {
		h := setup(t, open)
		if err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantA, "app", 2, "permit (principal, action, resource);")); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Errorf("version 2 before 1 = %v, want ECONFLICT", err)
		}
		if err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantA, "app", 1, "permit (principal, action, resource);")); err != nil {
			t.Fatal(err)
		}
		// Eight writers race for version 2: exactly one wins.
		var wg sync.WaitGroup
		var mu sync.Mutex
		won, conflicts := 0, 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantA, "app", 2, fmt.Sprintf("// writer %d\npermit (principal, action, resource);", i)))
				mu.Lock()
				defer mu.Unlock()
				switch eventvault.ErrorCode(err) {
				case "":
					won++
				case eventvault.ECONFLICT:
					conflicts++
				default:
					t.Errorf("racing writer: %v", err)
				}
			}()
		}
		wg.Wait()
		if latest, err := h.store.LatestPolicyVersion(h.ctx, tenantA, "app"); err != nil || latest.Version != 2 {
			t.Errorf("after the race, the latest version is %+v, %v; want version 2", latest, err)
		}
		if won != 1 || conflicts != 7 {
			t.Errorf("%d writers won version 2 and %d got ECONFLICT; want 1 and 7", won, conflicts)
		}
	})

	t.Run("tenants do not see each other's documents", func(t *testing.T) {
		h := setup(t, open)
		if err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantA, "app", 1, "permit (principal, action, resource);")); err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.LatestPolicyVersion(h.ctx, tenantB, "app"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("tenant B reads A's document: %v, want ENOTFOUND", err)
		}
		if list, err := h.store.ListPolicies(h.ctx, tenantB); err != nil || len(list) != 0 {
			t.Errorf("tenant B lists %v, %v; want nothing", list, err)
		}
		// B's own version 1 of the same name is its own.
		if err := h.store.AddPolicyVersion(h.ctx, policyVersion(tenantB, "app", 1, "forbid (principal, action, resource);")); err != nil {
			t.Errorf("tenant B's own document: %v", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		h := setup(t, open)
		for _, v := range []eventvault.PolicyVersion{
			policyVersion("Not A Tenant", "app", 1, "permit (principal, action, resource);"),
			policyVersion(tenantA, "app", 0, "permit (principal, action, resource);"),
			{Tenant: tenantA, Name: "app", Version: 1, Body: "", Deleted: false},
		} {
			if err := h.store.AddPolicyVersion(h.ctx, v); eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Errorf("AddPolicyVersion(%+v) = %v, want EINVALID", v, err)
			}
		}
		if _, err := h.store.LatestPolicyVersion(h.ctx, tenantA, "never"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Errorf("LatestPolicyVersion of a name never written = %v, want ENOTFOUND", err)
		}
	})
}
