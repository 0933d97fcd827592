// Package postgres is EventVault's production store: eventvault.Store on
// PostgreSQL through pgx/v5 and pgxpool. It holds only what the store
// interfaces carry: event envelopes in clear, payloads sealed by stream keys,
// keys wrapped one level up, API tokens by hash. It never sees plaintext or
// an unwrapped key.
//
// # Schema
//
// Migrations live in migrations/NNNN_name.sql, embedded in the binary and
// applied by Migrate (never by Open) with goose (github.com/pressly/goose/v3,
// its Provider over pgx's database/sql driver), each in its own transaction,
// under a session-level advisory lock held for the whole run, and recorded
// in goose's goose_db_version. Each file is one goose Up section wrapped
// whole in StatementBegin/StatementEnd: goose sends it as one statement
// without arguments, which pgx runs with the simple protocol, exactly as the
// hand-written runner goose replaced did (a test compares pg_dump's schema
// of both). New files follow the same pattern (a file of a single
// statement, as 0015 and 0016, needs no wrapping); there are no Down sections
// (a schema is never rolled back: restore a backup). Versions start at 1
// and have no gaps.
//
// Migrate takes over a database the old runner migrated: if
// schema_migrations exists and goose_db_version does not, it records the
// old runner's versions in goose_db_version, in one transaction, and runs
// only what is missing. schema_migrations stays, as a mirror of goose's
// versions that Migrate keeps (migration 0001 grants on it, and an older
// binary reads it and refuses a newer schema). Migrate also grants
// eventvault_app SELECT on goose_db_version: Open reads the version there,
// as the app role, and refuses a schema behind this package (naming
// `eventvault migrate`) or ahead of it (naming an upgrade).
//
// # Roles
//
// Migrate runs as the owner: it needs CREATE on the schema (and CREATEROLE
// the first time, for eventvault_app). The server connects as a login role
// that is NOINHERIT and only a member of eventvault_app. The store switches
// every transaction to eventvault_app (below), which needs membership, not
// inheritance; NOINHERIT keeps eventvault_app's grants from applying to the
// login role itself, so that after RESET ROLE (which any session may run)
// it reads no table, runs none of the SECURITY DEFINER functions, creates
// nothing (on PostgreSQL 14 and older, revoke CREATE on schema public from
// PUBLIC) and cannot become another role. What PUBLIC holds it keeps:
// CONNECT and TEMP (the functions pin their search_path for that reason).
// It cannot migrate and cannot pg_dump; backups are taken by a role with
// BYPASSRLS (docs/operations.md). TestTheServersLoginRoleHoldsNothingOfItsOwn
// checks all of this; pgtest.AppLogin makes such a role for tests.
//
// Every table but the two version tables and deployment_keys carries
// tenant_id:
//
//	tenants      (tenant_id PK, last_global_position,        -1 before the first event;
//	             shredded_at, shredded_key_ids,               shredded_at set once the tenant is shredded;
//	             kek_retired_before)                          KEK versions below it are destroyed
//	tenant_keys  (tenant_id, version) PK, key_id, wrapped     every KEK version
//	streams      (tenant_id, name) PK, version, key_id,       version -1 without events;
//	             key_version, kek_version, wrapped_key,       the key lives on the row, so a read
//	             subject, shredded_at, shredded_key_id,       gets it with the events it protects;
//	             purged_at                                    NULL key columns mean shredded (and
//	                                                          shredded_at is then set); subject is
//	                                                          the owner's pseudonym (indexed)
//	events       (tenant_id, global_position) PK,             insert-only (but see Erasure)
//	             UNIQUE (tenant_id, stream, position),
//	             UNIQUE (tenant_id, id), type, recorded_at,
//	             content_mac, payload
//	api_tokens   id PK, token_hash UNIQUE, tenant_id, name,   tenant '' allowed for root tokens;
//	             root, rules jsonb                            token_hash is HMAC-SHA256(token-verifier key, token)
//	deployment_keys (name, version) PK, wrapped_key,          no tenant, no RLS (0005); wrapped by the root;
//	             created_at                                   app role: SELECT, INSERT, UPDATE (wrapped_key)
//	legal_holds  (tenant_id, subject) PK, reason, placed_at,
//	             placed_by
//	erasure_requests (tenant_id, id) PK, subject, state,      never deleted
//	             reason, requested_by, received_at,
//	             completed_at, certificate
//
// # Row-level security
//
// Every tenant table has row-level security enabled and forced, with the
// policy tenant_id = current_setting('eventvault.tenant'). Each store
// transaction first runs, transaction-locally (set_config(..., true), never
// for the session), set_config('role', 'eventvault_app') and the settings
// its scope needs, so even a connection made as the superuser that ran the
// migrations reads and writes under row-level security. eventvault_app
// cannot log in, owns no table, has no BYPASSRLS, and holds only the grants
// the store needs: events are insert-only; of tenants and streams it may
// update only the last global position and the version, and, for key
// rotation (migration 0002), the wrapping of a key: tenant_keys.wrapped and
// streams.kek_version and wrapped_key, never a key id or key version. A
// trigger lets a stream key row change only to a newer KEK version or to
// empty (shredded), so neither a bug nor a forged statement can put back a
// wrapping from before a rotation or give a shredded stream a key again.
// The re-wraps are compare-and-swaps on the whole key row.
//
// api_tokens is read before any tenant is known. Its policies add two
// scopes besides the tenant's: eventvault.token_hash (hex) lets a lookup
// see the one token with that hash, and eventvault.admin = 'on' lets
// creating and retiring the dev root tokens see, insert and delete root
// tokens only. A tenant's scope never sees a root token. The admin scope
// also reads the tenants table (Tenants, for root rotation), and no other
// tenant table. These settings,
// like the tenant, guard against a bug in the store's own SQL (a missing
// filter, a wrong tenant id), not against an attacker who runs arbitrary SQL
// as eventvault_app: such an attacker could set them too.
//
// # Erasure
//
// Migration 0003. ShredStream empties a stream's key columns and stamps
// shredded_at in one UPDATE; the row stays as the erasure fence. A trigger
// makes emptying a key always a whole shred (every key column NULL, the
// destroyed key's id and the time recorded), keeps a shred record, a purge
// time and a stream's owner from ever changing, and lets a live key's id,
// version and time change only by being shredded. Another trigger refuses
// any new KEK version or stream key of a shredded tenant with SQLSTATE
// EV410, which the store maps to EERASED; it takes a FOR SHARE lock on the
// tenant's row, so a key created while ShredTenant runs is either refused
// or shredded by it.
//
// eventvault_app still cannot DELETE events or tenant keys. Purging a
// shredded stream's events and destroying a shredded tenant's KEK versions
// go through two SECURITY DEFINER functions owned by the tables' owner
// (eventvault_purge_stream, eventvault_destroy_tenant_keys), with a fixed
// search_path, executable by eventvault_app only. They act on the tenant
// set for the transaction, never on one passed as an argument, and refuse
// anything not marked shredded first. We chose them over a DELETE grant
// narrowed by policies because a grant would let any statement of the app
// role delete (policies filter rows silently, they do not refuse), while a
// function states the one deletion allowed and refuses the rest loudly.
// Purged events' global positions are gone from ReadAll; they are never
// reused.
//
// ShredStream and ShredTenant notify the channel eventvault_evict inside
// their transactions ("<tenant>/<stream>" or "<tenant>"), so that
// ListenEvictions on every node drops cached keys once the shred commits.
// Reads fail closed whatever a cache holds: the key row is read on the
// snapshot of the events.
//
// The destroyed key's old row version remains in the table's file until
// VACUUM reclaims it, and in WAL and backups until they are recycled. It is
// wrapped by the tenant KEK: rotating the KEK and retiring its old versions
// (and the root key versions that wrapped them) bounds how long such a copy
// stays decryptable.
//
// # Destroying old KEK versions
//
// Migration 0004. DestroyTenantKeysBefore deletes a tenant's KEK versions
// older than a given one through a third SECURITY DEFINER function,
// eventvault_destroy_tenant_keys_before, like 0003's: transaction's tenant
// only, fixed search_path, app role only. It locks the tenant's row FOR
// UPDATE, never deletes the newest version, and refuses with SQLSTATE
// EV409 (ECONFLICT) while a live stream key is wrapped under a version it
// would delete. It then raises tenants.kek_retired_before, a fence that a
// trigger on streams reads under FOR KEY SHARE: a stream key wrapped under
// a destroyed version (from a node whose cache still holds one) is refused
// with EV409, whichever of the two transactions commits first. The app role
// can neither delete a KEK version nor move the fence. A destruction
// notifies the tenant on the eviction channel. 0004 also fixes the
// search_path of 0003's erasure-fence trigger function, which a temporary
// tenants table could otherwise stand in for.
//
// # Appends and global order
//
// An append runs at READ COMMITTED, by one of two paths: the fast append,
// one round trip, when the store has the stream's row cached, and the
// locking path, two round trips, otherwise. Each *DB remembers the
// version, key and owner it last saw of each stream (versionCache, bounded)
// and the ids it appended last (recentIDs). If the cached row satisfies the
// expected version, the key and owner match the request and no id of the
// batch is a recent one, the fast append (append_fast.go) seals at the
// cached version and one pipeline sends BEGIN, the scope, one statement and
// COMMIT: the statement locks the stream's row, and only if its version,
// key and owner are still the cached ones and none of the batch's ids
// exists, takes the global positions, inserts the events and moves the
// version. Otherwise it writes nothing and the store takes the locking
// path, as it does for any database error of the fast append (a unique
// violation when another stream took an id meanwhile): the cached row is a
// hint, the row lock and the checks in the database are the authority, and
// a stale cached row costs a round trip and a discarded seal, never a wrong
// answer.
//
// The locking path is the precise one. The first round trip, with
// BEGIN and the scope, locks the stream's row (SELECT ... FOR UPDATE) and
// looks up the batch's event ids. The store then decides replay or
// conflict (eventvault.Replay, the rule every store shares), checks the expected version and calls Seal (again only if the
// position differs from the cached one). The second round trip takes the
// batch's global positions by bumping tenants.last_global_position, inserts
// the events, moves the stream's version, and commits: all in one statement
// followed by COMMIT in the same pipeline. In both paths the stream's row
// is locked before the tenant's, and the tenant row's lock is held to
// COMMIT; it serialises a tenant's commits, so global positions are
// handed out in commit order and a reader paging by global position never
// sees position N+1 before N. An append refused after the first round
// trip pays a third, for ROLLBACK.
//
// # Lock order
//
// Every writing transaction takes its row locks in one order, so that no
// two wait on each other in a cycle (PostgreSQL would break the cycle
// only after deadlock_timeout, 1 s, with the tenant's appends stalled
// behind it):
//
//  1. stream rows, in name order;
//  2. subject key rows, FOR SHARE, when an append writes personal values
//     (lockSubjectKeysSQL), so that an erasure holding a subject's key
//     holds up appends to that subject's streams only;
//  3. the tenant's row: FOR NO KEY UPDATE by appends and key creation,
//     FOR SHARE or FOR KEY SHARE by the fence triggers, tokens and
//     policies;
//  4. the rows triggers keep beside those: a stream key's epochs
//     (migrations 0012 and 0013), a subject's generation (0011 and 0013);
//  5. the tenant's audit head, last of all: an append's audit record is
//     its last statement, and other audit lines ride with COMMIT.
//
// Two transactions depart from it. An append carrying a stream's first
// key locks the tenant's row first, since the fence triggers' share locks
// would otherwise deadlock two first appends; it then never waits for a
// stream row: its insert skips a committed row (insertStreamKeySQL) and it
// reads the row unlocked (readStreamSQL). ShredTenant's second pass, after
// the tenant's row, may wait on a stream created meanwhile (ShredTenant
// says why that is left).
//
// TestAFirstAppendNeverWaitsOnAStreamRowUnderTheTenantLock and
// TestAnAppendOfPersonalValuesWaitsForASubjectKeyHoldingNoTenantLock hold
// the order where appends could break it. In pg_stat_database,
// TestConcurrentWritersOfOneTenantNeverDeadlock finds no deadlock among
// appends, first appends, erasures and a shred side by side, and the
// kill test of cmd/eventvault none among the appends of a server.
//
// # Group commit
//
// The tenant row's lock, held through COMMIT and its WAL flush, lets a
// tenant's appends commit one at a time. So a node carries a tenant's
// concurrent fast appends in one transaction (append_group.go): each
// append seals at its cached version in its own goroutine and joins its
// tenant's queue. If none of the tenant's groups is in flight, or one is
// and at least 64 events wait (a second then has work to do ahead of the
// tenant row's lock while the first flushes; fewer wait for the first to
// commit and go together) or the one has been in flight for 20 ms (it may
// wait on a stream row locked elsewhere, and must not hold up the tenant's
// appends to other streams), a goroutine takes what waits (at most one
// append per stream, none to a stream of a group in flight, no id twice,
// at most 64 appends and 2,000 events) and sends BEGIN, the scope, one
// statement and COMMIT. The statement is the fast append's for many: it
// locks the group's stream rows in name order, keeps each append whose row
// still has the cached version, key and owner and none of whose ids exists,
// takes the global positions of all it keeps with one bump of the tenant's
// counter (the last lock before the audit head's, as ever), and writes
// them. There is
// no timer: a group is what arrived while the one before it committed.
//
// Each append's outcome is its own. One whose check fails in the group is
// not written and takes the locking path alone, which answers it exactly
// (a conflict, a replay); the others of its group commit. If the group's
// transaction fails with an answer from the database (a unique violation
// when another stream took an id meanwhile, a deadlock), nothing of it is
// written and every member takes the locking path on its own. An append
// is acknowledged only after the COMMIT that wrote it answered; if that
// answer is lost (the connection broke during COMMIT), every member gets
// EUNAVAILABLE, as a lone append would: it may or may not have committed,
// and a retry with the same ids is answered as a replay. Global positions
// stay in commit order because the tenant's counter is bumped once per
// group, under its lock, in the group's one transaction.
// TestGroupCommitSurvivesKilledBackends terminates the store's backends
// during grouped commits and finds every acknowledged event, no partial
// batch and no gap. Options.NoGroupCommit turns it off.
//
// Reads run at REPEATABLE READ, READ ONLY, with BEGIN, the scope, the
// queries and COMMIT in one pipeline: one round trip and one snapshot for a
// page and the keys that protect it. Event rows are decoded from their
// binary values (scanEvents), one allocation per row for MAC and payload.
//
// # Errors
//
// Transactions aborted for serialization (40001) or deadlock (40P01) are
// retried inside the store with jittered back-off; no SQLSTATE or
// *pgconn.PgError reaches a caller. Unique violations become ECONFLICT,
// connection failures EUNAVAILABLE, anything else EINTERNAL with the cause
// kept for logs (code, message and constraint, never row values).
package postgres
