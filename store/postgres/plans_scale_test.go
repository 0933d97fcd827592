package postgres_test

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
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

	// Every operation below touches at most a few hundred rows; one that
	// scans the tenant reads tens of thousands.
	measure := measureReads(t, url, 2000, fmt.Sprintf("next to a tenant of %d events and %d streams", tenantEvents, fillerStreams+8))
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

// TestStatementsOfTenantsAlikeReadWhatTheyNeed: a hundred tenants of the
// same size, with the same stream names, subjects and personal-value
// tokens, and statistics that know them all, so that a generic plan sees a
// name that every tenant has. Each tenant holds 1,000 streams (20 of 100
// events, the rest of one), an owner with a key for each, 2,000 personal
// values, 500 restrictions and holds, 1,000 erasure requests, 2,000 audit
// records, hashes and checkpoints, 20 tokens, 600 policy document versions,
// 1,000 consumers and 1,000 erasure propagations, 500 KEK versions.
// Besides reads and appends, writes of one row each (a hold, a document's
// version, a consumer, an audit record and checkpoint, a token) are
// measured. Every index of these tables begins with the tenant, so a plan
// that goes wrong walks one tenant's rows, filtering them by name (or,
// over an OR of row-level policies, takes a bitmap of them); each operation on
// a few of one tenant's streams and subjects must read at most 400 index
// entries or rows of any table, fewer than any such walk (500 to 2,980)
// and than a scan of every tenant's rows. A tenant's shred walks all its
// streams by design and is measured on a small tenant by
// TestStatementsOfABigNewTenantReadWhatTheyNeed.
func TestStatementsOfTenantsAlikeReadWhatTheyNeed(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	const (
		tenants                          = 100
		streamsEach                      = 1000
		longStreams                      = 20  // of eventsEach events; the others hold one
		eventsEach                       = 100 // per long stream
		valuesEach                       = 100 // personal values of each long stream's owner
		restricted                       = 500 // owners restricted, from the last stream back
		tokensEach                       = 20
		auditEach                        = longStreams * eventsEach
		tenantEvents                     = auditEach + streamsEach - longStreams
		first                            = "alike-0"
		measured     eventvault.TenantID = "alike-50"
	)
	setup, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// The first tenant's KEK row and first stream key row come from the
	// store; its other streams, and every other tenant's, are copies with
	// the same names. Stream order-N's owner is subject-N.
	streams, keys := makeStreams(t, setup, first, "order", 1, 1)
	setup.Close()
	clone := func(table string) string {
		return fmt.Sprintf(`INSERT INTO %[1]s SELECT (jsonb_populate_record(x, jsonb_build_object('tenant_id', 'alike-' || g))).*
			FROM %[1]s x, generate_series(1, %[2]d) g WHERE x.tenant_id = '%[3]s'`, table, tenants-1, first)
	}
	if err := pgtest.Session(t, url,
		fmt.Sprintf(`INSERT INTO streams SELECT (jsonb_populate_record(x, jsonb_build_object('name', 'order-' || n))).*
			FROM streams x, generate_series(1, %d) n WHERE x.tenant_id = '%s'`, streamsEach-1, first),
		fmt.Sprintf(`UPDATE streams SET subject = 'subject-' || substr(name, 7), version = CASE WHEN substr(name, 7)::int < %d THEN %d ELSE 0 END
			WHERE tenant_id = '%s'`, longStreams, eventsEach-1, first),
		fmt.Sprintf(`INSERT INTO tenants (tenant_id, last_global_position) SELECT 'alike-' || g, -1 FROM generate_series(1, %d) g`, tenants-1),
		// 500 KEK versions each, a daily rotation's year and more (the
		// store made none: makeStreams creates stream keys only).
		fmt.Sprintf(`INSERT INTO tenant_keys (tenant_id, version, key_id, wrapped, created_at)
			SELECT 'alike-' || g, v, gen_random_uuid(), '\x00', now() FROM generate_series(0, %d) g, generate_series(1, 500) v`, tenants-1),
		clone("streams"),
		// Every tenant's events, at global positions 0, 1, … in stream
		// order (the one the store wrote makes room).
		fmt.Sprintf(`DELETE FROM events WHERE tenant_id = '%s'`, first),
		fmt.Sprintf(`INSERT INTO events (tenant_id, global_position, stream, position, id, type, recorded_at, content_mac, payload)
			SELECT 'alike-' || g, row_number() OVER (PARTITION BY g ORDER BY s, p) - 1, 'order-' || s, p, gen_random_uuid(), 'Filler', now(), '\x00', '\x00'
			FROM generate_series(0, %[1]d) g, generate_series(0, %[2]d) s, generate_series(0, %[3]d) p
			WHERE (s < %[4]d OR p = 0)`, tenants-1, streamsEach-1, eventsEach-1, longStreams),
		`UPDATE tenants SET last_global_position = (SELECT max(global_position) FROM events e WHERE e.tenant_id = tenants.tenant_id) WHERE tenant_id LIKE 'alike-%'`,
		fmt.Sprintf(`INSERT INTO subject_keys (tenant_id, subject, key_id, key_version, kek_version, wrapped_key, created_at, generation)
			SELECT 'alike-' || g, 'subject-' || s, gen_random_uuid(), 1, 1, '\x00', now(), 1 FROM generate_series(0, %d) g, generate_series(0, %d) s`, tenants-1, streamsEach-1),
		fmt.Sprintf(`INSERT INTO pii_values (tenant_id, token, version, subject, stream, event_id, pointer, class, key_id, ciphertext, created_at)
			SELECT k.tenant_id, 'token-' || substr(k.subject, 9) || '-' || v, 1, k.subject, 'order-' || substr(k.subject, 9), gen_random_uuid(), '/name', 'name', k.key_id, '\x00', now()
			FROM subject_keys k, generate_series(1, %d) v WHERE k.tenant_id LIKE 'alike-%%' AND substr(k.subject, 9)::int < %d`, valuesEach, longStreams),
		fmt.Sprintf(`INSERT INTO pii_restrictions (tenant_id, subject, reason, placed_at, placed_by)
			SELECT 'alike-' || g, 'subject-' || s, 'objection', now(), 'dpo' FROM generate_series(0, %d) g, generate_series(%d, %d) s`, tenants-1, streamsEach-restricted, streamsEach-1),
		fmt.Sprintf(`INSERT INTO audit_records (tenant_id, idx, line) SELECT 'alike-' || g, i, '\x00' FROM generate_series(0, %d) g, generate_series(0, %d) i`, tenants-1, auditEach-1),
		fmt.Sprintf(`INSERT INTO audit_hashes (tenant_id, hash_idx, hash) SELECT 'alike-' || g, i, sha256(int8send(i)) FROM generate_series(0, %d) g, generate_series(0, %d) i`, tenants-1, auditEach-1),
		fmt.Sprintf(`INSERT INTO audit_heads (tenant_id, size) SELECT 'alike-' || g, %d FROM generate_series(0, %d) g`, auditEach, tenants-1),
		fmt.Sprintf(`INSERT INTO api_tokens (id, token_hash, tenant_id, name, created_at)
			SELECT 'alike-' || g || '-' || i, sha256(convert_to('alike-' || g || '-' || i, 'UTF8')), 'alike-' || g, 'app', now() FROM generate_series(0, %d) g, generate_series(1, %d) i`, tenants-1, tokensEach),
		// A completed erasure request for every owner, and holds on those
		// restricted.
		fmt.Sprintf(`INSERT INTO erasure_requests (tenant_id, id, subject, state, requested_by, received_at, completed_at)
			SELECT 'alike-' || g, gen_random_uuid(), 'subject-' || s, 'completed', 'dpo', now() - interval '1 day', now() FROM generate_series(0, %d) g, generate_series(0, %d) s`, tenants-1, streamsEach-1),
		fmt.Sprintf(`INSERT INTO legal_holds (tenant_id, subject, reason, placed_at, placed_by)
			SELECT 'alike-' || g, 'subject-' || s, 'litigation', now(), 'dpo' FROM generate_series(0, %d) g, generate_series(%d, %d) s`, tenants-1, streamsEach-restricted, streamsEach-1),
		// Policy documents of many versions, audit checkpoints, consumers
		// and erasure propagations (all done but two), alike too.
		fmt.Sprintf(`INSERT INTO policies (tenant_id, name, version, body, created_by, created_at)
			SELECT 'alike-' || g, 'doc-' || n, v, 'permit (principal, action, resource);', 'admin', now()
			FROM generate_series(0, %d) g, generate_series(0, 19) n, generate_series(1, 30) v`, tenants-1),
		fmt.Sprintf(`INSERT INTO audit_checkpoints (tenant_id, size, note) SELECT 'alike-' || g, s, 'note' FROM generate_series(0, %d) g, generate_series(1, %d) s`, tenants-1, auditEach),
		fmt.Sprintf(`INSERT INTO subscription_consumers (tenant_id, name, filter, checkpoint, created_at, created_by)
			SELECT 'alike-' || g, 'consumer-' || c, '{}', 0, now(), 'app' FROM generate_series(0, %d) g, generate_series(1, %d) c`, tenants-1, streamsEach),
		fmt.Sprintf(`INSERT INTO erasure_propagations (tenant_id, request_id, tombstone_position, body, done, created_at)
			SELECT 'alike-' || g, md5('alike-' || g || '-' || r)::uuid, r, '{}', r > 2, now() FROM generate_series(0, %d) g, generate_series(1, %d) r`, tenants-1, streamsEach),
		`ANALYZE`,
	); err != nil {
		t.Fatalf("tenants alike: %v", err)
	}
	measure := measureReads(t, url, 400, fmt.Sprintf("among %d tenants alike (each %d events, %d streams and owners, %d personal values, %d restrictions, %d audit records), with the same names",
		tenants, tenantEvents, streamsEach, longStreams*valuesEach, restricted, auditEach))
	key := keys[streams[0]] // every stream's copy of it
	few := make([]eventvault.StreamName, 8)
	for i := range few {
		few[i] = eventvault.StreamName(fmt.Sprintf("order-%d", i*2))
	}
	appendEach := func(db *postgres.DB, n int) {
		var wg sync.WaitGroup
		for _, s := range few {
			wg.Go(func() {
				for range 5 {
					if _, err := db.Append(ctx, measured, appendRequest(s, key, n)); err != nil {
						t.Errorf("append to %s: %v", s, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	measure("appends, locking path then group commit", postgres.Options{}, func(db *postgres.DB) { appendEach(db, 3) })
	measure("appends, locking path then fast", postgres.Options{NoGroupCommit: true}, func(db *postgres.DB) { appendEach(db, 3) })
	measure("appends replayed", postgres.Options{}, func(db *postgres.DB) {
		for _, s := range few {
			req := appendRequest(s, key, 2)
			for range 2 {
				if _, err := db.Append(ctx, measured, req); err != nil {
					t.Errorf("append to %s: %v", s, err)
				}
			}
		}
	})
	measure("stream reads", postgres.Options{}, func(db *postgres.DB) {
		for _, s := range few {
			if page, err := db.ReadStream(ctx, measured, s, eventvault.ReadOptions{From: 0, Limit: 40}); err != nil || len(page.Events) != 40 {
				t.Errorf("read %s: %d events, %v", s, len(page.Events), err)
			}
			if _, err := db.ReadStream(ctx, measured, s, eventvault.ReadOptions{From: -1, Limit: 5, Backward: true}); err != nil {
				t.Errorf("read %s backwards: %v", s, err)
			}
		}
	})
	measure("read-all pages", postgres.Options{}, func(db *postgres.DB) {
		// One page among the long streams, one across the short ones.
		for _, from := range []int64{auditEach / 2, tenantEvents - 60} {
			if page, err := db.ReadAll(ctx, measured, from, 50); err != nil || len(page.Events) != 50 {
				t.Errorf("read all from %d: %d events, %v", from, len(page.Events), err)
			}
		}
	})
	measure("personal values", postgres.Options{}, func(db *postgres.DB) {
		tokens := []string{"token-3-7", "token-3-70", "token-12-1", "token-19-100"}
		if page, err := db.PIIValues(ctx, measured, tokens); err != nil || len(page.Values) != len(tokens) {
			t.Errorf("PIIValues: %d values, %v", len(page.Values), err)
		}
	})
	measure("subject states and a subject's personal values", postgres.Options{}, func(db *postgres.DB) {
		subjects := []eventvault.Pseudonym{"subject-1", "subject-7", "subject-700", "subject-999"}
		if states, _, err := db.SubjectStates(ctx, measured, subjects); err != nil || len(states) != len(subjects) {
			t.Errorf("SubjectStates: %d states, %v", len(states), err)
		}
		if values, _, err := db.SubjectPII(ctx, measured, "subject-4"); err != nil || len(values) != valuesEach {
			t.Errorf("SubjectPII: %d values, %v", len(values), err)
		}
	})
	measure("audit log", postgres.Options{}, func(db *postgres.DB) {
		if hashes, err := db.AuditHashes(ctx, measured, []int64{0, 1, 1000, auditEach - 1}); err != nil || len(hashes) != 4 {
			t.Errorf("AuditHashes: %d hashes, %v", len(hashes), err)
		}
		if records, err := db.AuditRecords(ctx, measured, 1500, 1510); err != nil || len(records) != 10 {
			t.Errorf("AuditRecords: %d records, %v", len(records), err)
		}
	})
	measure("a subject's erasure, restriction and hold", postgres.Options{}, func(db *postgres.DB) {
		const subject eventvault.Pseudonym = "subject-3"
		if streams, err := db.StreamsOfSubject(ctx, measured, subject); err != nil || len(streams) != 1 {
			t.Errorf("StreamsOfSubject: %v, %v", streams, err)
		}
		if _, err := db.Hold(ctx, measured, "subject-900"); err != nil {
			t.Errorf("Hold: %v", err)
		}
		if _, err := db.LatestErasureRequest(ctx, measured, subject); err != nil {
			t.Errorf("LatestErasureRequest: %v", err)
		}
		if err := db.PutRestriction(ctx, measured, eventvault.Restriction{Subject: subject, Reason: "objection", PlacedAt: time.Now(), PlacedBy: "dpo"}); err != nil {
			t.Errorf("PutRestriction: %v", err)
		}
		if _, err := db.Restriction(ctx, measured, subject); err != nil {
			t.Errorf("Restriction: %v", err)
		}
		if err := db.DeleteRestriction(ctx, measured, subject); err != nil {
			t.Errorf("DeleteRestriction: %v", err)
		}
		if _, err := db.EraseSubjectPII(ctx, measured, subject, time.Now()); err != nil {
			t.Errorf("EraseSubjectPII: %v", err)
		}
		if _, err := db.ShredStream(ctx, measured, "order-3", true, time.Now()); err != nil {
			t.Errorf("ShredStream: %v", err)
		}
	})
	measure("a token, a stream's owner and keys, a document, a checkpoint, a consumer, propagations", postgres.Options{}, func(db *postgres.DB) {
		hash := sha256.Sum256([]byte(string(measured) + "-7"))
		if tok, err := db.TokenByHash(ctx, hash[:]); err != nil || tok.Tenant != measured {
			t.Errorf("TokenByHash: %+v, %v", tok, err)
		}
		if owner, err := db.StreamOwner(ctx, measured, "order-700"); err != nil || owner != "subject-700" {
			t.Errorf("StreamOwner: %q, %v", owner, err)
		}
		if _, err := db.StreamKey(ctx, measured, "order-700"); err != nil {
			t.Errorf("StreamKey: %v", err)
		}
		if _, err := db.SubjectKey(ctx, measured, "subject-700"); err != nil {
			t.Errorf("SubjectKey: %v", err)
		}
		if _, err := db.NextGlobalPosition(ctx, measured); err != nil {
			t.Errorf("NextGlobalPosition: %v", err)
		}
		if v, err := db.LatestPolicyVersion(ctx, measured, "doc-7"); err != nil || v.Version != 30 {
			t.Errorf("LatestPolicyVersion: %+v, %v", v, err)
		}
		if v, err := db.PolicyVersion(ctx, measured, "doc-7", 12); err != nil || v.Version != 12 {
			t.Errorf("PolicyVersion: %+v, %v", v, err)
		}
		if size, _, err := db.LatestAuditCheckpoint(ctx, measured); err != nil || size != auditEach {
			t.Errorf("LatestAuditCheckpoint: %d, %v", size, err)
		}
		if _, err := db.Consumer(ctx, measured, "consumer-700"); err != nil {
			t.Errorf("Consumer: %v", err)
		}
		if _, err := db.AckConsumer(ctx, measured, "consumer-700", 10, time.Now()); err != nil {
			t.Errorf("AckConsumer: %v", err)
		}
		if open, err := db.OpenPropagations(ctx, measured); err != nil || len(open) != 2 {
			t.Errorf("OpenPropagations: %d, %v", len(open), err)
		}
		if _, err := db.Propagation(ctx, measured, uuid.UUID(md5.Sum([]byte(string(measured)+"-700")))); err != nil {
			t.Errorf("Propagation: %v", err)
		}
		if k, err := db.TenantKey(ctx, measured); err != nil || k.Version != 500 {
			t.Errorf("TenantKey: version %d, %v", k.Version, err)
		}
		if k, err := db.TenantKeyVersion(ctx, measured, 250); err != nil || k.Version != 250 {
			t.Errorf("TenantKeyVersion: version %d, %v", k.Version, err)
		}
		if _, err := db.DestroyTenantKeysBefore(ctx, measured, 1); err != nil {
			t.Errorf("DestroyTenantKeysBefore: %v", err)
		}
	})
	measure("writes of one row each: a hold, a document's version, a consumer, a checkpoint, an audit record, a token", postgres.Options{}, func(db *postgres.DB) {
		now := time.Now()
		if err := db.PutHold(ctx, measured, eventvault.Hold{Subject: "subject-8", Reason: "litigation", PlacedAt: now, PlacedBy: "dpo"}); err != nil {
			t.Errorf("PutHold: %v", err)
		}
		if err := db.DeleteHold(ctx, measured, "subject-8"); err != nil {
			t.Errorf("DeleteHold: %v", err)
		}
		if err := db.AddPolicyVersion(ctx, eventvault.PolicyVersion{Tenant: measured, Name: "doc-7", Version: 31, Body: "permit (principal, action, resource);", CreatedBy: "admin", CreatedAt: now}); err != nil {
			t.Errorf("AddPolicyVersion: %v", err)
		}
		if _, _, err := db.PutConsumer(ctx, eventvault.Consumer{Tenant: measured, Name: "consumer-new", CreatedAt: now, CreatedBy: "app"}); err != nil {
			t.Errorf("PutConsumer: %v", err)
		}
		if err := db.DeleteConsumer(ctx, measured, "consumer-new"); err != nil {
			t.Errorf("DeleteConsumer: %v", err)
		}
		if _, err := db.AppendAudit(ctx, measured, [][]byte{[]byte(`{"index":0,"time":"x"}`)}); err != nil {
			t.Errorf("AppendAudit: %v", err)
		}
		if err := db.AddAuditCheckpoint(ctx, measured, auditEach+1, []byte("note")); err != nil {
			t.Errorf("AddAuditCheckpoint: %v", err)
		}
		if err := db.CreateToken(ctx, eventvault.Token{ID: "alike-new", Hash: []byte("alike-new-hash"), Tenant: measured, Name: "app", CreatedAt: now}); err != nil {
			t.Errorf("CreateToken: %v", err)
		}
		if err := db.DeleteToken(ctx, measured, "alike-new"); err != nil {
			t.Errorf("DeleteToken: %v", err)
		}
	})
	measure("the tenant's KEK rotation walk, a page each, and its tokens", postgres.Options{}, func(db *postgres.DB) {
		if rows, err := db.StreamKeysBefore(ctx, measured, 2, "order-5", 100); err != nil || len(rows) != 100 {
			t.Errorf("StreamKeysBefore: %d rows, %v", len(rows), err)
		}
		if rows, err := db.SubjectKeysBefore(ctx, measured, 2, "subject-5", 100); err != nil || len(rows) != 100 {
			t.Errorf("SubjectKeysBefore: %d rows, %v", len(rows), err)
		}
		if tokens, err := db.ListTokens(ctx, measured); err != nil || len(tokens) != tokensEach {
			t.Errorf("ListTokens: %d tokens, %v", len(tokens), err)
		}
	})
}

// measureReads returns a function that runs op on a store of its own, opened
// with opts, and fails the test if op read more than limit index entries,
// or rows by sequential scan, of any of measuredTables (context says what
// surrounds the tenant, for the message).
func measureReads(t *testing.T, url string, limit int64, context string) func(name string, opts postgres.Options, op func(db *postgres.DB)) {
	return func(name string, opts postgres.Options, op func(db *postgres.DB)) {
		t.Helper()
		before := tupleReads(t, url)
		db, err := postgres.Open(t.Context(), url, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		op(db)
		db.Close()
		after := tupleReads(t, url)
		for what, n := range after {
			read := n - before[what]
			t.Logf("%s: %s %d", name, what, read)
			if read > limit {
				t.Errorf("%s read %d %s %s: a scan of that tenant's rows, or of every tenant's", name, read, what, context)
			}
		}
	}
}

// measuredTables are the tables whose reads tupleReads counts.
var measuredTables = []string{"events", "streams", "subject_keys", "pii_values", "pii_restrictions", "audit_records", "audit_hashes", "api_tokens", "erasure_requests", "legal_holds",
	"policies", "audit_checkpoints", "subscription_consumers", "erasure_propagations", "tenant_keys"}

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
