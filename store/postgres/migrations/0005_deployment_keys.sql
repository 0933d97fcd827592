-- +goose Up
-- +goose StatementBegin
-- 0005_deployment_keys: the keys every node of a deployment shares.
--
-- The pseudonym key, the signing key of erasure certificates and the key
-- that binds API token verifiers are created once per deployment
-- (`eventvault init`, or a dev-mode start) and loaded by every node from
-- here, wrapped by the root key (Vault Transit): a node started anywhere on
-- this database and Vault uses the same keys, and the database alone holds
-- none of them in clear. The wrapping's associated data binds a key to its
-- name and version, so a wrapped key copied to another row does not unwrap.
--
-- The table belongs to no tenant, so it has no tenant_id and no row-level
-- security: every node reads every row at start. eventvault_app may read
-- and insert, and update wrapped_key only (a root rotation re-wraps the
-- same key under the newest root version, as it does tenant KEKs: without
-- it, retiring old root versions would leave no node able to start); it
-- may never delete a key or change its name, version or time. A wrapped
-- key it writes opens only if the root wrapped it for that name and
-- version. Replacing a key is an operator's act as the schema owner.
CREATE TABLE deployment_keys (
	name text NOT NULL CHECK (name <> ''),
	version bigint NOT NULL CHECK (version > 0),
	wrapped_key bytea NOT NULL CHECK (length(wrapped_key) > 0),
	created_at timestamptz NOT NULL,
	PRIMARY KEY (name, version)
);

GRANT SELECT, INSERT ON deployment_keys TO eventvault_app;
GRANT UPDATE (wrapped_key) ON deployment_keys TO eventvault_app;
-- +goose StatementEnd
