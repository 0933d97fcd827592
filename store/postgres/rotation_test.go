package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// Migration 0002 lets the app role update wrapped keys, for rotation. The
// tests here play the attacker of rls_test.go against that opening.

func TestAdminScopeListsTenantsAndNothingElse(t *testing.T) {
	db, url := twoTenants(t)
	got, err := db.Tenants(t.Context())
	if err != nil {
		t.Fatalf("Tenants: %v", err)
	}
	if len(got) != 2 || got[0] != tenantA || got[1] != tenantB {
		t.Fatalf("Tenants = %v, want [%s %s]", got, tenantA, tenantB)
	}
	seen := tenantsOf(t, asApp(t, url, "", "", "on"), "tenants")
	if seen[string(tenantA)] != 1 || seen[string(tenantB)] != 1 {
		t.Fatalf("the admin scope sees tenants %v, want A and B once each", seen)
	}
	for _, table := range []string{"tenant_keys", "streams", "events"} {
		if seen := tenantsOf(t, asApp(t, url, "", "", "on"), table); len(seen) != 0 {
			t.Errorf("the admin scope sees rows of %v in %s", seen, table)
		}
	}
	tx := asApp(t, url, "", "", "on")
	if _, err := tx.Exec(t.Context(), `UPDATE tenants SET last_global_position = 1000`); err != nil {
		t.Fatalf("update tenants in the admin scope: %v", err)
	}
	// The admin policy is for SELECT only: the update above matched nothing.
	var pos int64
	if err := tx.QueryRow(t.Context(), `SELECT max(last_global_position) FROM tenants`).Scan(&pos); err != nil {
		t.Fatal(err)
	}
	if pos == 1000 {
		t.Fatal("the admin scope moved a tenant's global position")
	}
}

func TestAppRoleMayOnlyRewrapStreamKeysForward(t *testing.T) {
	db, url := twoTenants(t)
	ctx := t.Context()
	old, err := db.StreamKey(ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	next := old
	next.KEKVersion, next.Ciphertext = 2, []byte("rewrapped-under-kek-2")
	if err := db.RewrapStreamKey(ctx, tenantA, "order-1", old, next); err != nil {
		t.Fatalf("RewrapStreamKey: %v", err)
	}
	pgtest.Exec(t, url, `UPDATE streams SET key_id = NULL, key_version = NULL, kek_version = NULL, wrapped_key = NULL
		WHERE tenant_id = 'tenant-b'`) // tenant B's stream, shredded

	cases := []struct{ name, sql string }{
		{"put the wrapping from before the rotation back", `UPDATE streams SET kek_version = 1, wrapped_key = '\x00' WHERE tenant_id = 'tenant-a'`},
		{"replace the wrapping under the same KEK version", `UPDATE streams SET wrapped_key = '\x00' WHERE tenant_id = 'tenant-a'`},
		{"drop the KEK version", `UPDATE streams SET kek_version = NULL WHERE tenant_id = 'tenant-a'`},
		{"change the key id", `UPDATE streams SET key_id = gen_random_uuid() WHERE tenant_id = 'tenant-a'`},
		{"change the key version", `UPDATE streams SET key_version = 9 WHERE tenant_id = 'tenant-a'`},
		{"change a KEK's id", `UPDATE tenant_keys SET key_id = gen_random_uuid()`},
		{"renumber a KEK version", `UPDATE tenant_keys SET version = 9`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), tc.sql)
			wantRefused(t, tc.name, err)
		})
	}
	t.Run("give a shredded stream a key again", func(t *testing.T) {
		_, err := asApp(t, url, tenantB, "", "").Exec(t.Context(), `UPDATE streams SET kek_version = 5, wrapped_key = '\x00'`)
		wantRefused(t, "un-shred", err)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && !strings.Contains(pgErr.Message, "shredded") {
			t.Errorf("refused by %q, not by the trigger that guards shredded streams", pgErr.Message)
		}
		err = db.RewrapStreamKey(ctx, tenantB, "order-1", old, next)
		if eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Fatalf("RewrapStreamKey of a shredded stream = %v, want EERASED", err)
		}
	})
	t.Run("re-wrap another tenant's key", func(t *testing.T) {
		tag, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), `UPDATE streams SET kek_version = 7, wrapped_key = '\x00' WHERE tenant_id = 'tenant-b'`)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("tenant A's scope updated %d rows of tenant B (err %v)", tag.RowsAffected(), err)
		}
	})
	t.Run("positive control: a re-wrap under a newer KEK version passes", func(t *testing.T) {
		tag, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), `UPDATE streams SET kek_version = 3, wrapped_key = '\x01' WHERE tenant_id = 'tenant-a'`)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("a forward re-wrap: %d rows, %v; want 1 row", tag.RowsAffected(), err)
		}
	})
	got, err := db.StreamKey(ctx, tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	if !eventvault.SameKeyRow(got, next) {
		t.Fatalf("tenant A's stream key changed: KEK version %d", got.KEKVersion)
	}
}
