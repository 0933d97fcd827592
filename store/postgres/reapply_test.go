package postgres_test

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// restoreCopy dumps the database at url with pg_dump and restores it into
// a fresh database, opened as the store.
func restoreCopy(t *testing.T, url string) *postgres.DB {
	t.Helper()
	dump := filepath.Join(t.TempDir(), "db.dump")
	if out, err := exec.Command("pg_dump", "--format=custom", "-f", dump, "-d", url).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	restored := pgtest.URL(t)
	if out, err := exec.Command("pg_restore", "--exit-on-error", "-d", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	db, err := postgres.Open(t.Context(), restored, postgres.Options{})
	if err != nil {
		t.Fatalf("open the restored database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestReapplyErasuresToARestoredBackup: what the live database erased
// after the dump (a tenant shred, a stream shred with purge, the purge of a
// stream shredded before, a request received before and completed after)
// is re-applied to the restored copy, which then records the same; a
// second run does nothing.
func TestReapplyErasuresToARestoredBackup(t *testing.T) {
	live, liveURL := twoTenants(t)
	ctx := t.Context()
	k, err := live.CreateStreamKey(ctx, tenantA, "order-2", wrappedKey("order-2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Append(ctx, tenantA, appendRequest("order-2", k.ID, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := live.ShredStream(ctx, tenantA, "order-2", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	req := eventvault.ErasureRequest{ID: uuid.New(), Tenant: tenantA, Subject: "p-ann", State: eventvault.ErasureReceived, RequestedBy: "tok", ReceivedAt: time.Now()}
	if err := live.CreateErasureRequest(ctx, req); err != nil {
		t.Fatal(err)
	}

	if _, err := live.CreateSubjectKey(ctx, tenantA, "p-ann", wrappedKey("subject-ann")); err != nil {
		t.Fatal(err)
	}

	restored := restoreCopy(t, liveURL)

	// Subject keys erased after the backup: one the backup holds, one
	// given after it (fenced all the same).
	if _, err := live.CreateSubjectKey(ctx, tenantA, "p-late", wrappedKey("subject-late")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []eventvault.Pseudonym{"p-ann", "p-late"} {
		if _, err := live.EraseSubjectPII(ctx, tenantA, s, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}

	// After the backup.
	if _, err := live.ShredStream(ctx, tenantA, "order-1", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.ShredStream(ctx, tenantA, "order-2", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	req.State, req.CompletedAt, req.Certificate = eventvault.ErasureCompleted, time.Now(), []byte(`{"signed":"yes"}`)
	if err := live.UpdateErasureRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := live.ShredTenant(ctx, tenantB, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Born after the backup and erased: a stream of A, and tenant C.
	for _, tenant := range []eventvault.TenantID{tenantA, "tenant-c"} {
		if tenant != tenantA {
			if _, err := live.CreateTenantKey(ctx, tenant, wrappedKey("kek-c")); err != nil {
				t.Fatal(err)
			}
		}
		k, err := live.CreateStreamKey(ctx, tenant, "late-1", wrappedKey("late-1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := live.Append(ctx, tenant, appendRequest("late-1", k.ID, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := live.ShredStream(ctx, tenantA, "late-1", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.ShredTenant(ctx, "tenant-c", time.Time{}); err != nil {
		t.Fatal(err)
	}

	n, err := restored.ReapplyErasures(ctx, live, t.Logf)
	if err != nil {
		t.Fatalf("ReapplyErasures: %v", err)
	}
	if want := (postgres.Reapplied{TenantsShredded: 2, StreamsShredded: 3, StreamsAbsent: 2, TenantsAbsent: 1, RequestsWritten: 1, SubjectsErased: 2}); n != want {
		t.Errorf("ReapplyErasures did %+v, want %+v", n, want)
	}
	for _, tenant := range []eventvault.TenantID{tenantA, tenantB, "tenant-c"} {
		a, err := live.Erasures(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		b, err := restored.Erasures(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if !a.ShreddedAt.Equal(b.ShreddedAt) || len(a.Streams) != len(b.Streams) || len(a.Requests) != len(b.Requests) {
			t.Fatalf("tenant %s: live %+v, restored %+v", tenant, a, b)
		}
		for i := range a.Streams {
			if a.Streams[i].Name != b.Streams[i].Name || a.Streams[i].Purged != b.Streams[i].Purged || !a.Streams[i].ShreddedAt.Equal(b.Streams[i].ShreddedAt) {
				t.Errorf("tenant %s stream: live %+v, restored %+v", tenant, a.Streams[i], b.Streams[i])
			}
		}
		for i := range a.Requests {
			if a.Requests[i].State != b.Requests[i].State || string(a.Requests[i].Certificate) != string(b.Requests[i].Certificate) {
				t.Errorf("tenant %s request: live %+v, restored %+v", tenant, a.Requests[i], b.Requests[i])
			}
		}
	}
	page, err := restored.ReadStream(ctx, tenantA, "order-1", eventvault.ReadOptions{Limit: 10})
	if err == nil && len(page.Events) != 0 {
		t.Errorf("the restored order-1 still holds %d events after a purge was re-applied", len(page.Events))
	}
	for _, tenant := range []eventvault.TenantID{tenantB, "tenant-c"} {
		if _, err := restored.CreateTenantKey(ctx, tenant, wrappedKey("again")); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("a new key for the re-shredded tenant %s: %v; want EERASED", tenant, err)
		}
	}
	for _, s := range []eventvault.Pseudonym{"p-ann", "p-late"} {
		if _, err := restored.CreateSubjectKey(ctx, tenantA, s, wrappedKey("again")); eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("a new key for the erased subject %s: %v; want EERASED", s, err)
		}
	}
	if _, err := restored.CreateStreamKey(ctx, tenantA, "late-1", wrappedKey("again")); eventvault.ErrorCode(err) != eventvault.EERASED && eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Errorf("a new key for the fenced stream late-1: %v; want it refused", err)
	}

	n, err = restored.ReapplyErasures(ctx, live, nil)
	if err != nil || n != (postgres.Reapplied{}) {
		t.Errorf("a second ReapplyErasures did %+v (%v); want nothing", n, err)
	}
}
