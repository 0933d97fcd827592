-- +goose Up
-- +goose StatementBegin
-- 0012_stream_key_epochs: a per-tenant epoch of its stream key rows, so
-- that a node reading the tenant's log may keep, from one page to the
-- next, the ciphers it checked against the key rows, and know from the
-- page's own snapshot whether every one of those rows is still as it was
-- (docs/performance.md, "Read-all: the keys on request").
--
-- stream_key_epochs.epoch moves on, in the same transaction, with every
-- change to a stream row's key or name that exists (re-wrapped by a KEK
-- rotation, shredded alone or with its tenant, written straight into the
-- table: an UPDATE of those columns, or a DELETE). A new stream (an
-- INSERT) leaves it: no row a node checked changes with it, and a stream a
-- node never checked it reads the key of anyway. An append's UPDATE of
-- the version leaves it too: the trigger names the key's columns. As
-- 0011's generation, the triggers move it, so that no path that changes a
-- key can forget to, and nothing else may write it.
CREATE TABLE stream_key_epochs (
	tenant_id text PRIMARY KEY,
	epoch bigint NOT NULL CHECK (epoch > 0)
);

ALTER TABLE stream_key_epochs ENABLE ROW LEVEL SECURITY;
ALTER TABLE stream_key_epochs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stream_key_epochs
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

-- The server's role reads the epoch and never writes it (as 0011's
-- generation): it can neither hold it while it changes a key row nor push
-- it to its end.
GRANT SELECT ON stream_key_epochs TO eventvault_app;

CREATE FUNCTION eventvault_next_stream_key_epoch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
BEGIN
	INSERT INTO stream_key_epochs AS k (tenant_id, epoch) VALUES (tenant, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET epoch = k.epoch + 1;
	IF TG_OP = 'UPDATE' AND OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
		INSERT INTO stream_key_epochs AS k (tenant_id, epoch) VALUES (OLD.tenant_id, 1)
			ON CONFLICT (tenant_id) DO UPDATE SET epoch = k.epoch + 1;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER stream_key_epoch AFTER UPDATE OF tenant_id, name, key_id, key_version, kek_version, wrapped_key, key_created_at, shredded_at
	ON streams FOR EACH ROW EXECUTE FUNCTION eventvault_next_stream_key_epoch();
CREATE TRIGGER stream_key_epoch_delete AFTER DELETE ON streams
	FOR EACH ROW EXECUTE FUNCTION eventvault_next_stream_key_epoch();
-- They fire in a session with session_replication_role = replica too (a
-- logical replication apply worker, or an operator's session that skips
-- the other triggers): a key row changed there still moves the epoch.
ALTER TABLE streams ENABLE ALWAYS TRIGGER stream_key_epoch;
ALTER TABLE streams ENABLE ALWAYS TRIGGER stream_key_epoch_delete;
-- An epoch only moves forward.
CREATE FUNCTION eventvault_check_stream_key_epoch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.epoch <= OLD.epoch THEN
		RAISE EXCEPTION 'a tenant''s stream key epoch only moves forward'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER stream_key_epochs_forward BEFORE UPDATE ON stream_key_epochs
	FOR EACH ROW EXECUTE FUNCTION eventvault_check_stream_key_epoch();
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_next_stream_key_epoch() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_stream_key_epoch() SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
