-- +goose Up
-- +goose StatementBegin
-- 0004_kek_retire: destroying a tenant's old KEK versions.
--
-- After a KEK rotation has re-wrapped every stream key under the newest
-- version, the older versions serve only the copies of key rows that live
-- on outside the table: old row versions awaiting VACUUM, WAL, backups.
-- Destroying them is what makes such a copy undecryptable. eventvault_app
-- still cannot DELETE tenant keys (0001); it destroys old versions through
-- the SECURITY DEFINER function below, which acts on the transaction's
-- tenant only, never destroys the newest version, and refuses while a live
-- stream key is still wrapped under a version it would destroy.

-- kek_retired_before: every KEK version of the tenant below it was
-- destroyed; 0 while none was. It is a fence, like shredded_at: no stream
-- key is ever stored under a version below it, so that a node whose cache
-- still holds a destroyed version cannot write a key nobody can unwrap.
-- eventvault_app may read it but not change it.
ALTER TABLE tenants ADD COLUMN kek_retired_before bigint NOT NULL DEFAULT 0;

-- The check of the function below: a tenant's live stream keys by KEK
-- version, without reading every stream row of the tenant while its row is
-- locked.
CREATE INDEX streams_kek_version ON streams (tenant_id, kek_version) WHERE wrapped_key IS NOT NULL;

-- eventvault_refuse_retired_kek refuses a new stream key wrapped under a
-- destroyed KEK version, with SQLSTATE EV409 (EventVault's "conflict",
-- which the store maps to ECONFLICT; the message is written for clients).
-- It reads the fence under a FOR KEY SHARE lock on the tenant's row, held
-- until the insert commits, and eventvault_destroy_tenant_keys_before takes
-- that row FOR UPDATE before it looks: so either the destruction commits
-- first and this sees its fence, or the stream key commits first and the
-- destruction sees the key (and refuses). 0003's streams_fence, which runs
-- first, holds FOR SHARE on the row already; this trigger does not rely on
-- it. FOR KEY SHARE does not wait for appends, which take the row FOR NO
-- KEY UPDATE.
--
-- Only inserts need it. An update of a stream key can only move it to a
-- newer KEK version (0002's trigger), from a row that was under a live
-- version when the destruction checked; it cannot reach a destroyed one.
CREATE FUNCTION eventvault_refuse_retired_kek() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	retired bigint;
BEGIN
	IF NEW.kek_version IS NULL THEN
		RETURN NEW;
	END IF;
	SELECT t.kek_retired_before INTO retired FROM tenants t WHERE t.tenant_id = NEW.tenant_id FOR KEY SHARE;
	IF NEW.kek_version < retired THEN
		RAISE EXCEPTION 'version % of the key of tenant % was destroyed: a stream key cannot be wrapped under it; wrap it under the tenant''s newest key version',
			NEW.kek_version, NEW.tenant_id
			USING ERRCODE = 'EV409';
	END IF;
	RETURN NEW;
END
$$;

-- Named to sort after 0003's streams_fence, which takes the tenant's row
-- FOR SHARE and refuses a shredded tenant first.
CREATE TRIGGER streams_kek_retired BEFORE INSERT ON streams
	FOR EACH ROW EXECUTE FUNCTION eventvault_refuse_retired_kek();

-- eventvault_destroy_tenant_keys_before deletes every KEK version of the
-- transaction's tenant older than before and returns how many it deleted;
-- or it returns NULL, deleting nothing, if the tenant has no version >=
-- before (so the newest version always stays). It locks the tenant's row
-- FOR UPDATE before it looks at the stream keys, so that a stream key
-- being inserted (see the trigger above) is either seen, and the call
-- refused with EV409, or inserted after the fence rose, and refused
-- itself. Each statement sees the rows committed before it (a VOLATILE
-- function at READ COMMITTED takes a snapshot per statement).
CREATE FUNCTION eventvault_destroy_tenant_keys_before(before bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := nullif(current_setting('eventvault.tenant', true), '');
	newest bigint;
	in_use bigint;
	oldest bigint;
	destroyed integer;
BEGIN
	IF tenant IS NULL THEN
		RAISE EXCEPTION 'destroy tenant key versions without a tenant set for the transaction'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF before IS NULL OR before < 1 THEN
		RAISE EXCEPTION 'tenant key versions start at 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM 1 FROM tenants t WHERE t.tenant_id = tenant FOR UPDATE;
	SELECT max(k.version) INTO newest FROM tenant_keys k WHERE k.tenant_id = tenant;
	IF newest IS NULL OR newest < before THEN
		RETURN NULL;
	END IF;
	SELECT count(*), min(s.kek_version) INTO in_use, oldest FROM streams s
		WHERE s.tenant_id = tenant AND s.wrapped_key IS NOT NULL AND s.kek_version < before;
	IF in_use > 0 THEN
		RAISE EXCEPTION '% stream keys of tenant % are still wrapped under key versions older than % (the oldest under %): re-wrap them under the newest version first',
			in_use, tenant, before, oldest
			USING ERRCODE = 'EV409';
	END IF;
	DELETE FROM tenant_keys k WHERE k.tenant_id = tenant AND k.version < before;
	GET DIAGNOSTICS destroyed = ROW_COUNT;
	UPDATE tenants t SET kek_retired_before = before
		WHERE t.tenant_id = tenant AND t.kek_retired_before < before;
	RETURN destroyed;
END
$$;

-- As 0003's functions: a fixed search_path, so that no object the caller
-- creates (a temporary table named streams, empty, or tenants, with no
-- fence) can stand in for the real ones; and only the app role may call
-- the function. The trigger functions run as the caller, who could create
-- such a table (temporary tables come first in the default search_path):
-- they get a fixed search_path too, 0003's erasure fence included, which
-- a temporary tenants table with no shred record got past until now.
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_destroy_tenant_keys_before(bigint) SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_refuse_retired_kek() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_refuse_shredded_tenant() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION eventvault_destroy_tenant_keys_before(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventvault_destroy_tenant_keys_before(bigint) TO eventvault_app;
-- +goose StatementEnd
