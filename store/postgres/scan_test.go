package postgres_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestScanSeesWhatTheStoreWrites is the positive control for tests that use
// pgtest.Scan to prove no plaintext is stored: on this store's schema, the
// scan finds the bytes the store was given, in the tables it put them in.
func TestScanSeesWhatTheStoreWrites(t *testing.T) {
	db, url := twoTenants(t)
	k, err := db.StreamKey(t.Context(), tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	cases := []struct {
		name   string
		needle string
		table  string // "" for no match
	}{
		{"sealed payload", "sealed-1", "events"},
		{"content MAC", "mac-2", "events"},
		{"wrapped stream key", string(k.Ciphertext), "streams"},
		{"wrapped tenant KEK", "wrapped:kek-tenant-b", "tenant_keys"},
		{"bytes never stored", "plaintext that never reached the store", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			found := pgtest.Scan(t, url, []byte(tc.needle))
			if tc.table == "" {
				if len(found) != 0 {
					t.Errorf("Scan found %q at %v", tc.needle, found)
				}
				return
			}
			if !slices.ContainsFunc(found, func(s string) bool { return strings.HasPrefix(s, "table public."+tc.table+" ") }) {
				t.Errorf("Scan for %q found %v, want a row of %s", tc.needle, found, tc.table)
			}
		})
	}
}
