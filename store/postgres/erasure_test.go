package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// erasureTables are the tenant tables of migrations 0003 and 0009.
var erasureTables = []string{"legal_holds", "erasure_requests", "subject_keys", "pii_values", "pii_restrictions"}

// withErasureRecords gives tenants A and B of twoTenants a legal hold and
// an erasure request each, on the same pseudonym.
func withErasureRecords(t *testing.T, db *postgres.DB) {
	t.Helper()
	for _, tenant := range []eventvault.TenantID{tenantA, tenantB} {
		if err := db.PutHold(t.Context(), tenant, eventvault.Hold{Subject: "p-alice", Reason: "litigation", PlacedAt: time.Now(), PlacedBy: "tok"}); err != nil {
			t.Fatalf("PutHold %s: %v", tenant, err)
		}
		r := eventvault.ErasureRequest{ID: uuid.New(), Tenant: tenant, Subject: "p-alice", State: eventvault.ErasureReceived, RequestedBy: "tok", ReceivedAt: time.Now()}
		if err := db.CreateErasureRequest(t.Context(), r); err != nil {
			t.Fatalf("CreateErasureRequest %s: %v", tenant, err)
		}
		withPII(t, db, tenant)
		// A shredded stream of its own moves the tenant's stream key epoch
		// (0012) past the one the tenant was created with (0013).
		if _, err := db.CreateStreamKey(t.Context(), tenant, "shredded-fixture", wrappedKey("shredded-"+string(tenant))); err != nil {
			t.Fatalf("CreateStreamKey %s: %v", tenant, err)
		}
		if _, err := db.ShredStream(t.Context(), tenant, "shredded-fixture", false, time.Now()); err != nil {
			t.Fatalf("ShredStream %s: %v", tenant, err)
		}
	}
}

// withPII gives tenant a subject key, a restriction and a personal value
// (migration 0009), on the pseudonym of withErasureRecords.
func withPII(t *testing.T, db *postgres.DB, tenant eventvault.TenantID) {
	t.Helper()
	ctx := t.Context()
	sk := eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped-subject-key")}
	sk, err := db.CreateSubjectKey(ctx, tenant, "p-alice", sk)
	if err != nil {
		t.Fatalf("CreateSubjectKey %s: %v", tenant, err)
	}
	if err := db.PutRestriction(ctx, tenant, eventvault.Restriction{Subject: "p-alice", Reason: "contested", PlacedAt: time.Now(), PlacedBy: "tok"}); err != nil {
		t.Fatalf("PutRestriction %s: %v", tenant, err)
	}
	nk := eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped-stream-key")}
	ev := eventvault.ProposedEvent{ID: uuid.New(), Type: "Noted", ContentMAC: []byte("mac")}
	_, err = db.Append(ctx, tenant, eventvault.AppendRequest{Stream: "pii-fixture", Expected: eventvault.ExpectNoStream, KeyID: nk.ID, NewKey: &nk,
		Events: []eventvault.ProposedEvent{ev}, Seal: func(int64) ([][]byte, error) { return [][]byte{[]byte("sealed")}, nil },
		PII: []eventvault.PIIValue{{Token: "evpii_fixture0000000000000000", Subject: "p-alice", EventID: ev.ID, Pointer: "/email", Version: 1, KeyID: sk.ID, Ciphertext: []byte("sealed-pii")}}})
	if err != nil {
		t.Fatalf("append with a personal value to %s: %v", tenant, err)
	}
}

func TestRLSErasureTables(t *testing.T) {
	db, url := twoTenants(t)
	withErasureRecords(t, db)
	for _, table := range erasureTables {
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

// TestAppRoleCannotEraseOrResurrectAtWill plays the attacker of
// rls_test.go against what migration 0003 opens: the app role may shred,
// but not delete live events or keys, un-shred, rewrite a shred or an
// owner, reach another tenant, or rewrite erasure records.
func TestAppRoleCannotEraseOrResurrectAtWill(t *testing.T) {
	db, url := twoTenants(t)
	ctx := t.Context()
	withErasureRecords(t, db)
	// Tenant B's order-1 is owned and shredded; tenant B is then shredded
	// whole. Tenant A lives.
	k, err := db.CreateStreamKey(ctx, tenantB, "owned-1", wrappedKey("owned"))
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	req := appendRequest("owned-1", k.ID, 1)
	req.Subject = "p-alice"
	if _, err := db.Append(ctx, tenantB, req); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := db.ShredStream(ctx, tenantB, "order-1", false, time.Now()); err != nil {
		t.Fatalf("ShredStream: %v", err)
	}
	if _, err := db.ShredTenant(ctx, tenantB, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}

	cases := []struct {
		name   string
		tenant eventvault.TenantID
		sql    string
	}{
		{"purge a live stream", tenantA, `SELECT eventvault_purge_stream('order-1', now())`},
		{"purge without a tenant", "", `SELECT eventvault_purge_stream('order-1', now())`},
		{"destroy a live tenant's keys", tenantA, `SELECT eventvault_destroy_tenant_keys()`},
		{"delete live events", tenantA, `DELETE FROM events`},
		{"delete live tenant keys", tenantA, `DELETE FROM tenant_keys`},
		{"change a stream's key id", tenantA, `UPDATE streams SET key_id = gen_random_uuid()`},
		{"fake a shred record", tenantA, `UPDATE streams SET shredded_key_id = gen_random_uuid()`},
		{"fake a purge", tenantA, `UPDATE streams SET purged_at = now()`},
		{"un-shred a stream", tenantB, `UPDATE streams SET shredded_at = NULL WHERE name = 'order-1'`},
		{"give a shredded stream a key", tenantB, `UPDATE streams SET key_id = gen_random_uuid(), key_version = 1, kek_version = 1,
			wrapped_key = '\x01', key_created_at = now(), shredded_at = NULL WHERE name = 'order-1'`},
		{"move a shred's time", tenantB, `UPDATE streams SET shredded_at = now() - interval '1 day' WHERE name = 'order-1'`},
		{"change a stream's owner", tenantB, `UPDATE streams SET subject = 'p-mallory' WHERE name = 'owned-1'`},
		{"un-shred a tenant", tenantB, `UPDATE tenants SET shredded_at = NULL`},
		{"change the ids a tenant shred destroyed", tenantB, `UPDATE tenants SET shredded_key_ids = '{}'`},
		{"give a shredded tenant a KEK", tenantB, `INSERT INTO tenant_keys (tenant_id, version, key_id, wrapped, created_at)
			VALUES ('tenant-b', 1, gen_random_uuid(), '\x01', now())`},
		{"give a shredded tenant a stream key", tenantB, `INSERT INTO streams (tenant_id, name, key_id, key_version, kek_version, wrapped_key)
			VALUES ('tenant-b', 'new-1', gen_random_uuid(), 1, 1, '\x01')`},
		{"delete an erasure request", tenantA, `DELETE FROM erasure_requests`},
		{"re-address an erasure request", tenantA, `UPDATE erasure_requests SET subject = 'p-mallory'`},
		{"backdate an erasure request", tenantA, `UPDATE erasure_requests SET received_at = now() - interval '1 year'`},
		{"move a hold to another tenant", tenantA, `UPDATE legal_holds SET tenant_id = 'tenant-b'`},
		{"write another tenant's hold", tenantA, `INSERT INTO legal_holds (tenant_id, subject, reason, placed_at, placed_by)
			VALUES ('tenant-b', 'p-bob', 'forged', now(), 'tok')`},
		{"write another tenant's request", tenantA, `INSERT INTO erasure_requests (tenant_id, id, subject, state, requested_by, received_at)
			VALUES ('tenant-b', gen_random_uuid(), 'p-bob', 'completed', 'tok', now())`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := asApp(t, url, tc.tenant, "", "").Exec(t.Context(), tc.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "EV410") {
				t.Errorf("%s: err = %v, want insufficient_privilege (42501) or the erasure fence (EV410)", tc.name, err)
			}
		})
	}

	t.Run("purge another tenant's shredded stream", func(t *testing.T) {
		// Tenant A's context names B's shredded stream: the function acts
		// on A's rows only, and A has no such shredded stream.
		_, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), `SELECT eventvault_purge_stream('order-1', now())`)
		wantRefused(t, "purge B's stream from A's context", err)
		page, err := db.ReadStream(ctx, tenantB, "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
		if err != nil || len(page.Events) != 3 {
			t.Fatalf("B's shredded stream: %d events, %v; want its 3 events still there", len(page.Events), err)
		}
	})
	t.Run("positive control: a shredded stream's events can be purged", func(t *testing.T) {
		tx := asApp(t, url, tenantB, "", "")
		var n int64
		if err := tx.QueryRow(t.Context(), `SELECT eventvault_purge_stream('order-1', now())`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("purge of a shredded stream: %d events, %v; want 3", n, err)
		}
	})
}

// TestShredLeavesNoKeyInAnyTable scans every row of every table, as the
// superuser, for the wrapped keys a shred destroyed and the events a purge
// deleted.
func TestShredLeavesNoKeyInAnyTable(t *testing.T) {
	db, url := openDB(t)
	ctx := t.Context()
	kekCT, keyCT, otherCT, payload := randomBytes(t), randomBytes(t), randomBytes(t), randomBytes(t)
	if _, err := db.CreateTenantKey(ctx, tenantA, eventvault.WrappedKey{ID: uuid.New(), Version: 1, Ciphertext: kekCT}); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	key, err := db.CreateStreamKey(ctx, tenantA, "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: keyCT})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	if _, err := db.CreateStreamKey(ctx, tenantA, "order-2", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: otherCT}); err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	req := appendRequest("order-1", key.ID, 1)
	req.Seal = func(int64) ([][]byte, error) { return [][]byte{payload}, nil }
	if _, err := db.Append(ctx, tenantA, req); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if found := pgtest.Scan(t, url, kekCT, keyCT, otherCT, payload); len(found) != 4 {
		t.Fatalf("positive control: the scan finds %v, want each needle once", found)
	}

	if _, err := db.ShredStream(ctx, tenantA, "order-1", true, time.Now()); err != nil {
		t.Fatalf("ShredStream: %v", err)
	}
	for _, where := range pgtest.Scan(t, url, keyCT, payload) {
		t.Errorf("after a shred with purge, the database still holds the key or an event: %s", where)
	}
	if _, err := db.ShredTenant(ctx, tenantA, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	for _, where := range pgtest.Scan(t, url, kekCT, otherCT) {
		t.Errorf("after a tenant shred, the database still holds a key: %s", where)
	}
}

func randomBytes(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEmptyingAKeyShredsTheWholeRow checks that the trigger of migration
// 0003 never leaves a row half-shredded, even when someone with write
// access empties a key by hand.
func TestEmptyingAKeyShredsTheWholeRow(t *testing.T) {
	db, url := twoTenants(t)
	old, err := db.StreamKey(t.Context(), tenantA, "order-1")
	if err != nil {
		t.Fatalf("StreamKey: %v", err)
	}
	pgtest.Exec(t, url, `UPDATE streams SET wrapped_key = NULL WHERE tenant_id = 'tenant-a' AND name = 'order-1'`)
	s, err := db.ShredStream(t.Context(), tenantA, "order-1", false, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("ShredStream: %v", err)
	}
	if s.KeyID != old.ID || s.ShreddedAt.IsZero() || s.ShreddedAt.After(time.Now()) {
		t.Errorf("shred record of a key emptied by hand: key %s at %v; want key %s, at the time it was emptied", s.KeyID, s.ShreddedAt, old.ID)
	}
	if _, err := db.StreamKey(t.Context(), tenantA, "order-1"); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("StreamKey = %v, want EERASED", err)
	}
}

// TestTenantFenceCodes checks the codes PostgreSQL gives a shredded
// tenant's key operations: EERASED, with a message a client can read.
func TestTenantFenceCodes(t *testing.T) {
	db, _ := twoTenants(t)
	ctx := t.Context()
	kek, err := db.TenantKey(ctx, tenantA)
	if err != nil {
		t.Fatalf("TenantKey: %v", err)
	}
	if _, err := db.ShredTenant(ctx, tenantA, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	next := kek
	next.Version, next.Ciphertext = 2, []byte("v2")
	for name, err := range map[string]error{
		"AddTenantKey":    db.AddTenantKey(ctx, tenantA, next),
		"CreateTenantKey": second(db.CreateTenantKey(ctx, tenantA, wrappedKey("again"))),
		"CreateStreamKey": second(db.CreateStreamKey(ctx, tenantA, "order-9", wrappedKey("again"))),
	} {
		if eventvault.ErrorCode(err) != eventvault.EERASED {
			t.Errorf("%s for a shredded tenant = %v, want EERASED", name, err)
			continue
		}
		if msg := eventvault.ErrorMessage(err); !strings.Contains(msg, "shredded") {
			t.Errorf("%s: message %q does not say the tenant was shredded", name, msg)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestListenEvictions shreds through one pool and listens through another,
// as two server processes on one database would.
func TestListenEvictions(t *testing.T) {
	shredder, url := twoTenants(t)
	listener, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = listener.Close() })

	type eviction struct {
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}
	got := make(chan eviction, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- listener.ListenEvictions(ctx,
			func(tenant eventvault.TenantID, stream eventvault.StreamName) { got <- eviction{tenant, stream} },
			func(tenant eventvault.TenantID) { got <- eviction{tenant: tenant} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ListenEvictions returned %v, want context.Canceled", err)
		}
	})

	// LISTEN takes effect some time after the goroutine starts, and a
	// notification sent before is lost: shred fresh streams until one is
	// heard.
	await := func(want eviction, within time.Duration) bool {
		deadline := time.After(within)
		for {
			select {
			case e := <-got:
				if e == want {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		stream := eventvault.StreamName("probe-" + uuid.NewString()[:8])
		if _, err := shredder.CreateStreamKey(t.Context(), tenantA, stream, wrappedKey("probe")); err != nil {
			t.Fatalf("CreateStreamKey: %v", err)
		}
		if _, err := shredder.ShredStream(t.Context(), tenantA, stream, false, time.Now()); err != nil {
			t.Fatalf("ShredStream: %v", err)
		}
		ready = await(eviction{tenantA, stream}, 100*time.Millisecond)
	}
	if !ready {
		t.Fatal("the listener heard no shred within 10s")
	}

	if _, err := shredder.ShredStream(t.Context(), tenantA, "order-1", true, time.Now()); err != nil {
		t.Fatalf("ShredStream: %v", err)
	}
	if !await(eviction{tenantA, "order-1"}, 5*time.Second) {
		t.Error("no eviction of tenant-a/order-1 within 5s of its shred")
	}
	if _, err := shredder.ShredTenant(t.Context(), tenantB, time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	if !await(eviction{tenant: tenantB}, 5*time.Second) {
		t.Error("no eviction of tenant-b within 5s of its shred")
	}
	// A shred that fails (no such stream) notifies nothing.
	if _, err := shredder.ShredStream(t.Context(), tenantA, "order-404", false, time.Now()); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("ShredStream of a stream never seen = %v, want ENOTFOUND", err)
	}
	if await(eviction{tenantA, "order-404"}, 300*time.Millisecond) {
		t.Error("a failed shred notified an eviction")
	}
}

// TestListenEvictionsReconnects kills the listener's connection from the
// server side: it reconnects and hears the next shred.
func TestListenEvictionsReconnects(t *testing.T) {
	shredder, url := twoTenants(t)
	listener, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = listener.Close() })
	got := make(chan eventvault.StreamName, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- listener.ListenEvictions(ctx, func(_ eventvault.TenantID, s eventvault.StreamName) { got <- s }, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })

	heard := func(stream eventvault.StreamName) bool {
		timeout := time.After(100 * time.Millisecond)
		for {
			select {
			case s := <-got:
				if s == stream {
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	hear := func(what string) {
		t.Helper()
		for range 100 {
			stream := eventvault.StreamName("probe-" + uuid.NewString()[:8])
			if _, err := shredder.CreateStreamKey(t.Context(), tenantA, stream, wrappedKey("probe")); err != nil {
				t.Fatalf("CreateStreamKey: %v", err)
			}
			if _, err := shredder.ShredStream(t.Context(), tenantA, stream, false, time.Now()); err != nil {
				t.Fatalf("ShredStream: %v", err)
			}
			if heard(stream) {
				return
			}
		}
		t.Fatalf("%s: the listener heard no shred within 10s", what)
	}
	hear("before the connection is killed")
	pgtest.Exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`)
	hear("after the connection was killed")
}
