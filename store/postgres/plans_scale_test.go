package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestStatementsOfABigNewTenantReadWhatTheyNeed: a tenant the planner's
// statistics do not know (created after the last ANALYZE, as any tenant is
// until autovacuum comes round, which on a large events table can take
// millions of rows) and that holds many events and streams. Each of the
// store's operations on a few of its streams must read index entries in
// proportion to what it touches, never in proportion to the tenant: with
// a statistics estimate of one row for the tenant, PostgreSQL may scan all
// of the tenant's index entries on (tenant_id, …) and filter them by id or
// name, which made an append cost milliseconds per thousand events of its
// tenant.
//
// It measures with PostgreSQL's own counters (pg_stat_user_indexes and
// pg_stat_user_tables, flushed when the store's sessions end), one
// operation kind at a time: appends through group commit, appends on the
// locking path (a node's first to a stream), the fast append without
// group commit, an append that replays, stream reads and read-all pages.
func TestStatementsOfABigNewTenantReadWhatTheyNeed(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	const (
		small         eventvault.TenantID = "plans-small"
		big           eventvault.TenantID = "plans-big"
		wide          eventvault.TenantID = "plans-wide"
		fillerStreams                     = 3000
		fillerEach                        = 10 // events per filler stream
		tinyTenants                       = 20000
	)
	setup, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// A small tenant that the statistics know, then ANALYZE, and no
	// autovacuum from here on: the big tenant stays unknown to them.
	smallStreams, _ := makeStreams(t, setup, small, string(small), 5, 20)
	// And many tiny tenants, so that the statistics' average tenant is
	// tiny too (what a generic plan assumes of a tenant it does not know).
	if err := pgtest.Session(t, url,
		fmt.Sprintf(`INSERT INTO tenants (tenant_id, last_global_position) SELECT 'tiny-' || g, 0 FROM generate_series(1, %d) g`, tinyTenants),
		fmt.Sprintf(`INSERT INTO streams (tenant_id, name, version, key_id, key_version, kek_version, wrapped_key, key_created_at)
			SELECT 'tiny-' || g, name, 0, key_id, key_version, kek_version, wrapped_key, key_created_at
			FROM streams, generate_series(1, %d) g WHERE tenant_id = '%s' AND name = '%s'`, tinyTenants, small, smallStreams[0]),
		fmt.Sprintf(`INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
			SELECT 'tiny-' || g, 0, '%s', 0, gen_random_uuid(), 'Tiny', now(), '\x00', '\x00' FROM generate_series(1, %d) g`, smallStreams[0], tinyTenants),
		fmt.Sprintf(`INSERT INTO api_tokens (id, token_hash, tenant_id, name, created_at)
			SELECT 'tiny-' || g, sha256(convert_to('tiny-' || g, 'UTF8')), 'tiny-' || g, 'app', now() FROM generate_series(1, %d) g`, tinyTenants),
	); err != nil {
		t.Fatalf("tiny tenants: %v", err)
	}
	if err := pgtest.Session(t, url, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	for _, table := range append([]string{"tenants"}, measuredTables...) {
		if err := pgtest.Session(t, url, `ALTER TABLE `+table+` SET (autovacuum_enabled = false)`); err != nil {
			t.Fatal(err)
		}
	}
	streams, keys := makeStreams(t, setup, big, string(big), 8, 1)
	// A small tenant whose every row of a table some operations walk: a
	// KEK rotation, its erasure records, its shred.
	wideStreams, _ := makeStreams(t, setup, wide, string(wide), 5, 2)
	for i := range 3 {
		if _, err := setup.CreateSubjectKey(ctx, wide, eventvault.Pseudonym(fmt.Sprintf("wide-subject-%d", i)), wrappedKey("wide")); err != nil {
			t.Fatalf("CreateSubjectKey: %v", err)
		}
		if err := setup.CreateToken(ctx, eventvault.Token{ID: fmt.Sprintf("wide-%d", i), Hash: []byte(fmt.Sprintf("wide-token-hash-%d", i)), Tenant: wide, Name: "app", CreatedAt: time.Now()}); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
	}
	setup.Close()
	// Filler: streams with the first stream's key row, and their events,
	// at the tenant's next global positions.
	if err := pgtest.Session(t, url,
		fmt.Sprintf(`INSERT INTO streams (tenant_id, name, version, key_id, key_version, kek_version, wrapped_key, key_created_at)
			SELECT tenant_id, 'filler-' || g, %d, key_id, key_version, kek_version, wrapped_key, key_created_at
			FROM streams, generate_series(1, %d) g WHERE tenant_id = '%s' AND name = '%s'`, fillerEach-1, fillerStreams, big, streams[0]),
		fmt.Sprintf(`INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
			SELECT '%[1]s', t.last_global_position + g, 'filler-' || ((g - 1) / %[2]d + 1), (g - 1) %% %[2]d, gen_random_uuid(), 'Filler', now(), '\x00', '\x00'
			FROM tenants t, generate_series(1, %[3]d) g WHERE t.tenant_id = '%[1]s'`, big, fillerEach, fillerStreams*fillerEach),
		fmt.Sprintf(`UPDATE tenants SET last_global_position = last_global_position + %d WHERE tenant_id = '%s'`, fillerStreams*fillerEach, big),
		// Data subjects with a key and personal values, and an audit log.
		fmt.Sprintf(`INSERT INTO subject_keys (tenant_id, subject, key_id, key_version, kek_version, wrapped_key, created_at, generation)
			SELECT '%s', 'subject-' || g, gen_random_uuid(), 1, 1, '\x00', now(), 1 FROM generate_series(1, %d) g`, big, fillerStreams),
		fmt.Sprintf(`INSERT INTO pii_values (tenant_id, token, version, subject, stream, event_id, pointer, class, key_id, ciphertext, created_at)
			SELECT '%[1]s', 'token-' || g, 1, 'subject-' || ((g - 1) / %[2]d + 1), 'filler-1', gen_random_uuid(), '/name', 'name', k.key_id, '\x00', now()
			FROM generate_series(1, %[3]d) g JOIN subject_keys k ON k.tenant_id = '%[1]s' AND k.subject = 'subject-' || ((g - 1) / %[2]d + 1)`, big, fillerEach, fillerStreams*fillerEach),
		fmt.Sprintf(`INSERT INTO audit_records (tenant_id, idx, line) SELECT '%s', g - 1, '\x00' FROM generate_series(1, %d) g`, big, fillerStreams*fillerEach),
		fmt.Sprintf(`INSERT INTO audit_hashes (tenant_id, hash_idx, hash) SELECT '%s', g - 1, sha256(int8send(g)) FROM generate_series(1, %d) g`, big, fillerStreams*fillerEach),
	); err != nil {
		t.Fatalf("filler: %v", err)
	}
	const tenantEvents = fillerStreams * fillerEach

	// measure runs op on a store of its own and returns the index entries
	// and sequentially scanned rows of events and streams it read.
	measure := func(name string, opts postgres.Options, op func(db *postgres.DB)) {
		t.Helper()
		before := tupleReads(t, url)
		db, err := postgres.Open(ctx, url, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		op(db)
		db.Close()
		after := tupleReads(t, url)
		for what, n := range after {
			read := n - before[what]
			t.Logf("%s: %s %d", name, what, read)
			// Every operation below touches at most a few hundred rows;
			// one that scans the tenant reads tens of thousands.
			if read > 2000 {
				t.Errorf("%s read %d %s next to a tenant of %d events and %d streams: a scan of that tenant's rows, or of every tenant's", name, read, what, tenantEvents, fillerStreams+8)
			}
		}
	}
	appendEach := func(db *postgres.DB, req func(s eventvault.StreamName) eventvault.AppendRequest) {
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Go(func() {
				for range 5 {
					if _, err := db.Append(ctx, big, req(s)); err != nil {
						t.Errorf("append to %s: %v", s, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	batch := func(n int) func(s eventvault.StreamName) eventvault.AppendRequest {
		return func(s eventvault.StreamName) eventvault.AppendRequest { return appendRequest(s, keys[s], n) }
	}

	measure("appends, locking path then group commit", postgres.Options{}, func(db *postgres.DB) {
		appendEach(db, batch(3))
	})
	measure("appends, locking path then fast", postgres.Options{NoGroupCommit: true}, func(db *postgres.DB) {
		appendEach(db, batch(3))
	})
	measure("appends replayed", postgres.Options{}, func(db *postgres.DB) {
		for _, s := range streams {
			req := batch(2)(s)
			for range 2 {
				if _, err := db.Append(ctx, big, req); err != nil {
					t.Errorf("append to %s: %v", s, err)
				}
			}
		}
	})
	measure("stream reads", postgres.Options{}, func(db *postgres.DB) {
		for _, s := range streams {
			if _, err := db.ReadStream(ctx, big, s, eventvault.ReadOptions{From: 0, Limit: 100}); err != nil {
				t.Errorf("read %s: %v", s, err)
			}
			if _, err := db.ReadStream(ctx, big, s, eventvault.ReadOptions{From: -1, Limit: 5, Backward: true}); err != nil {
				t.Errorf("read %s backwards: %v", s, err)
			}
		}
	})
	measure("personal values", postgres.Options{}, func(db *postgres.DB) {
		tokens := []string{"token-7", "token-70", "token-700", "token-7000", "token-17000"}
		if page, err := db.PIIValues(ctx, big, tokens); err != nil || len(page.Values) != len(tokens) {
			t.Errorf("PIIValues: %d values, %v", len(page.Values), err)
		}
	})
	measure("subject states", postgres.Options{}, func(db *postgres.DB) {
		subjects := []eventvault.Pseudonym{"subject-3", "subject-30", "subject-300", "subject-3000"}
		if states, _, err := db.SubjectStates(ctx, big, subjects); err != nil || len(states) != len(subjects) {
			t.Errorf("SubjectStates: %d states, %v", len(states), err)
		}
	})
	measure("a subject's personal values", postgres.Options{}, func(db *postgres.DB) {
		if values, _, err := db.SubjectPII(ctx, big, "subject-42"); err != nil || len(values) != fillerEach {
			t.Errorf("SubjectPII: %d values, %v", len(values), err)
		}
	})
	measure("audit log", postgres.Options{}, func(db *postgres.DB) {
		if hashes, err := db.AuditHashes(ctx, big, []int64{0, 1, 2, 3, 1000, 2047, 20000, 29999}); err != nil || len(hashes) != 8 {
			t.Errorf("AuditHashes: %d hashes, %v", len(hashes), err)
		}
		if records, err := db.AuditRecords(ctx, big, 15000, 15010); err != nil || len(records) != 10 {
			t.Errorf("AuditRecords: %d records, %v", len(records), err)
		}
	})
	measure("read-all pages", postgres.Options{}, func(db *postgres.DB) {
		for _, from := range []int64{0, tenantEvents / 2, tenantEvents} {
			if _, err := db.ReadAll(ctx, big, from, 100); err != nil {
				t.Errorf("read all from %d: %v", from, err)
			}
		}
	})

	// The operations that walk all of one tenant's rows of a table read
	// that tenant's rows, not every tenant's. Once the statistics know a
	// big tenant that holds most of a table, any tenant is taken for one
	// as big (0014), and the planner took such a walk for most of the
	// table, and a sequential scan of it (every tenant's rows) for the
	// cheaper plan.
	if err := pgtest.Session(t, url,
		`DELETE FROM events WHERE tenant_id LIKE 'tiny-%'`,
		`DELETE FROM streams WHERE tenant_id LIKE 'tiny-%'`,
		`ANALYZE`); err != nil {
		t.Fatal(err)
	}
	measure("a small tenant's KEK rotation walk", postgres.Options{}, func(db *postgres.DB) {
		if rows, err := db.StreamKeysBefore(ctx, wide, 2, "", 100); err != nil || len(rows) != len(wideStreams) {
			t.Errorf("StreamKeysBefore: %d rows, %v", len(rows), err)
		}
		if rows, err := db.SubjectKeysBefore(ctx, wide, 2, "", 100); err != nil || len(rows) != 3 {
			t.Errorf("SubjectKeysBefore: %d rows, %v", len(rows), err)
		}
	})
	measure("a small tenant's erasure records", postgres.Options{}, func(db *postgres.DB) {
		if e, err := db.Erasures(ctx, wide); err != nil || !e.Exists || len(e.Streams) != 0 {
			t.Errorf("Erasures: %+v, %v", e, err)
		}
	})
	measure("a small tenant's tokens listed and revoked", postgres.Options{}, func(db *postgres.DB) {
		if tokens, err := db.ListTokens(ctx, wide); err != nil || len(tokens) != 3 {
			t.Errorf("ListTokens: %d tokens, %v", len(tokens), err)
		}
		if n, err := db.DeleteTenantTokens(ctx, wide); err != nil || n != 3 {
			t.Errorf("DeleteTenantTokens: %d tokens, %v", n, err)
		}
	})
	measure("a small tenant's shred", postgres.Options{}, func(db *postgres.DB) {
		if _, err := db.ShredTenant(ctx, wide, time.Time{}); err != nil {
			t.Errorf("ShredTenant: %v", err)
		}
	})
	measure("a shredded small tenant's erasure records", postgres.Options{}, func(db *postgres.DB) {
		if e, err := db.Erasures(ctx, wide); err != nil || len(e.Streams) != len(wideStreams) {
			t.Errorf("Erasures: %d streams, %v", len(e.Streams), err)
		}
	})
}

// measuredTables are the tables whose reads tupleReads counts.
var measuredTables = []string{"events", "streams", "subject_keys", "pii_values", "pii_restrictions", "audit_records", "audit_hashes", "api_tokens"}

// tupleReads returns the index entries read (idx_tup_read) and the rows
// read by sequential scans (seq_tup_read) of measuredTables so far, once
// every other session of the database has ended and so flushed its
// counters.
func tupleReads(t *testing.T, url string) map[string]int64 {
	t.Helper()
	pgtest.WaitForNoSessions(t, url)
	ctx, conn, done := pgtest.Connect(t, url)
	defer done()
	rows, err := conn.Query(ctx, `SELECT relname || ' index entries', sum(idx_tup_read)::bigint FROM pg_stat_user_indexes WHERE relname = ANY($1) GROUP BY relname
		UNION ALL SELECT relname || ' rows scanned', seq_tup_read FROM pg_stat_user_tables WHERE relname = ANY($1)`, measuredTables)
	if err != nil {
		t.Fatalf("counters: %v", err)
	}
	m := map[string]int64{}
	var (
		what string
		n    int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&what, &n}, func() error { m[what] = n; return nil }); err != nil {
		t.Fatalf("counters: %v", err)
	}
	return m
}
