-- +goose Up
-- +goose StatementBegin
-- 0001_init: tenants, keys, streams, events and API tokens, under row-level
-- security, and the role the server's transactions run as.

-- eventvault_app is the role every store transaction switches to with
-- set_config('role', 'eventvault_app', true). It cannot log in, does not own
-- the tables and has no BYPASSRLS, so row-level security always applies to it.
-- Roles are cluster-wide: a second database on the same server (or a
-- concurrent migration of another database) finds it made already.
DO $$
BEGIN
	CREATE ROLE eventvault_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT;
EXCEPTION
	WHEN duplicate_object OR unique_violation THEN
		NULL;
END
$$;

-- A tenant's row carries the last global position handed out. Appends take
-- their global positions by updating it as the last step before commit, so
-- its row lock orders a tenant's appends: positions are given in commit order.
CREATE TABLE tenants (
	tenant_id text PRIMARY KEY,
	last_global_position bigint NOT NULL DEFAULT -1,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- tenant_keys holds every version of a tenant's KEK, wrapped by the root key.
CREATE TABLE tenant_keys (
	tenant_id text NOT NULL REFERENCES tenants (tenant_id),
	version bigint NOT NULL CHECK (version BETWEEN 0 AND 4294967295),
	key_id uuid NOT NULL,
	wrapped bytea NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, version)
);

-- A stream's row holds its version (last position, -1 without events) and its
-- data key wrapped by the tenant KEK, so that a read fetches the key together
-- with the events it protects.
CREATE TABLE streams (
	tenant_id text NOT NULL REFERENCES tenants (tenant_id),
	name text NOT NULL,
	version bigint NOT NULL DEFAULT -1,
	key_id uuid,
	key_version bigint CHECK (key_version BETWEEN 0 AND 4294967295),
	kek_version bigint CHECK (kek_version BETWEEN 0 AND 4294967295),
	wrapped_key bytea,
	key_created_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, name)
);

-- events holds envelopes in clear and payloads sealed by the stream key.
CREATE TABLE events (
	tenant_id text NOT NULL,
	global_position bigint NOT NULL,
	stream text NOT NULL,
	position bigint NOT NULL,
	id uuid NOT NULL,
	type text NOT NULL,
	recorded_at timestamptz NOT NULL,
	content_mac bytea NOT NULL,
	payload bytea NOT NULL,
	PRIMARY KEY (tenant_id, global_position),
	UNIQUE (tenant_id, stream, position),
	UNIQUE (tenant_id, id)
);

-- api_tokens holds tokens by SHA-256 hash. A root token's tenant may be ''.
CREATE TABLE api_tokens (
	id text PRIMARY KEY,
	token_hash bytea NOT NULL UNIQUE,
	tenant_id text NOT NULL,
	name text NOT NULL,
	root boolean NOT NULL DEFAULT false,
	rules jsonb NOT NULL DEFAULT '[]',
	created_at timestamptz NOT NULL
);

-- Row-level security. nullif: once a transaction that set the tenant ends, the
-- setting reads '' on that connection, which must match no row.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_keys
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

ALTER TABLE streams ENABLE ROW LEVEL SECURITY;
ALTER TABLE streams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON streams
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
-- A tenant's transactions see and write its tokens, but never a root token:
-- a root token is admin over every tenant.
CREATE POLICY tenant_isolation ON api_tokens
	USING (NOT root AND tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (NOT root AND tenant_id = nullif(current_setting('eventvault.tenant', true), ''));
-- Authentication looks a token up before its tenant is known: the lookup sets
-- eventvault.token_hash for its transaction and sees that one row only.
CREATE POLICY token_lookup ON api_tokens FOR SELECT
	USING (token_hash = decode(nullif(current_setting('eventvault.token_hash', true), ''), 'hex'));
-- Creating and retiring the dev root tokens (whose tenant may be '') sets
-- eventvault.admin for the transaction, which then sees, inserts and deletes
-- root tokens only.
CREATE POLICY root_admin_insert ON api_tokens FOR INSERT
	WITH CHECK (root AND current_setting('eventvault.admin', true) = 'on');
CREATE POLICY root_admin_select ON api_tokens FOR SELECT
	USING (root AND current_setting('eventvault.admin', true) = 'on');
CREATE POLICY root_admin_delete ON api_tokens FOR DELETE
	USING (root AND current_setting('eventvault.admin', true) = 'on');

-- Grants: only what the store's transactions need. Events are insert-only.
DO $$
BEGIN
	EXECUTE format('GRANT USAGE ON SCHEMA %I TO eventvault_app', current_schema());
END
$$;
GRANT SELECT, INSERT ON tenants TO eventvault_app;
GRANT UPDATE (last_global_position) ON tenants TO eventvault_app;
GRANT SELECT, INSERT ON tenant_keys TO eventvault_app;
GRANT SELECT, INSERT ON streams TO eventvault_app;
GRANT UPDATE (version) ON streams TO eventvault_app;
GRANT SELECT, INSERT ON events TO eventvault_app;
GRANT SELECT, INSERT, DELETE ON api_tokens TO eventvault_app;
-- schema_migrations holds no tenant data; the server reads it at start to
-- check that the schema is up to date.
GRANT SELECT ON schema_migrations TO eventvault_app;
-- +goose StatementEnd
