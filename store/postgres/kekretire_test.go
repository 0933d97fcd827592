package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// The tests here play the attacker of rls_test.go against what migration
// 0004 opens: a SECURITY DEFINER function that deletes KEK versions, and
// a fence that refuses stream keys under destroyed ones.

const (
	tenantC eventvault.TenantID = "tenant-c"
	tenantD eventvault.TenantID = "tenant-d"
)

// withKEKVersions gives tenant KEK versions 1 and 2 and a stream order-1,
// whose key is under version 1 if blocking is set, or else under version 2.
func withKEKVersions(t *testing.T, db *postgres.DB, tenant eventvault.TenantID, blocking bool) {
	t.Helper()
	ctx := t.Context()
	first, err := db.CreateTenantKey(ctx, tenant, wrappedKey("kek-"+string(tenant)))
	if err != nil {
		t.Fatalf("CreateTenantKey %s: %v", tenant, err)
	}
	if err := db.AddTenantKey(ctx, tenant, eventvault.WrappedKey{ID: first.ID, Version: 2, Ciphertext: []byte("kek-v2-" + string(tenant)), CreatedAt: time.Now()}); err != nil {
		t.Fatalf("AddTenantKey %s: %v", tenant, err)
	}
	k := wrappedKey("stream-" + string(tenant))
	if !blocking {
		k.KEKVersion = 2
	}
	if _, err := db.CreateStreamKey(ctx, tenant, "order-1", k); err != nil {
		t.Fatalf("CreateStreamKey %s: %v", tenant, err)
	}
}

// kekRows counts the tenant's KEK versions as the superuser sees them.
func kekRows(t *testing.T, url string, tenant eventvault.TenantID) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM tenant_keys WHERE tenant_id = $1`, string(tenant)).Scan(&n); err != nil {
		t.Fatalf("count the KEK versions of %s: %v", tenant, err)
	}
	return n
}

func wantSQLState(t *testing.T, what string, err error, codes ...string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		for _, c := range codes {
			if pgErr.Code == c {
				return
			}
		}
	}
	t.Errorf("%s: err = %v, want SQLSTATE %v", what, err, codes)
}

// TestAppRoleCannotDestroyKEKVersionsAtWill: the app role cannot delete a
// KEK version or move the fence itself; the function refuses without a
// tenant and while a stream key needs a version, even behind a temporary
// table; it destroys the transaction's tenant's versions only, and never
// the newest; a stream key under a destroyed version is refused, even
// behind a temporary table.
func TestAppRoleCannotDestroyKEKVersionsAtWill(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	withKEKVersions(t, db, tenantA, false)
	withKEKVersions(t, db, tenantB, false)
	withKEKVersions(t, db, tenantC, true)
	if _, err := db.CreateTenantKey(ctx, tenantD, wrappedKey("kek-d")); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	if _, err := db.ShredTenant(ctx, tenantD, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}

	const shadowStreams = `CREATE TEMP TABLE streams (tenant_id text, name text, kek_version bigint, wrapped_key bytea)`
	const shadowTenants = `CREATE TEMP TABLE tenants (tenant_id text, shredded_at timestamptz, kek_retired_before bigint)`
	insertUnderV1 := func(tenant eventvault.TenantID) string {
		return `INSERT INTO streams (tenant_id, name, key_id, key_version, kek_version, wrapped_key, key_created_at)
			VALUES ('` + string(tenant) + `', 'forged-1', gen_random_uuid(), 1, 1, '\x01', now())`
	}
	cases := []struct {
		name   string
		tenant eventvault.TenantID
		sql    []string
		codes  []string
	}{
		{"delete an old KEK version", tenantA, []string{`DELETE FROM tenant_keys WHERE version = 1`}, []string{"42501"}},
		{"delete every KEK version", tenantB, []string{`DELETE FROM tenant_keys`}, []string{"42501"}},
		{"lower the fence", tenantA, []string{`UPDATE tenants SET kek_retired_before = 0`}, []string{"42501"}},
		{"raise the fence", tenantA, []string{`UPDATE tenants SET kek_retired_before = 99`}, []string{"42501"}},
		{"destroy without a tenant", "", []string{`SELECT eventvault_destroy_tenant_keys_before(2)`}, []string{"42501"}},
		{"destroy while a stream key is under an old version", tenantC, []string{`SELECT eventvault_destroy_tenant_keys_before(2)`}, []string{"EV409"}},
		{"destroy behind a temporary streams table", tenantC, []string{shadowStreams, `SELECT eventvault_destroy_tenant_keys_before(2)`}, []string{"EV409"}},
		{"give a shredded tenant a stream key behind a temporary tenants table", tenantD, []string{shadowTenants, insertUnderV1(tenantD)}, []string{"EV410"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx := asApp(t, url, tc.tenant, "", "")
			var err error
			for i, sql := range tc.sql {
				_, err = tx.Exec(t.Context(), sql)
				if i < len(tc.sql)-1 && err != nil {
					t.Fatalf("setting up the attack (%s): %v", sql, err)
				}
			}
			wantSQLState(t, tc.name, err, tc.codes...)
		})
	}
	for _, tenant := range []eventvault.TenantID{tenantA, tenantB, tenantC} {
		if n := kekRows(t, url, tenant); n != 2 {
			t.Fatalf("after the refused attempts, %s has %d KEK versions, want 2", tenant, n)
		}
	}

	t.Run("the function acts on the transaction's tenant only", func(t *testing.T) {
		tx := asApp(t, url, tenantA, "", "")
		var n *int32
		if err := tx.QueryRow(t.Context(), `SELECT eventvault_destroy_tenant_keys_before(2)`).Scan(&n); err != nil || n == nil || *n != 1 {
			t.Fatalf("destroy A's versions before 2 in A's transaction: %v, %v; want 1", n, err)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("commit: %v", err)
		}
		for tenant, want := range map[eventvault.TenantID]int{tenantA: 1, tenantB: 2, tenantC: 2} {
			if got := kekRows(t, url, tenant); got != want {
				t.Errorf("%s has %d KEK versions, want %d", tenant, got, want)
			}
		}
	})
	t.Run("the function never destroys the newest version", func(t *testing.T) {
		tx := asApp(t, url, tenantB, "", "")
		var n *int32
		if err := tx.QueryRow(t.Context(), `SELECT eventvault_destroy_tenant_keys_before(3)`).Scan(&n); err != nil || n != nil {
			t.Fatalf("destroy B's versions before 3 (its newest is 2): %v, %v; want NULL", n, err)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if got := kekRows(t, url, tenantB); got != 2 {
			t.Errorf("B has %d KEK versions, want 2", got)
		}
	})
	t.Run("a stream key under a destroyed version is refused", func(t *testing.T) {
		_, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), insertUnderV1(tenantA))
		wantSQLState(t, "insert a stream key under A's destroyed version 1", err, "EV409")
	})
	t.Run("a stream key under a destroyed version is refused behind a temporary tenants table", func(t *testing.T) {
		tx := asApp(t, url, tenantA, "", "")
		if _, err := tx.Exec(t.Context(), shadowTenants); err != nil {
			t.Fatalf("create the temporary table: %v", err)
		}
		_, err := tx.Exec(t.Context(), insertUnderV1(tenantA))
		wantSQLState(t, "insert a stream key under A's destroyed version 1 behind a temporary tenants table", err, "EV409")
	})
	t.Run("positive control: another tenant still takes keys under version 1", func(t *testing.T) {
		tx := asApp(t, url, tenantB, "", "")
		if _, err := tx.Exec(t.Context(), insertUnderV1(tenantB)); err != nil {
			t.Fatalf("insert a stream key under B's live version 1: %v", err)
		}
	})
}

// TestKEKDestructionAndStreamKeyCreationWaitForEachOther checks the lock
// that keeps a stream key from slipping in under a version being destroyed:
// each of the two, started while the other's transaction is open, waits for
// it to commit and then sees it.
func TestKEKDestructionAndStreamKeyCreationWaitForEachOther(t *testing.T) {
	t.Run("the destruction waits for a stream key being created, then refuses", func(t *testing.T) {
		db, url := openDB(t)
		withKEKVersions(t, db, tenantA, false)
		tx := asApp(t, url, tenantA, "", "")
		if _, err := tx.Exec(t.Context(), `INSERT INTO streams (tenant_id, name, key_id, key_version, kek_version, wrapped_key, key_created_at)
			VALUES ('tenant-a', 'order-late', gen_random_uuid(), 1, 1, '\x01', now())`); err != nil {
			t.Fatalf("insert a stream key under version 1: %v", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := db.DestroyTenantKeysBefore(t.Context(), tenantA, 2)
			done <- err
		}()
		awaitLockWait(t, url)
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("commit the stream key: %v", err)
		}
		if err := receive(t, done); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("DestroyTenantKeysBefore after the stream key committed = %v, want ECONFLICT", err)
		}
		if n := kekRows(t, url, tenantA); n != 2 {
			t.Fatalf("A has %d KEK versions, want 2", n)
		}
	})
	t.Run("a stream key creation waits for a destruction, then refuses", func(t *testing.T) {
		db, url := openDB(t)
		withKEKVersions(t, db, tenantA, false)
		tx := asApp(t, url, tenantA, "", "")
		var n *int32
		if err := tx.QueryRow(t.Context(), `SELECT eventvault_destroy_tenant_keys_before(2)`).Scan(&n); err != nil || n == nil || *n != 1 {
			t.Fatalf("destroy version 1: %v, %v; want 1", n, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := db.CreateStreamKey(t.Context(), tenantA, "order-late", wrappedKey("late"))
			done <- err
		}()
		awaitLockWait(t, url)
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatalf("commit the destruction: %v", err)
		}
		if err := receive(t, done); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
			t.Fatalf("CreateStreamKey under version 1 after its destruction committed = %v, want ECONFLICT", err)
		}
		if _, err := db.StreamKey(t.Context(), tenantA, "order-late"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("StreamKey of the refused stream = %v, want ENOTFOUND", err)
		}
	})
}

// awaitLockWait waits until a backend of the database waits for a lock.
func awaitLockWait(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	for range 400 {
		var waiting int
		err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		if waiting > 0 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("no backend waited for the lock within 10s: the call did not block on the open transaction")
}

func receive(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting call did not return within 30s of the commit")
		return nil
	}
}

// TestKEKDestructionNotifiesEvictions: a destruction that destroys
// something notifies the tenant on the eviction channel, so that every node
// drops the keys it cached from rows under the destroyed versions; one that
// destroys nothing, or is refused, does not.
func TestKEKDestructionNotifiesEvictions(t *testing.T) {
	db, url := openDB(t)
	withKEKVersions(t, db, tenantA, false)
	withKEKVersions(t, db, tenantB, true)
	listener, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	streams := make(chan eventvault.StreamName, 100)
	tenants := make(chan eventvault.TenantID, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- listener.ListenEvictions(ctx,
			func(_ eventvault.TenantID, s eventvault.StreamName) { streams <- s },
			func(tenant eventvault.TenantID) { tenants <- tenant })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// LISTEN takes effect some time after the goroutine starts: shred probe
	// streams until one is heard.
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		stream := eventvault.StreamName("probe-" + uuid.NewString()[:8])
		if _, err := db.CreateStreamKey(t.Context(), tenantC, stream, wrappedKey("probe")); err != nil {
			t.Fatalf("CreateStreamKey: %v", err)
		}
		if _, err := db.ShredStream(t.Context(), tenantC, stream, false, time.Now()); err != nil {
			t.Fatalf("ShredStream: %v", err)
		}
		select {
		case s := <-streams:
			ready = s == stream
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !ready {
		t.Fatal("the listener heard no shred within 10s")
	}
	heard := func(want eventvault.TenantID, within time.Duration) bool {
		deadline := time.After(within)
		for {
			select {
			case got := <-tenants:
				if got == want {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}

	if _, err := db.DestroyTenantKeysBefore(t.Context(), tenantB, 2); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("DestroyTenantKeysBefore of B = %v, want ECONFLICT", err)
	}
	if heard(tenantB, 300*time.Millisecond) {
		t.Error("a refused destruction notified an eviction")
	}
	if n, err := db.DestroyTenantKeysBefore(t.Context(), tenantA, 2); err != nil || n != 1 {
		t.Fatalf("DestroyTenantKeysBefore of A: %d, %v; want 1", n, err)
	}
	if !heard(tenantA, 5*time.Second) {
		t.Error("no eviction of tenant-a within 5s of the destruction of its version 1")
	}
	if n, err := db.DestroyTenantKeysBefore(t.Context(), tenantA, 2); err != nil || n != 0 {
		t.Fatalf("DestroyTenantKeysBefore of A again: %d, %v; want 0", n, err)
	}
	if heard(tenantA, 300*time.Millisecond) {
		t.Error("a destruction that destroyed nothing notified an eviction")
	}
}

// TestKEKDestructionLeavesNoKEKInAnyTable scans every row of every table,
// as the superuser, for the wrapped KEK versions a destruction deleted.
func TestKEKDestructionLeavesNoKEKInAnyTable(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	v1, v2, v3 := randomBytes(t), randomBytes(t), randomBytes(t)
	first, err := db.CreateTenantKey(ctx, tenantA, eventvault.WrappedKey{ID: uuid.New(), Version: 1, Ciphertext: v1})
	if err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	if err := db.AddTenantKey(ctx, tenantA, eventvault.WrappedKey{ID: first.ID, Version: 2, Ciphertext: v2}); err != nil {
		t.Fatalf("AddTenantKey 2: %v", err)
	}
	if err := db.AddTenantKey(ctx, tenantA, eventvault.WrappedKey{ID: first.ID, Version: 3, Ciphertext: v3}); err != nil {
		t.Fatalf("AddTenantKey 3: %v", err)
	}
	if found := pgtest.Scan(t, url, v1, v2, v3); len(found) != 3 {
		t.Fatalf("positive control: the scan finds %v, want each KEK version once", found)
	}
	if n, err := db.DestroyTenantKeysBefore(ctx, tenantA, 3); err != nil || n != 2 {
		t.Fatalf("DestroyTenantKeysBefore 3: %d, %v; want 2", n, err)
	}
	for _, where := range pgtest.Scan(t, url, v1, v2) {
		t.Errorf("after the destruction, the database still holds a destroyed KEK version: %s", where)
	}
	if found := pgtest.Scan(t, url, v3); len(found) != 1 {
		t.Errorf("the newest KEK version: the scan finds %v, want it once", found)
	}
}
