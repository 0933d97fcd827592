// Package postgres is EventVault's production store: eventvault.Store on
// PostgreSQL through pgx/v5 and pgxpool. It holds only what the store
// interfaces carry: event envelopes in clear, payloads sealed by stream keys,
// keys wrapped one level up, API tokens by hash. It never sees plaintext or
// an unwrapped key.
//
// # Schema
//
// Migrations live in migrations/NNNN_name.sql, embedded in the binary and
// applied by Migrate (never by Open), each in its own transaction under an
// advisory lock, and recorded in schema_migrations. Every table but
// schema_migrations carries tenant_id:
//
//	tenants      (tenant_id PK, last_global_position)        -1 before the first event
//	tenant_keys  (tenant_id, version) PK, key_id, wrapped     every KEK version
//	streams      (tenant_id, name) PK, version, key_id,       version -1 without events;
//	             key_version, kek_version, wrapped_key        the key lives on the row, so a read
//	                                                          gets it with the events it protects;
//	                                                          NULL key columns mean shredded
//	events       (tenant_id, global_position) PK,             insert-only
//	             UNIQUE (tenant_id, stream, position),
//	             UNIQUE (tenant_id, id), type, recorded_at,
//	             content_mac, payload
//	api_tokens   id PK, token_hash UNIQUE, tenant_id, name,   tenant '' allowed for root tokens
//	             root, rules jsonb
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
// # Appends and global order
//
// An append is two round trips at READ COMMITTED. The first, with BEGIN and
// the scope, locks the stream's row (SELECT ... FOR UPDATE) and looks up the
// batch's event ids. The store then decides replay or conflict, checks the
// expected version and calls Seal. The second round trip takes the batch's
// global positions by bumping tenants.last_global_position, inserts the
// events, moves the stream's version, and commits: all in one statement
// followed by COMMIT in the same pipeline. The tenant row's lock is held
// only for that last round trip and serialises a tenant's commits, so
// global positions are handed out in commit order and a reader paging by
// global position never sees position N+1 before N. An append refused after
// the first round trip pays a third, for ROLLBACK.
//
// Reads run at REPEATABLE READ, READ ONLY, with BEGIN, the scope, the
// queries and COMMIT in one pipeline: one round trip and one snapshot for a
// page and the keys that protect it.
//
// # Errors
//
// Transactions aborted for serialization (40001) or deadlock (40P01) are
// retried inside the store with jittered back-off; no SQLSTATE or
// *pgconn.PgError reaches a caller. Unique violations become ECONFLICT,
// connection failures EUNAVAILABLE, anything else EINTERNAL with the cause
// kept for logs (code, message and constraint, never row values).
package postgres
