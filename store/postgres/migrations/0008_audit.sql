-- +goose Up
-- +goose StatementBegin
-- 0008_audit: the tamper-evident audit log, one per tenant plus the
-- deployment's own (tenant_id ''), as package audit describes it.
--
-- audit_heads holds the size of each log; a record takes the next index
-- by updating it in the transaction of the action it records, so a log's
-- indexes are gapless and in commit order. audit_records holds the record
-- lines (canonical JSON, the Merkle leaves), audit_hashes the tree hashes
-- the checkpoint publisher stores as it integrates records (storage
-- indexes of golang.org/x/mod/sumdb/tlog), audit_checkpoints the signed
-- checkpoints (C2SP tlog-checkpoint in a signed note).
--
-- eventvault_app may insert and read, never update or delete a record, a
-- hash or a checkpoint: history is written once. It may update a head's
-- size only, and a head set back changes no record: an index taken again
-- collides with the record already there.
CREATE TABLE audit_heads (
	tenant_id text PRIMARY KEY,
	size bigint NOT NULL CHECK (size >= 0)
);
CREATE TABLE audit_records (
	tenant_id text NOT NULL,
	idx bigint NOT NULL CHECK (idx >= 0),
	line bytea NOT NULL,
	PRIMARY KEY (tenant_id, idx)
);
CREATE TABLE audit_hashes (
	tenant_id text NOT NULL,
	hash_idx bigint NOT NULL CHECK (hash_idx >= 0),
	hash bytea NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (tenant_id, hash_idx)
);
CREATE TABLE audit_checkpoints (
	tenant_id text NOT NULL,
	size bigint NOT NULL CHECK (size >= 0),
	note text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, size)
);

-- A tenant's transactions see and write its own log; the admin scope
-- (eventvault.admin = 'on') the deployment's log (tenant_id '') and, to
-- find the logs to checkpoint, every head.
DO $$
DECLARE t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['audit_heads', 'audit_records', 'audit_hashes', 'audit_checkpoints'] LOOP
		EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
			USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
			WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))$p$, t);
		EXECUTE format($p$CREATE POLICY deployment_log ON %I
			USING (tenant_id = '' AND current_setting('eventvault.admin', true) = 'on')
			WITH CHECK (tenant_id = '' AND current_setting('eventvault.admin', true) = 'on')$p$, t);
	END LOOP;
END
$$;
CREATE POLICY admin_heads ON audit_heads FOR SELECT
	USING (current_setting('eventvault.admin', true) = 'on');

GRANT SELECT, INSERT ON audit_heads, audit_records, audit_hashes, audit_checkpoints TO eventvault_app;
GRANT UPDATE (size) ON audit_heads TO eventvault_app;
-- +goose StatementEnd
