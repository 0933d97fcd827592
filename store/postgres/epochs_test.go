package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// The tenant's stream key epoch (0012) and PII generation (0011) never take
// a value twice (0013): each move sets (counter + 1) << 32 | 32 random bits.
// These tests check how the values are made and guarded; the engine's
// TestAWarmNodeTrustsNoKeyEpochOfAnotherHistory plays the failover that
// made the random half necessary.

func counter(v int64) int64 { return v >> 32 }

func TestEpochsComeWithTheTenantAndMoveByCounterAndChance(t *testing.T) {
	db, _ := twoTenants(t)
	ctx := t.Context()
	piiGen := func(tenant eventvault.TenantID) int64 {
		t.Helper()
		_, gen, err := db.SubjectStates(ctx, tenant, nil)
		if err != nil {
			t.Fatal(err)
		}
		return gen
	}
	a, b := keyEpoch(t, db, tenantA), keyEpoch(t, db, tenantB)
	if counter(a) != 1 || counter(b) != 1 || a == b {
		t.Fatalf("the new tenants' stream key epochs are %#x and %#x; want counter 1 each, and random halves that differ", a, b)
	}
	if g := piiGen(tenantA); counter(g) != 1 {
		t.Fatalf("a new tenant's PII generation is %#x; want counter 1", g)
	}
	if _, err := db.ShredStream(ctx, tenantA, "order-1", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if now := keyEpoch(t, db, tenantA); counter(now) != 2 || now <= a {
		t.Fatalf("after a shred the epoch is %#x, was %#x; want counter 2", now, a)
	}
	if now := keyEpoch(t, db, tenantB); now != b {
		t.Fatalf("a shred in tenant A moved tenant B's epoch from %#x to %#x", b, now)
	}
}

// TestAMissingEpochRowIsUnknown deletes the rows by hand, as the owner: a
// read then carries the unknown values (epoch 0, PII generation -1) at
// which nodes use nothing they kept, and the next change writes a row
// again.
func TestAMissingEpochRowIsUnknown(t *testing.T) {
	db, url := twoTenants(t)
	ctx := t.Context()
	if err := pgtest.Session(t, url, `DELETE FROM stream_key_epochs`, `DELETE FROM pii_generations`); err != nil {
		t.Fatal(err)
	}
	if e := keyEpoch(t, db, tenantA); e != 0 {
		t.Fatalf("with no epoch row the page's key epoch is %d; want 0 (unknown)", e)
	}
	if _, gen, err := db.SubjectStates(ctx, tenantA, nil); err != nil || gen != -1 {
		t.Fatalf("with no generation row SubjectStates says generation %d (%v); want -1 (unknown)", gen, err)
	}
	page, err := db.ReadStream(ctx, tenantA, "order-1", eventvault.ReadOptions{Limit: 1})
	if err != nil || page.PIIGeneration != -1 {
		t.Fatalf("with no generation row a stream page says generation %d (%v); want -1", page.PIIGeneration, err)
	}
	if _, err := db.ShredStream(ctx, tenantA, "order-1", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if e := keyEpoch(t, db, tenantA); counter(e) != 1 {
		t.Fatalf("after a shred with no epoch row the epoch is %#x; want a fresh one, counter 1", e)
	}
}

// TestEpochFunctionsServeTheirTablesOnly plays the server's role, which
// would attach the SECURITY DEFINER functions that move the values to a
// temporary table of its own and so move, or hold, another tenant's: it
// may not execute them; and run by the owner on another table, they refuse.
func TestEpochFunctionsServeTheirTablesOnly(t *testing.T) {
	_, url := twoTenants(t)
	for _, fn := range []string{"eventvault_next_stream_key_epoch", "eventvault_next_pii_generation", "eventvault_first_epochs"} {
		t.Run(fn, func(t *testing.T) {
			tx := asApp(t, url, tenantA, "", "")
			if _, err := tx.Exec(t.Context(), `CREATE TEMP TABLE x (tenant_id text)`); err != nil {
				t.Fatal(err)
			}
			_, err := tx.Exec(t.Context(), `CREATE TRIGGER x AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
			wantRefused(t, "the server's role attaches "+fn+" to a table of its own", err)

			err = pgtest.Session(t, url, `CREATE TEMP TABLE x (tenant_id text)`,
				`CREATE TRIGGER x AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION `+fn+`()`,
				`INSERT INTO x VALUES ('tenant-b')`)
			wantRefused(t, "the owner runs "+fn+" on another table", err)
		})
	}
}

// TestKeyAndStateTablesRefuseTruncate: TRUNCATE fires no row trigger, so
// it would drop key rows and subject states without moving the values
// nodes trust them at; it is refused, even to the owner, even in a session
// that skips triggers.
func TestKeyAndStateTablesRefuseTruncate(t *testing.T) {
	db, url := twoTenants(t)
	withPII(t, db, tenantA)
	for _, table := range []string{"streams", "subject_keys", "pii_restrictions"} {
		for _, replica := range []bool{false, true} {
			sqls := []string{`TRUNCATE ` + table + ` CASCADE`}
			if replica {
				sqls = append([]string{`SET session_replication_role = replica`}, sqls...)
			}
			wantRefused(t, fmt.Sprint(sqls), pgtest.Session(t, url, sqls...))
		}
	}
	if e := keyEpoch(t, db, tenantA); e == 0 {
		t.Fatal("the refused truncations left no epoch")
	}
	if _, err := db.ReadStream(t.Context(), tenantA, "order-1", eventvault.ReadOptions{Limit: 1}); err != nil {
		t.Fatalf("after the refused truncations: %v", err)
	}
}

// TestMigrationGivesEveryTenantFreshEpochs migrates a database that holds
// tenants from before 0013, one with values of the old counters and one
// without rows: both get rows, past the old values.
func TestMigrationGivesEveryTenantFreshEpochs(t *testing.T) {
	url := pgtest.URL(t)
	legacyMigrate(t, url, 12)
	for _, sql := range []string{
		`INSERT INTO tenants (tenant_id) VALUES ('tenant-a'), ('tenant-b')`,
		`INSERT INTO stream_key_epochs (tenant_id, epoch) VALUES ('tenant-a', 7)`,
		`INSERT INTO pii_generations (tenant_id, generation) VALUES ('tenant-a', 9)`,
	} {
		pgtest.Exec(t, url, sql)
	}
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT epoch FROM stream_key_epochs ORDER BY tenant_id`,
		`SELECT generation FROM pii_generations ORDER BY tenant_id`,
	} {
		got := queryAll[int64](t, url, q)
		if len(got) != 2 || counter(got[0]) != 1 || counter(got[1]) != 1 || got[0] <= 9 {
			t.Fatalf("%s after the migration: %#x; want a row for each tenant, counter 1", q, got)
		}
	}
}

// TestEverySecurityDefinerFunctionFixesItsSearchPath: a SECURITY DEFINER
// function without its own search_path resolves an unqualified table in
// the caller's temporary schema first, so the server's role could put a
// table of its own in the place of the one the function writes.
// CREATE OR REPLACE drops the setting, which is how 0013 first lost it.
func TestEverySecurityDefinerFunctionFixesItsSearchPath(t *testing.T) {
	_, url := openDB(t)
	names := queryAll[string](t, url, `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = current_schema() AND p.prosecdef
		AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%pg_temp')
		ORDER BY 1`)
	if len(names) > 0 {
		t.Fatalf("SECURITY DEFINER functions without a search_path that ends in pg_temp: %v", names)
	}
	if n := queryAll[string](t, url, `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = current_schema() AND p.prosecdef`); len(n) < 6 {
		t.Fatalf("only %d SECURITY DEFINER functions found (%v): the query does not see the schema's", len(n), n)
	}
}

// TestATempTableCannotShadowTheEpochs plays the server's role, which
// creates temporary tables named as the tables the epoch functions write,
// then shreds a stream and lifts a restriction straight in the database:
// the real stream key epoch and PII generation move all the same.
func TestATempTableCannotShadowTheEpochs(t *testing.T) {
	db, url := twoTenants(t)
	withPII(t, db, tenantA)
	epoch := keyEpoch(t, db, tenantA)
	_, gen, err := db.SubjectStates(t.Context(), tenantA, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx := asApp(t, url, tenantA, "", "")
	for _, sql := range []string{
		`CREATE TEMP TABLE stream_key_epochs (tenant_id text PRIMARY KEY, epoch bigint)`,
		`CREATE TEMP TABLE pii_generations (tenant_id text PRIMARY KEY, generation bigint)`,
		`UPDATE streams SET shredded_at = now() WHERE name = 'order-1'`,
		`DELETE FROM pii_restrictions WHERE subject = 'p-alice'`,
	} {
		if _, err := tx.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if now := keyEpoch(t, db, tenantA); now <= epoch {
		t.Fatalf("a shred with stream_key_epochs shadowed left the epoch at %#x (was %#x)", now, epoch)
	}
	if _, now, err := db.SubjectStates(t.Context(), tenantA, nil); err != nil || now <= gen {
		t.Fatalf("a restriction lifted with pii_generations shadowed left the generation at %#x (was %#x): %v", now, gen, err)
	}
}

// TestTheCounterWrapsRatherThanRunsOut: at the counter's end (2^31 - 1),
// which the server's role could reach by moving a value over and over, the
// next change still commits, and the counter starts again at 1 with fresh
// random bits.
func TestTheCounterWrapsRatherThanRunsOut(t *testing.T) {
	db, url := twoTenants(t)
	withPII(t, db, tenantA)
	const end = int64(2147483647)<<32 | 5
	if err := pgtest.Session(t, url,
		fmt.Sprintf(`UPDATE stream_key_epochs SET epoch = %d WHERE tenant_id = 'tenant-a'`, end),
		fmt.Sprintf(`UPDATE pii_generations SET generation = %d WHERE tenant_id = 'tenant-a'`, end)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ShredStream(t.Context(), tenantA, "order-1", false, time.Now()); err != nil {
		t.Fatalf("a shred at the epoch counter's end: %v", err)
	}
	if e := keyEpoch(t, db, tenantA); counter(e) != 1 {
		t.Fatalf("after the counter's end the epoch is %#x; want counter 1", e)
	}
	if err := db.DeleteRestriction(t.Context(), tenantA, "p-alice"); err != nil {
		t.Fatalf("a restriction lifted at the generation counter's end: %v", err)
	}
	if _, g, err := db.SubjectStates(t.Context(), tenantA, nil); err != nil || counter(g) != 1 {
		t.Fatalf("after the counter's end the PII generation is %#x (%v); want counter 1", g, err)
	}
	// Anything else backwards is still refused.
	err := pgtest.Session(t, url, `UPDATE stream_key_epochs SET epoch = 1 WHERE tenant_id = 'tenant-a'`)
	wantRefused(t, "wind the epoch back by hand", err)
}

// TestASubjectsGenerationMovesOnlyThroughTheStore plays the server's role,
// which would set a subject's generation to the value a node cached a
// rectification at before a failover lost it, or push it to its end so
// that every later rectification fails: it may not write the column; the
// store's rectification moves it (through a definer function bound to the
// transaction's tenant), past the counter's end too.
func TestASubjectsGenerationMovesOnlyThroughTheStore(t *testing.T) {
	db, url := twoTenants(t)
	withPII(t, db, tenantA)
	withPII(t, db, tenantB)
	for _, sql := range []string{
		`UPDATE subject_keys SET generation = 4294967296 | 3735928559 WHERE subject = 'p-alice'`,
		`UPDATE subject_keys SET generation = 9223372036854775807 WHERE subject = 'p-alice'`,
		`UPDATE subject_keys SET generation = generation + 1 WHERE subject = 'p-alice'`,
	} {
		_, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), sql)
		wantRefused(t, "the server's role: "+sql, err)
	}
	const end = int64(2147483647)<<32 | 5
	if err := pgtest.Session(t, url, fmt.Sprintf(`UPDATE subject_keys SET generation = %d WHERE tenant_id = 'tenant-a' AND subject = 'p-alice'`, end)); err != nil {
		t.Fatal(err)
	}
	_, st, err := db.SubjectPII(t.Context(), tenantA, "p-alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RectifyPII(t.Context(), tenantA, eventvault.PIIValue{Token: "evpii_fixture0000000000000000", Subject: "p-alice",
		Version: 2, KeyID: st.Key.ID, Ciphertext: []byte("sealed-pii:v2")}); err != nil {
		t.Fatalf("a rectification at the subject generation counter's end: %v", err)
	}
	if _, after, err := db.SubjectPII(t.Context(), tenantA, "p-alice"); err != nil || counter(after.Generation) != 1 {
		t.Fatalf("after the counter's end the subject generation is %#x (%v); want counter 1", after.Generation, err)
	}
	// Tenant B's subject of the same name is not tenant A's to move.
	_, stB, err := db.SubjectPII(t.Context(), tenantB, "p-alice")
	if err != nil {
		t.Fatal(err)
	}
	tx := asApp(t, url, tenantA, "", "")
	var moved int
	if err := tx.QueryRow(t.Context(), `SELECT eventvault_next_subject_generation('p-alice', $1)`, [16]byte(stB.Key.ID)).Scan(&moved); err != nil || moved != 0 {
		t.Fatalf("tenant A's transaction moved %d rows of tenant B's subject (%v); want none", moved, err)
	}
}
