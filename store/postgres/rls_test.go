package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
)

// The tests here play an attacker who reaches the database through the
// server's role with the server's transaction settings, but with a bug in
// the SQL: no tenant filter, another tenant's id, a forbidden statement.
// Row-level security and the grants must still hold.

const (
	tenantA eventvault.TenantID = "tenant-a"
	tenantB eventvault.TenantID = "tenant-b"
)

// tenantTables are the tables that hold tenant rows.
var tenantTables = []string{"tenants", "tenant_keys", "streams", "events", "api_tokens", "policies", "audit_heads", "audit_records", "audit_hashes", "audit_checkpoints"}

// twoTenants returns a store holding a KEK, a stream with events and a token
// for each of tenants A and B, plus a root token, and the database's
// superuser URL.
func twoTenants(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	db, url := openDB(t)
	ctx := t.Context()
	for _, tenant := range []eventvault.TenantID{tenantA, tenantB} {
		if _, err := db.CreateTenantKey(ctx, tenant, wrappedKey("kek-"+string(tenant))); err != nil {
			t.Fatalf("CreateTenantKey %s: %v", tenant, err)
		}
		k, err := db.CreateStreamKey(ctx, tenant, "order-1", wrappedKey("stream-"+string(tenant)))
		if err != nil {
			t.Fatalf("CreateStreamKey %s: %v", tenant, err)
		}
		if _, err := db.Append(ctx, tenant, appendRequest("order-1", k.ID, 3)); err != nil {
			t.Fatalf("Append %s: %v", tenant, err)
		}
		if err := db.CreateToken(ctx, token(tenant, false)); err != nil {
			t.Fatalf("CreateToken %s: %v", tenant, err)
		}
		if err := db.AddPolicyVersion(ctx, eventvault.PolicyVersion{Tenant: tenant, Name: "app", Version: 1, Body: "permit (principal, action, resource);", CreatedBy: "tok", CreatedAt: time.Now()}); err != nil {
			t.Fatalf("AddPolicyVersion %s: %v", tenant, err)
		}
		if _, err := db.AppendAudit(ctx, tenant, [][]byte{[]byte(`{"action":"test"}`)}); err != nil {
			t.Fatalf("AppendAudit %s: %v", tenant, err)
		}
		if err := db.AddAuditHashes(ctx, tenant, 0, [][]byte{make([]byte, 32)}); err != nil {
			t.Fatalf("AddAuditHashes %s: %v", tenant, err)
		}
		if err := db.AddAuditCheckpoint(ctx, tenant, 1, []byte("checkpoint")); err != nil {
			t.Fatalf("AddAuditCheckpoint %s: %v", tenant, err)
		}
	}
	if err := db.CreateToken(ctx, token("", true)); err != nil {
		t.Fatalf("CreateToken root: %v", err)
	}
	return db, url
}

func wrappedKey(label string) eventvault.WrappedKey {
	return eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("wrapped:" + label), CreatedAt: time.Now()}
}

func appendRequest(stream eventvault.StreamName, keyID uuid.UUID, n int) eventvault.AppendRequest {
	evs := make([]eventvault.ProposedEvent, n)
	for i := range evs {
		evs[i] = eventvault.ProposedEvent{ID: uuid.New(), Type: "Happened", ContentMAC: []byte(fmt.Sprintf("mac-%d", i))}
	}
	return eventvault.AppendRequest{
		Stream: stream, Expected: eventvault.ExpectAny, KeyID: keyID, Events: evs,
		Seal: func(first int64) ([][]byte, error) {
			out := make([][]byte, n)
			for i := range out {
				out[i] = fmt.Appendf(nil, "sealed-%d", first+int64(i))
			}
			return out, nil
		},
	}
}

func token(tenant eventvault.TenantID, root bool) eventvault.Token {
	h := sha256.Sum256([]byte(uuid.NewString()))
	return eventvault.Token{ID: "tok_" + uuid.NewString()[:8], Hash: h[:], Tenant: tenant, Name: "svc", Root: root, CreatedAt: time.Now()}
}

// asApp opens a raw connection to url and begins a transaction with the
// settings the store sets for its transactions.
func asApp(t *testing.T, url string, tenant eventvault.TenantID, tokenHash, admin string) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	_, err = tx.Exec(ctx, `SELECT set_config('role', 'eventvault_app', true),
		set_config('eventvault.tenant', $1, true),
		set_config('eventvault.token_hash', $2, true),
		set_config('eventvault.admin', $3, true)`, string(tenant), tokenHash, admin)
	if err != nil {
		t.Fatalf("set the store's transaction settings: %v", err)
	}
	return tx
}

// tenantsOf returns how many rows of each tenant a query without any tenant
// filter sees in table.
func tenantsOf(t *testing.T, tx pgx.Tx, table string) map[string]int {
	t.Helper()
	rows, err := tx.Query(t.Context(), "SELECT tenant_id FROM "+table)
	if err != nil {
		t.Fatalf("select from %s: %v", table, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select from %s: %v", table, err)
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	return seen
}

func TestRLSUnfilteredSelectSeesOnlyTheTenantsRows(t *testing.T) {
	_, url := twoTenants(t)
	for _, table := range tenantTables {
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
		})
	}
}

func TestRLSWithoutTenantSeesNothing(t *testing.T) {
	_, url := twoTenants(t)
	for _, table := range tenantTables {
		t.Run(table, func(t *testing.T) {
			if seen := tenantsOf(t, asApp(t, url, "", "", ""), table); len(seen) != 0 {
				t.Errorf("a transaction without a tenant sees rows of %v in %s", seen, table)
			}
		})
	}
}

func TestRLSTokenScopes(t *testing.T) {
	db, url := twoTenants(t)
	tok := token(tenantB, false)
	if err := db.CreateToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	cases := []struct {
		name      string
		tokenHash string
		admin     string
		want      string // the one kind of row the scope may see
	}{
		{"token lookup sees that token only", fmt.Sprintf("%x", tok.Hash), "", "id = '" + tok.ID + "'"},
		{"admin sees root tokens only", "", "on", "root"},
		{"admin must be exactly on", "", "true", "false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx := asApp(t, url, "", tc.tokenHash, tc.admin)
			var total, matching int
			err := tx.QueryRow(t.Context(), "SELECT count(*), count(*) FILTER (WHERE "+tc.want+") FROM api_tokens").Scan(&total, &matching)
			if err != nil {
				t.Fatalf("select tokens: %v", err)
			}
			if total != matching {
				t.Errorf("scope sees %d tokens, of which %d are allowed (%s)", total, matching, tc.want)
			}
			if tc.want != "false" && matching == 0 {
				t.Errorf("scope sees no token at all: the test proves nothing")
			}
		})
	}
}

// wantRefused checks that err is PostgreSQL refusing a statement for
// privilege or row-level security (both SQLSTATE 42501).
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("%s: err = %v, want insufficient_privilege (42501)", what, err)
	}
}

// counterRefusesTheApp checks that the server's role, in tenant A, can
// neither wind back, push to its end, write, hold (an UPDATE that keeps the
// value still takes the row's lock), delete nor truncate a per-tenant
// counter that only SECURITY DEFINER functions move (table's column).
func counterRefusesTheApp(t *testing.T, url, table, column string) {
	t.Helper()
	for _, tc := range []struct{ name, sql string }{
		{"wind it back", fmt.Sprintf(`UPDATE %s SET %s = %[2]s - 1`, table, column)},
		{"push it to its end", fmt.Sprintf(`UPDATE %s SET %s = 9223372036854775807`, table, column)},
		{"write it", fmt.Sprintf(`INSERT INTO %s (tenant_id, %s) VALUES ('tenant-a', 1) ON CONFLICT (tenant_id) DO UPDATE SET %[2]s = 9223372036854775807`, table, column)},
		{"hold it", fmt.Sprintf(`UPDATE %s SET %s = %[2]s`, table, column)},
		{"delete it", fmt.Sprintf(`DELETE FROM %s`, table)},
		{"truncate it", fmt.Sprintf(`TRUNCATE %s`, table)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := asApp(t, url, tenantA, "", "").Exec(t.Context(), tc.sql)
			wantRefused(t, table+": "+tc.name, err)
		})
	}
}

func TestRLSRefusesWritesForAnotherTenant(t *testing.T) {
	_, url := twoTenants(t)
	cases := []struct {
		name, sql string
	}{
		{"event", `INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
			VALUES ('tenant-b', 1000, 'order-1', 1000, gen_random_uuid(), 'Forged', now(), '\x00', '\x00')`},
		{"stream", `INSERT INTO streams (tenant_id, name, key_id, wrapped_key) VALUES ('tenant-b', 'forged-1', gen_random_uuid(), '\x00')`},
		{"tenant key", `INSERT INTO tenant_keys (tenant_id, version, key_id, wrapped, created_at) VALUES ('tenant-b', 99, gen_random_uuid(), '\x00', now())`},
		{"tenant", `INSERT INTO tenants (tenant_id) VALUES ('tenant-c')`},
		{"token", `INSERT INTO api_tokens (id, token_hash, tenant_id, name, created_at) VALUES ('forged', '\x01', 'tenant-b', 'x', now())`},
		{"root token", `INSERT INTO api_tokens (id, token_hash, tenant_id, name, root, created_at) VALUES ('forged', '\x01', 'tenant-a', 'x', true, now())`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx := asApp(t, url, tenantA, "", "")
			_, err := tx.Exec(t.Context(), tc.sql)
			wantRefused(t, "insert a "+tc.name+" row as tenant A", err)
		})
	}
}

func TestRLSAppRoleCannotRewriteHistory(t *testing.T) {
	_, url := twoTenants(t)
	cases := []struct {
		name, sql string
	}{
		{"update own events", `UPDATE events SET payload = '\x00' WHERE tenant_id = 'tenant-a'`},
		{"delete own events", `DELETE FROM events WHERE tenant_id = 'tenant-a'`},
		{"truncate events", `TRUNCATE events`},
		{"delete own tenant keys", `DELETE FROM tenant_keys`},
		{"swap a stream key", `UPDATE streams SET wrapped_key = '\x00'`},
		{"rewind the global position", `UPDATE tenants SET tenant_id = 'tenant-b'`},
		{"write schema_migrations", `DELETE FROM schema_migrations`},
		{"rewrite a policy version", `UPDATE policies SET body = 'permit (principal, action, resource);'`},
		{"delete policy history", `DELETE FROM policies WHERE tenant_id = 'tenant-a'`},
		{"truncate policies", `TRUNCATE policies`},
		{"rewrite an audit record", `UPDATE audit_records SET line = '\x00'`},
		{"delete audit records", `DELETE FROM audit_records WHERE tenant_id = 'tenant-a'`},
		{"truncate audit records", `TRUNCATE audit_records`},
		{"rewrite an audit hash", `UPDATE audit_hashes SET hash = hash`},
		{"delete audit hashes", `DELETE FROM audit_hashes`},
		{"truncate audit hashes", `TRUNCATE audit_hashes`},
		{"rewrite a checkpoint", `UPDATE audit_checkpoints SET note = ''`},
		{"delete checkpoints", `DELETE FROM audit_checkpoints`},
		{"truncate checkpoints", `TRUNCATE audit_checkpoints`},
		{"delete an audit head", `DELETE FROM audit_heads`},
		{"disable row-level security", `ALTER TABLE events DISABLE ROW LEVEL SECURITY`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx := asApp(t, url, tenantA, "", "")
			_, err := tx.Exec(t.Context(), tc.sql)
			wantRefused(t, tc.name, err)
		})
	}
}

func TestAppRoleNeitherOwnsTablesNorBypassesRLS(t *testing.T) {
	_, url := twoTenants(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())

	var super, bypass, login, inherit bool
	err = conn.QueryRow(ctx, `SELECT rolsuper, rolbypassrls, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = 'eventvault_app'`).Scan(&super, &bypass, &login, &inherit)
	if err != nil {
		t.Fatalf("read role eventvault_app: %v", err)
	}
	if super || bypass || login || inherit {
		t.Errorf("eventvault_app: superuser %v, bypassrls %v, login %v, inherit %v; want all false", super, bypass, login, inherit)
	}

	rows, err := conn.Query(ctx, `SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
		FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'`)
	if err != nil {
		t.Fatalf("read tables: %v", err)
	}
	type table struct {
		owner       string
		rls, forced bool
	}
	tables := map[string]table{}
	for rows.Next() {
		var name string
		var tb table
		if err := rows.Scan(&name, &tb.owner, &tb.rls, &tb.forced); err != nil {
			t.Fatalf("read tables: %v", err)
		}
		tables[name] = tb
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read tables: %v", err)
	}
	for name, tb := range tables {
		if tb.owner == "eventvault_app" {
			t.Errorf("table %s is owned by eventvault_app", name)
		}
	}
	for _, name := range tenantTables {
		tb, ok := tables[name]
		if !ok {
			t.Errorf("table %s is missing", name)
			continue
		}
		if !tb.rls || !tb.forced {
			t.Errorf("table %s: row-level security enabled %v, forced %v; want both", name, tb.rls, tb.forced)
		}
	}
}

// TestEveryTenantTableIsHiddenWithoutTheTenant finds the tables that hold
// tenant rows from the catalog (every table with a tenant_id column), so
// that a table added later is covered without editing this test, and
// checks as the app role that a transaction which never set the tenant
// sees no row in any of them.
func TestEveryTenantTableIsHiddenWithoutTheTenant(t *testing.T) {
	db, url := twoTenants(t)
	withErasureRecords(t, db)
	withSubscriptionRecords(t, db)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.columns
		WHERE column_name = 'tenant_id' AND table_schema = current_schema() ORDER BY table_name`)
	if err != nil {
		t.Fatalf("list tenant tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tenant tables: %v", err)
	}
	if len(tables) < 8 {
		t.Fatalf("the catalog lists %d tables with tenant_id (%v): fewer than the schema has", len(tables), tables)
	}
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE tenant_id = $1", string(tenantA)).Scan(&n); err != nil {
				t.Fatalf("count as superuser: %v", err)
			}
			if n == 0 {
				t.Fatalf("the fixture holds no row of tenant A in %s, so this test proves nothing there: add one to twoTenants or withErasureRecords", table)
			}
			if seen := tenantsOf(t, asApp(t, url, "", "", ""), table); len(seen) != 0 {
				t.Errorf("a transaction without a tenant sees rows of %v in %s", seen, table)
			}
		})
	}
}

// TestPIIGenerationCannotBeWoundBack plays an attacker with the server's
// role who would make other nodes keep using a subject's state from before
// a change, or make every later change fail (migration 0011): the role
// cannot write the tenant's PII generation at all, and a change written
// straight into subject_keys or pii_restrictions, not through the store,
// moves it on all the same.
func TestPIIGenerationCannotBeWoundBack(t *testing.T) {
	db, url := twoTenants(t)
	withPII(t, db, tenantA)
	counterRefusesTheApp(t, url, "pii_generations", "generation")
	for _, tc := range []struct{ name, sql string }{
		{"a subject key re-generated", `SELECT eventvault_next_subject_generation(subject, key_id) FROM subject_keys WHERE subject = 'p-alice'`},
		{"a restriction lifted", `DELETE FROM pii_restrictions WHERE subject = 'p-alice'`},
		{"a restriction placed", `INSERT INTO pii_restrictions (tenant_id, subject, reason, placed_at, placed_by) VALUES ('tenant-a', 'p-alice', 'x', now(), 'y')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, gen, err := db.SubjectStates(t.Context(), tenantA, nil)
			if err != nil {
				t.Fatal(err)
			}
			tx := asApp(t, url, tenantA, "", "")
			if _, err := tx.Exec(t.Context(), tc.sql); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatalf("commit: %v", err)
			}
			_, now, err := db.SubjectStates(t.Context(), tenantA, nil)
			if err != nil || now <= gen {
				t.Fatalf("after %s straight in the database the generation is %d (%v), was %d", tc.name, now, err, gen)
			}
		})
	}
}

// TestStreamKeyEpochCannotBeWoundBack plays an attacker with the server's
// role who would make other nodes keep opening a stream with a cipher
// checked against its key row before a change (migration 0012): the role
// cannot write the tenant's stream key epoch at all, and a key row changed
// straight in the database, not through the store, moves it on all the
// same. An append's change of the version leaves it.
func TestStreamKeyEpochCannotBeWoundBack(t *testing.T) {
	db, url := twoTenants(t)
	withErasureRecords(t, db)
	counterRefusesTheApp(t, url, "stream_key_epochs", "epoch")
	for _, tc := range []struct {
		name, sql string
		moves     bool
	}{
		{"an append's version", `UPDATE streams SET version = version WHERE name = 'order-1'`, false},
		{"a key row re-wrapped", `UPDATE streams SET kek_version = kek_version, wrapped_key = wrapped_key WHERE name = 'order-1'`, true},
		{"a stream shredded", `UPDATE streams SET shredded_at = now() WHERE name = 'order-1'`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, otherBefore := keyEpoch(t, db, tenantA), keyEpoch(t, db, tenantB)
			tx := asApp(t, url, tenantA, "", "")
			if _, err := tx.Exec(t.Context(), tc.sql); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatalf("commit: %v", err)
			}
			after := keyEpoch(t, db, tenantA)
			if moved := after > before; moved != tc.moves {
				t.Fatalf("after %s straight in the database the epoch is %d, was %d; want it moved: %v", tc.name, after, before, tc.moves)
			}
			if other := keyEpoch(t, db, tenantB); other != otherBefore {
				t.Fatalf("after %s of tenant A, tenant B's epoch moved from %d to %d", tc.name, otherBefore, other)
			}
		})
	}
}

// keyEpoch returns the tenant's stream key epoch, as a read-all page's head
// carries it to a receiver that takes the keys on request.
func keyEpoch(t *testing.T, db *postgres.DB, tenant eventvault.TenantID) int64 {
	t.Helper()
	var r epochReceiver
	if err := db.ReadAllTo(t.Context(), tenant, 0, 1, &r); err != nil {
		t.Fatalf("ReadAllTo: %v", err)
	}
	if !r.headed || r.keyed {
		t.Fatalf("ReadAllTo to a receiver that takes the keys on request: head %v, keys in the head %v", r.headed, r.keyed)
	}
	return r.epoch
}

type epochReceiver struct {
	headed, keyed bool
	epoch         int64
}

func (r *epochReceiver) Head(page eventvault.AllPage) error {
	r.headed, r.keyed, r.epoch = true, page.Keys != nil, page.KeyEpoch
	return nil
}
func (r *epochReceiver) Events([]eventvault.StoredEvent) error { return nil }
func (r *epochReceiver) WantsKeys() bool                       { return false }
func (r *epochReceiver) Keys(map[eventvault.StreamName]eventvault.WrappedKey, int64) error {
	return nil
}
