-- +goose Up
-- +goose StatementBegin
-- 0007_policies: policy documents, versioned, and the policies attached to
-- an API token.
--
-- policies keeps every version of every document: a write or a deletion
-- inserts the next version, and nothing is ever updated or deleted, so
-- the history of who could do what stays (eventvault_app holds SELECT and
-- INSERT only). body is the Cedar text; NULL for a deletion.
CREATE TABLE policies (
	tenant_id text NOT NULL,
	name text NOT NULL,
	version bigint NOT NULL CHECK (version > 0),
	body text,
	deleted boolean NOT NULL DEFAULT false,
	created_by text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, name, version),
	CHECK (deleted = (body IS NULL))
);
ALTER TABLE policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policies
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));
GRANT SELECT, INSERT ON policies TO eventvault_app;

-- The names of the tenant's policy documents attached to a token.
ALTER TABLE api_tokens ADD COLUMN policies text[] NOT NULL DEFAULT '{}';
-- +goose StatementEnd
