-- +goose Up
-- +goose StatementBegin
-- 0013_epochs_never_repeat: a tenant's stream key epoch (0012) and PII
-- generation (0011) never take the same value twice, on any history of the
-- database, and only the triggers that fire with the changes they track
-- can move them.
--
-- A node keeps ciphers checked, and subject states read, at a value, and
-- trusts them while pages come back with that value. With a plain counter,
-- two histories of one database reuse values for different rows: a standby
-- promoted without the old primary's last commits, or a point-in-time
-- restore served to nodes that kept running, counts again from where it
-- was, and its next shred takes the number a node checked the lost shred
-- at, so that node would go on opening the shredded stream with the cipher
-- it holds. So each move now sets the value to
--   (counter + 1) << 32 | 32 random bits (gen_random_uuid, a strong source)
-- still increasing (the checks that it only moves forward hold, but for
-- the counter's wrap below), but no longer the same on two histories but
-- by a chance of 2^-32 for each value a node checked on the lost one.
--
-- Besides:
--   - a subject key's generation (0009), which counts its rectifications
--     and at which nodes cache personal values, moves the same way, and
--     only through eventvault_next_subject_generation: the server's role
--     may no longer write it, so that it can neither set the value a node
--     cached a lost rectification at nor push it to its end;
--   - every tenant gets both rows when it is created (its first append or
--     key), and those that exist get them here, so that a missing row
--     means one deleted by hand: reads then return "unknown" (epoch 0, PII
--     generation -1) and nodes use nothing they kept until the next move;
--   - TRUNCATE of streams, subject_keys or pii_restrictions, which fires no
--     row trigger, is refused: it would drop key rows without moving the
--     values (erase through the store: shred streams or tenants, erase
--     subjects);
--   - the checks that the values only move forward, and 0011's triggers,
--     fire under session_replication_role = replica too, as 0012's do;
--   - the trigger functions refuse to run on any other table, and PUBLIC
--     may no longer execute them, so that the server's role cannot attach
--     one to a temporary table of its own and move another tenant's value.
--
-- The counter has 31 bits. After 2^31 - 1 it starts again at 1 (new random
-- bits below) rather than fail: the server's role, which can move a value
-- a few thousand times a second (a restriction placed and lifted), must
-- not be able to run a tenant's out and make its every shred and erasure
-- fail. A value from before a wrap, 2^31 moves ago, is older than any mark
-- a node keeps (its cache entries live minutes), and would still need the
-- same 32 random bits to come back.
CREATE FUNCTION eventvault_next_epoch(previous bigint) RETURNS bigint
LANGUAGE sql VOLATILE AS $f$
	SELECT CASE WHEN coalesce(previous, 0) >> 32 >= 2147483647 THEN 1 ELSE (coalesce(previous, 0) >> 32) + 1 END << 32
		| ('x' || left(gen_random_uuid()::text, 8))::bit(32)::bigint
$f$;

-- The values only move forward, or wrap from the counter's end to 1.
CREATE OR REPLACE FUNCTION eventvault_check_stream_key_epoch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.epoch <= OLD.epoch AND NOT (OLD.epoch >> 32 = 2147483647 AND NEW.epoch >> 32 = 1) THEN
		RAISE EXCEPTION 'a tenant''s stream key epoch only moves forward'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
CREATE OR REPLACE FUNCTION eventvault_check_pii_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.generation <= OLD.generation AND NOT (OLD.generation >> 32 = 2147483647 AND NEW.generation >> 32 = 1) THEN
		RAISE EXCEPTION 'a tenant''s PII generation only moves forward'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION eventvault_next_stream_key_epoch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
BEGIN
	IF TG_TABLE_NAME <> 'streams' OR TG_TABLE_SCHEMA <> current_schema() THEN
		RAISE EXCEPTION 'the stream key epoch moves with streams only'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	INSERT INTO stream_key_epochs AS k (tenant_id, epoch) VALUES (tenant, eventvault_next_epoch(0))
		ON CONFLICT (tenant_id) DO UPDATE SET epoch = eventvault_next_epoch(k.epoch);
	IF TG_OP = 'UPDATE' AND OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
		INSERT INTO stream_key_epochs AS k (tenant_id, epoch) VALUES (OLD.tenant_id, eventvault_next_epoch(0))
			ON CONFLICT (tenant_id) DO UPDATE SET epoch = eventvault_next_epoch(k.epoch);
	END IF;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION eventvault_next_pii_generation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
BEGIN
	IF TG_TABLE_NAME NOT IN ('subject_keys', 'pii_restrictions') OR TG_TABLE_SCHEMA <> current_schema() THEN
		RAISE EXCEPTION 'the PII generation moves with subject keys and restrictions only'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	INSERT INTO pii_generations AS g (tenant_id, generation) VALUES (tenant, eventvault_next_epoch(0))
		ON CONFLICT (tenant_id) DO UPDATE SET generation = eventvault_next_epoch(g.generation);
	IF TG_OP = 'UPDATE' AND OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
		INSERT INTO pii_generations AS g (tenant_id, generation) VALUES (OLD.tenant_id, eventvault_next_epoch(0))
			ON CONFLICT (tenant_id) DO UPDATE SET generation = eventvault_next_epoch(g.generation);
	END IF;
	RETURN NULL;
END
$$;

-- A new tenant's rows. Row-level security binds the function to the
-- transaction's tenant, as the server's transactions are; a tenant row
-- written by hand in another tenant's scope, or in none, gets no rows, and
-- reads of it are "unknown" until its first change.
CREATE FUNCTION eventvault_first_epochs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	IF TG_TABLE_NAME <> 'tenants' OR TG_TABLE_SCHEMA <> current_schema() THEN
		RAISE EXCEPTION 'a tenant''s first epochs come with its tenant row only'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF NEW.tenant_id IS DISTINCT FROM nullif(current_setting('eventvault.tenant', true), '') THEN
		RETURN NULL;
	END IF;
	INSERT INTO stream_key_epochs AS k (tenant_id, epoch) VALUES (NEW.tenant_id, eventvault_next_epoch(0))
		ON CONFLICT (tenant_id) DO UPDATE SET epoch = eventvault_next_epoch(k.epoch);
	INSERT INTO pii_generations AS g (tenant_id, generation) VALUES (NEW.tenant_id, eventvault_next_epoch(0))
		ON CONFLICT (tenant_id) DO UPDATE SET generation = eventvault_next_epoch(g.generation);
	RETURN NULL;
END
$$;
CREATE TRIGGER tenant_first_epochs AFTER INSERT ON tenants
	FOR EACH ROW EXECUTE FUNCTION eventvault_first_epochs();
ALTER TABLE tenants ENABLE ALWAYS TRIGGER tenant_first_epochs;

-- A rectification moves its subject's generation, in the transaction's
-- tenant (row-level security binds the function to it), if the subject
-- still holds key_id: it returns the rows moved, 0 when the key was erased
-- or replaced.
CREATE FUNCTION eventvault_next_subject_generation(p_subject text, p_key_id uuid) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	moved integer;
BEGIN
	UPDATE subject_keys SET generation = eventvault_next_epoch(generation)
		WHERE tenant_id = nullif(current_setting('eventvault.tenant', true), '')
		AND subject = p_subject AND key_id = p_key_id AND erased_at IS NULL;
	GET DIAGNOSTICS moved = ROW_COUNT;
	RETURN moved;
END
$$;

-- 0009's guard on subject keys, with the generation's wrap let through as
-- the checks above let the tenant values' through.
CREATE OR REPLACE FUNCTION eventvault_check_subject_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.erased_at IS NOT NULL THEN
		RAISE EXCEPTION 'the data subject was erased: they never get a key again'
			USING ERRCODE = 'EV411';
	END IF;
	IF NEW.erased_at IS NOT NULL THEN
		RETURN NEW;
	END IF;
	IF NEW.key_id = OLD.key_id AND NEW.key_version = OLD.key_version AND NEW.created_at = OLD.created_at
		AND (NEW.generation >= OLD.generation OR (OLD.generation >> 32 = 2147483647 AND NEW.generation >> 32 = 1))
		AND NEW.erased_key_id IS NULL
		AND (NEW.kek_version > OLD.kek_version OR (NEW.kek_version = OLD.kek_version AND NEW.wrapped_key = OLD.wrapped_key)) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'a subject key changes only by being erased or re-wrapped under a newer tenant key version'
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE FUNCTION eventvault_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'TRUNCATE % is refused: its rows are keys or states that running nodes keep in memory, and only changes row by row tell them; erase through the store (shred streams or tenants, erase subjects)', TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER streams_no_truncate BEFORE TRUNCATE ON streams
	FOR EACH STATEMENT EXECUTE FUNCTION eventvault_refuse_truncate();
CREATE TRIGGER subject_keys_no_truncate BEFORE TRUNCATE ON subject_keys
	FOR EACH STATEMENT EXECUTE FUNCTION eventvault_refuse_truncate();
CREATE TRIGGER pii_restrictions_no_truncate BEFORE TRUNCATE ON pii_restrictions
	FOR EACH STATEMENT EXECUTE FUNCTION eventvault_refuse_truncate();
ALTER TABLE streams ENABLE ALWAYS TRIGGER streams_no_truncate;
ALTER TABLE subject_keys ENABLE ALWAYS TRIGGER subject_keys_no_truncate;
ALTER TABLE pii_restrictions ENABLE ALWAYS TRIGGER pii_restrictions_no_truncate;

ALTER TABLE subject_keys ENABLE ALWAYS TRIGGER subject_keys_generation;
ALTER TABLE pii_restrictions ENABLE ALWAYS TRIGGER pii_restrictions_generation;
ALTER TABLE stream_key_epochs ENABLE ALWAYS TRIGGER stream_key_epochs_forward;
ALTER TABLE pii_generations ENABLE ALWAYS TRIGGER pii_generations_forward;

-- CREATE OR REPLACE drops a function's settings: every function replaced
-- here gets its search_path again, without which a SECURITY DEFINER
-- function would find a temporary table of the caller's first.
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_next_stream_key_epoch() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_next_pii_generation() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_stream_key_epoch() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_pii_generation() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_next_epoch(bigint) SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_next_subject_generation(text, uuid) SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_subject_key() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_first_epochs() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_refuse_truncate() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION eventvault_next_epoch(bigint), eventvault_next_stream_key_epoch(),
	eventvault_next_pii_generation(), eventvault_first_epochs(), eventvault_refuse_truncate(),
	eventvault_next_subject_generation(text, uuid), eventvault_check_subject_key(),
	eventvault_check_stream_key_epoch(), eventvault_check_pii_generation() FROM PUBLIC;
REVOKE UPDATE (generation) ON subject_keys FROM eventvault_app;
GRANT EXECUTE ON FUNCTION eventvault_next_subject_generation(text, uuid) TO eventvault_app;

-- The tenants that exist: fresh values for both, as the owner, past
-- row-level security for these statements only.
ALTER TABLE stream_key_epochs NO FORCE ROW LEVEL SECURITY;
ALTER TABLE pii_generations NO FORCE ROW LEVEL SECURITY;
SELECT set_config('eventvault.admin', 'on', true);
INSERT INTO stream_key_epochs AS k (tenant_id, epoch)
	SELECT tenant_id, eventvault_next_epoch(0) FROM tenants
	ON CONFLICT (tenant_id) DO UPDATE SET epoch = eventvault_next_epoch(k.epoch);
INSERT INTO pii_generations AS g (tenant_id, generation)
	SELECT tenant_id, eventvault_next_epoch(0) FROM tenants
	ON CONFLICT (tenant_id) DO UPDATE SET generation = eventvault_next_epoch(g.generation);
SELECT set_config('eventvault.admin', '', true);
ALTER TABLE stream_key_epochs FORCE ROW LEVEL SECURITY;
ALTER TABLE pii_generations FORCE ROW LEVEL SECURITY;
-- +goose StatementEnd
