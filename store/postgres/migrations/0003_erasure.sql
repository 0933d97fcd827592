-- +goose Up
-- +goose StatementBegin
-- 0003_erasure: crypto-shredding, the data subjects who own streams, legal
-- holds and erasure requests.
--
-- Shredding a stream empties its key columns and stamps shredded_at; the row
-- stays, so the stream name is remembered (the erasure fence) and its events
-- keep their places in global order. Shredding a tenant stamps the tenant's
-- row, deletes every version of its KEK and shreds every stream key.
--
-- eventvault_app may not delete events or tenant keys (0001 makes them
-- insert-only, and tests hold it to that). Purging a shredded stream's events
-- and destroying a shredded tenant's KEK versions go through two SECURITY
-- DEFINER functions owned by the tables' owner. Each acts on the tenant set
-- for the transaction only (never on a tenant passed as an argument), and
-- only once that tenant or stream is marked shredded, so the app role still
-- cannot delete a live event or a live key.

ALTER TABLE tenants ADD COLUMN shredded_at timestamptz;
-- shredded_key_ids are the ids of the KEK versions a tenant shred destroyed
-- (key ids are not secret: every ciphertext header carries one).
ALTER TABLE tenants ADD COLUMN shredded_key_ids uuid[] NOT NULL DEFAULT '{}';

-- subject is the pseudonym (a keyed hash, never the subject id) of the data
-- subject who owns the stream. shredded_key_id is the id of the destroyed
-- stream key, kept for the shred record; purged_at is when the events' rows
-- were deleted.
ALTER TABLE streams ADD COLUMN subject text;
ALTER TABLE streams ADD COLUMN shredded_at timestamptz;
ALTER TABLE streams ADD COLUMN shredded_key_id uuid;
ALTER TABLE streams ADD COLUMN purged_at timestamptz;
ALTER TABLE streams ADD CONSTRAINT streams_shredded_keyless CHECK (
	shredded_at IS NULL OR (key_id IS NULL AND key_version IS NULL AND kek_version IS NULL
		AND wrapped_key IS NULL AND key_created_at IS NULL));
ALTER TABLE streams ADD CONSTRAINT streams_purged_shredded CHECK (purged_at IS NULL OR shredded_at IS NOT NULL);

-- StreamsOfSubject: an erasure request finds the subject's streams here.
CREATE INDEX streams_subject ON streams (tenant_id, subject) WHERE subject IS NOT NULL;

GRANT UPDATE (key_id, key_version, key_created_at, shredded_at, subject) ON streams TO eventvault_app;
GRANT UPDATE (shredded_at) ON tenants TO eventvault_app;

-- The grants above would let the app role write any value; this trigger
-- keeps the columns to what erasure means. A stream's owner is set once.
-- Emptying a stream's key (its key id or wrapped key) or stamping
-- shredded_at shreds it: the trigger empties every key column, records the
-- destroyed key's id and, if the statement gave none, the time, so that no
-- row is ever half-shredded. Otherwise the key id, version and time never
-- change (0002's trigger guards the wrapping). A shred record and a purge
-- time never change, and a shredded stream never gets a key again.
CREATE FUNCTION eventvault_check_stream_erasure() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.subject IS NOT NULL AND NEW.subject IS DISTINCT FROM OLD.subject THEN
		RAISE EXCEPTION 'stream % has an owner already: it never changes', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF OLD.purged_at IS NOT NULL AND NEW.purged_at IS DISTINCT FROM OLD.purged_at THEN
		RAISE EXCEPTION 'stream % was purged: its purge time never changes', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF OLD.shredded_at IS NOT NULL THEN
		IF NEW.key_id IS NOT NULL OR NEW.key_version IS NOT NULL OR NEW.kek_version IS NOT NULL
			OR NEW.wrapped_key IS NOT NULL OR NEW.key_created_at IS NOT NULL THEN
			RAISE EXCEPTION 'stream % was shredded: it never gets a key again', OLD.name
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		IF NEW.shredded_at IS DISTINCT FROM OLD.shredded_at OR NEW.shredded_key_id IS DISTINCT FROM OLD.shredded_key_id THEN
			RAISE EXCEPTION 'stream % was shredded: its shred record never changes', OLD.name
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		RETURN NEW;
	END IF;
	IF NEW.shredded_at IS NOT NULL OR NEW.key_id IS NULL OR NEW.wrapped_key IS NULL THEN
		NEW.shredded_at := coalesce(NEW.shredded_at, statement_timestamp());
		NEW.shredded_key_id := OLD.key_id;
		NEW.key_id := NULL;
		NEW.key_version := NULL;
		NEW.kek_version := NULL;
		NEW.wrapped_key := NULL;
		NEW.key_created_at := NULL;
		RETURN NEW;
	END IF;
	IF NEW.shredded_key_id IS DISTINCT FROM OLD.shredded_key_id OR NEW.purged_at IS NOT NULL THEN
		RAISE EXCEPTION 'stream % is not shredded', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF NEW.key_id IS DISTINCT FROM OLD.key_id OR NEW.key_version IS DISTINCT FROM OLD.key_version
		OR NEW.key_created_at IS DISTINCT FROM OLD.key_created_at THEN
		RAISE EXCEPTION 'the key of stream % changes only by being shredded', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

-- Named to sort before 0002's stream_key_update, so that it runs first
-- (BEFORE triggers run in name order) and that one sees the emptied key.
CREATE TRIGGER stream_erasure
	BEFORE UPDATE OF key_id, key_version, kek_version, wrapped_key, key_created_at, subject, shredded_at, shredded_key_id, purged_at
	ON streams
	FOR EACH ROW
	WHEN (OLD.key_id IS DISTINCT FROM NEW.key_id OR OLD.key_version IS DISTINCT FROM NEW.key_version
		OR OLD.kek_version IS DISTINCT FROM NEW.kek_version OR OLD.wrapped_key IS DISTINCT FROM NEW.wrapped_key
		OR OLD.key_created_at IS DISTINCT FROM NEW.key_created_at OR OLD.subject IS DISTINCT FROM NEW.subject
		OR OLD.shredded_at IS DISTINCT FROM NEW.shredded_at OR OLD.shredded_key_id IS DISTINCT FROM NEW.shredded_key_id
		OR OLD.purged_at IS DISTINCT FROM NEW.purged_at)
	EXECUTE FUNCTION eventvault_check_stream_erasure();

CREATE FUNCTION eventvault_check_tenant_erasure() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.shredded_at IS NOT NULL THEN
		RAISE EXCEPTION 'tenant % was shredded: its shred record never changes', OLD.tenant_id
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER tenant_erasure BEFORE UPDATE OF shredded_at ON tenants
	FOR EACH ROW
	WHEN (OLD.shredded_at IS DISTINCT FROM NEW.shredded_at)
	EXECUTE FUNCTION eventvault_check_tenant_erasure();

-- The erasure fence of a tenant: a shredded tenant never gets a key again,
-- neither a KEK version nor a stream key. SQLSTATE EV410 is EventVault's
-- "erased"; the store maps it to EERASED with this message. FOR SHARE waits
-- for a tenant shred in progress (which holds the row's lock), then sees it;
-- and a shred waits for a stream key being created, then shreds it too.
CREATE FUNCTION eventvault_refuse_shredded_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	shredded timestamptz;
BEGIN
	SELECT t.shredded_at INTO shredded FROM tenants t WHERE t.tenant_id = NEW.tenant_id FOR SHARE;
	IF shredded IS NOT NULL THEN
		RAISE EXCEPTION 'tenant % was shredded: it never gets a key again', NEW.tenant_id
			USING ERRCODE = 'EV410';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER tenant_keys_fence BEFORE INSERT ON tenant_keys
	FOR EACH ROW EXECUTE FUNCTION eventvault_refuse_shredded_tenant();
CREATE TRIGGER streams_fence BEFORE INSERT ON streams
	FOR EACH ROW EXECUTE FUNCTION eventvault_refuse_shredded_tenant();

-- eventvault_check_tenant_live raises EV410 for a shredded tenant. The
-- statement that locks a tenant's row before adding a KEK version calls it,
-- so that the store answers EERASED rather than "no key yet".
CREATE FUNCTION eventvault_check_tenant_live(tenant text, shredded_at timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	IF shredded_at IS NOT NULL THEN
		RAISE EXCEPTION 'tenant % was shredded: it never gets a key again', tenant
			USING ERRCODE = 'EV410';
	END IF;
	RETURN 1;
END
$$;

-- eventvault_purge_stream deletes the events of a shredded stream of the
-- transaction's tenant and records when, returning how many it deleted.
CREATE FUNCTION eventvault_purge_stream(stream_name text, at timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := nullif(current_setting('eventvault.tenant', true), '');
	purged bigint;
BEGIN
	IF tenant IS NULL THEN
		RAISE EXCEPTION 'purge without a tenant set for the transaction'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	PERFORM 1 FROM streams s WHERE s.tenant_id = tenant AND s.name = stream_name AND s.shredded_at IS NOT NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'stream % is not shredded: only the events of a shredded stream can be purged', stream_name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	DELETE FROM events e WHERE e.tenant_id = tenant AND e.stream = stream_name;
	GET DIAGNOSTICS purged = ROW_COUNT;
	UPDATE streams s SET purged_at = coalesce(s.purged_at, at) WHERE s.tenant_id = tenant AND s.name = stream_name;
	RETURN purged;
END
$$;

-- eventvault_destroy_tenant_keys deletes every KEK version of the
-- transaction's tenant, once the tenant is marked shredded, and returns the
-- ids of every KEK it has destroyed (in the order of their first version).
CREATE FUNCTION eventvault_destroy_tenant_keys() RETURNS uuid[]
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := nullif(current_setting('eventvault.tenant', true), '');
	destroyed uuid[];
BEGIN
	IF tenant IS NULL THEN
		RAISE EXCEPTION 'destroy tenant keys without a tenant set for the transaction'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	PERFORM 1 FROM tenants t WHERE t.tenant_id = tenant AND t.shredded_at IS NOT NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tenant % is not shredded: only the keys of a shredded tenant can be destroyed', tenant
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	WITH d AS (
		DELETE FROM tenant_keys k WHERE k.tenant_id = tenant RETURNING k.version, k.key_id
	), ids AS (
		SELECT d.key_id, min(d.version) AS first_version FROM d GROUP BY d.key_id
	)
	SELECT coalesce(array_agg(ids.key_id ORDER BY ids.first_version), '{}') INTO destroyed FROM ids;
	UPDATE tenants t SET shredded_key_ids = t.shredded_key_ids || destroyed
		WHERE t.tenant_id = tenant
		RETURNING t.shredded_key_ids INTO destroyed;
	RETURN destroyed;
END
$$;

-- A SECURITY DEFINER function resolves names in a fixed path, so that no
-- object the caller creates (a temporary table named events) can stand in
-- for the real ones; and only the app role may call it.
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_purge_stream(text, timestamptz) SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_destroy_tenant_keys() SET search_path = %I, pg_temp', current_schema());
END
$$;
REVOKE ALL ON FUNCTION eventvault_purge_stream(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION eventvault_destroy_tenant_keys() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION eventvault_purge_stream(text, timestamptz) TO eventvault_app;
GRANT EXECUTE ON FUNCTION eventvault_destroy_tenant_keys() TO eventvault_app;

-- legal_holds: while a subject is under hold, its erasure requests are
-- rejected with the hold's reason.
CREATE TABLE legal_holds (
	tenant_id text NOT NULL,
	subject text NOT NULL,
	reason text NOT NULL,
	placed_at timestamptz NOT NULL,
	placed_by text NOT NULL,
	PRIMARY KEY (tenant_id, subject)
);

-- erasure_requests: GDPR Art. 17 requests from received to completed (with
-- the signed certificate) or rejected. They are records: never deleted.
CREATE TABLE erasure_requests (
	tenant_id text NOT NULL,
	id uuid NOT NULL,
	subject text NOT NULL,
	state text NOT NULL CHECK (state IN ('received', 'completed', 'rejected')),
	reason text NOT NULL DEFAULT '',
	requested_by text NOT NULL,
	received_at timestamptz NOT NULL,
	completed_at timestamptz,
	certificate bytea,
	PRIMARY KEY (tenant_id, id)
);

CREATE INDEX erasure_requests_subject ON erasure_requests (tenant_id, subject, received_at DESC, id DESC);

ALTER TABLE legal_holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE legal_holds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON legal_holds
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

ALTER TABLE erasure_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasure_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasure_requests
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

GRANT SELECT, INSERT, DELETE ON legal_holds TO eventvault_app;
GRANT UPDATE (reason, placed_at, placed_by) ON legal_holds TO eventvault_app;
GRANT SELECT, INSERT ON erasure_requests TO eventvault_app;
GRANT UPDATE (state, reason, completed_at, certificate) ON erasure_requests TO eventvault_app;
-- +goose StatementEnd
