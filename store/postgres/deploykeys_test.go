package postgres_test

import (
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// TestAppRoleCannotChangeADeploymentKey: the server's role reads and adds
// deployment keys, and may re-wrap one (the root's rotation), but can
// neither rename, renumber nor delete one, whatever tenant or admin scope
// its transaction claims.
func TestAppRoleCannotChangeADeploymentKey(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	if _, err := db.CreateDeploymentKey(ctx, eventvault.DeploymentKey{Name: "pseudonym", Version: 1, Wrapped: []byte("wrapped"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE deployment_keys SET name = 'signing'`,
		`UPDATE deployment_keys SET version = 2`,
		`UPDATE deployment_keys SET created_at = now()`,
		`DELETE FROM deployment_keys`,
		`TRUNCATE deployment_keys`,
	} {
		for _, admin := range []string{"", "on"} {
			tx := asApp(t, url, tenantA, "", admin)
			_, err := tx.Exec(ctx, sql)
			wantSQLState(t, sql, err, "42501")
		}
	}
	tx := asApp(t, url, "", "", "")
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM deployment_keys`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the app role reads %d deployment keys, %v; want 1", n, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO deployment_keys (name, version, wrapped_key, created_at) VALUES ('signing', 1, '\x02', now())`); err != nil {
		t.Fatalf("the app role adds a key: %v", err)
	}
	k, err := db.DeploymentKey(ctx, "pseudonym")
	if err != nil || string(k.Wrapped) != "wrapped" {
		t.Fatalf("after the refused changes: %+v, %v", k, err)
	}
}
