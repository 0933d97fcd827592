-- +goose Up
-- +goose StatementBegin
-- 0009_pii: personal data kept apart (docs/pii.md).
--
-- subject_keys: one data key per data subject per tenant, wrapped by the
-- tenant KEK like a stream key. Erasing the subject empties the key
-- columns and stamps erased_at; the row stays, so the pseudonym is
-- remembered (the erasure fence) and never gets a key again.
CREATE TABLE subject_keys (
	tenant_id text NOT NULL,
	subject text NOT NULL,
	key_id uuid,
	key_version bigint,
	kek_version bigint,
	wrapped_key bytea,
	created_at timestamptz,
	erased_at timestamptz,
	erased_key_id uuid,
	-- generation counts the rectifications of the subject's values: a
	-- node that cached a value's ciphertext at one generation fetches it
	-- again at another.
	generation bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, subject),
	CHECK ((erased_at IS NULL) = (key_id IS NOT NULL AND key_version IS NOT NULL AND kek_version IS NOT NULL AND wrapped_key IS NOT NULL AND created_at IS NOT NULL)),
	CHECK (erased_at IS NULL OR (key_id IS NULL AND key_version IS NULL AND kek_version IS NULL AND wrapped_key IS NULL AND created_at IS NULL))
);

-- pii_values: every version of every personal value, sealed under its
-- subject's key (version 1 appended, each rectification the next).
CREATE TABLE pii_values (
	tenant_id text NOT NULL,
	token text NOT NULL,
	version bigint NOT NULL CHECK (version > 0),
	subject text NOT NULL,
	stream text NOT NULL,
	event_id uuid NOT NULL,
	pointer text NOT NULL,
	class text NOT NULL DEFAULT '',
	key_id uuid NOT NULL,
	ciphertext bytea NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, token, version)
);
CREATE INDEX pii_values_subject ON pii_values (tenant_id, subject, token, version);

-- pii_restrictions: restrictions of processing (GDPR Art. 18).
CREATE TABLE pii_restrictions (
	tenant_id text NOT NULL,
	subject text NOT NULL,
	reason text NOT NULL,
	placed_at timestamptz NOT NULL,
	placed_by text NOT NULL,
	PRIMARY KEY (tenant_id, subject)
);

ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE subject_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subject_keys
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));
ALTER TABLE pii_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE pii_values FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pii_values
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));
ALTER TABLE pii_restrictions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pii_restrictions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pii_restrictions
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

GRANT SELECT, INSERT ON subject_keys TO eventvault_app;
GRANT UPDATE (key_id, key_version, kek_version, wrapped_key, created_at, erased_at, erased_key_id, generation) ON subject_keys TO eventvault_app;
GRANT SELECT, INSERT, DELETE ON pii_values TO eventvault_app;
GRANT SELECT, INSERT, DELETE ON pii_restrictions TO eventvault_app;
GRANT UPDATE (reason, placed_at, placed_by) ON pii_restrictions TO eventvault_app;

-- A subject key changes only by being erased, by a re-wrap under a newer
-- KEK version (the same key id, version and time), or by its generation
-- moving on; an erased subject never gets a key again (SQLSTATE EV411,
-- EventVault's "subject erased").
CREATE FUNCTION eventvault_check_subject_key() RETURNS trigger
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
		AND NEW.generation >= OLD.generation AND NEW.erased_key_id IS NULL
		AND (NEW.kek_version > OLD.kek_version OR (NEW.kek_version = OLD.kek_version AND NEW.wrapped_key = OLD.wrapped_key)) THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'a subject key changes only by being erased or re-wrapped under a newer tenant key version'
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER subject_key_update BEFORE UPDATE ON subject_keys
	FOR EACH ROW EXECUTE FUNCTION eventvault_check_subject_key();
-- A shredded tenant gets no subject key (0003), nor one under a destroyed
-- KEK version (0004).
CREATE TRIGGER subject_keys_fence BEFORE INSERT ON subject_keys
	FOR EACH ROW EXECUTE FUNCTION eventvault_refuse_shredded_tenant();
CREATE TRIGGER subject_keys_kek_fence BEFORE INSERT ON subject_keys
	FOR EACH ROW EXECUTE FUNCTION eventvault_refuse_retired_kek();

-- A value is stored only beside its subject's live key, the one it was
-- sealed with: the key row is read FOR SHARE, held until the insert
-- commits, so an erasure (which updates that row) waits for the append,
-- then deletes what it wrote. And only an erased subject's values may be
-- deleted.
CREATE FUNCTION eventvault_pii_value_fence() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	live uuid;
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM 1 FROM subject_keys k WHERE k.tenant_id = OLD.tenant_id AND k.subject = OLD.subject AND k.erased_at IS NOT NULL;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'only the values of an erased subject are deleted'
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		RETURN OLD;
	END IF;
	SELECT k.key_id INTO live FROM subject_keys k WHERE k.tenant_id = NEW.tenant_id AND k.subject = NEW.subject FOR SHARE;
	IF live IS NULL OR live <> NEW.key_id THEN
		RAISE EXCEPTION 'the data subject was erased, or the value is not sealed under their key'
			USING ERRCODE = 'EV411';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER pii_values_fence BEFORE INSERT OR DELETE ON pii_values
	FOR EACH ROW EXECUTE FUNCTION eventvault_pii_value_fence();

-- A KEK rotation re-wraps subject keys as it does stream keys; the old KEK
-- versions are destroyed only once no live subject key needs them. The
-- function of 0004 is replaced by one that also counts subject keys.
CREATE INDEX subject_keys_kek_version ON subject_keys (tenant_id, kek_version) WHERE wrapped_key IS NOT NULL;

CREATE OR REPLACE FUNCTION eventvault_destroy_tenant_keys_before(before bigint) RETURNS integer
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
	SELECT count(*), min(k.kek_version) INTO in_use, oldest FROM subject_keys k
		WHERE k.tenant_id = tenant AND k.wrapped_key IS NOT NULL AND k.kek_version < before;
	IF in_use > 0 THEN
		RAISE EXCEPTION '% subject keys of tenant % are still wrapped under key versions older than % (the oldest under %): re-wrap them under the newest version first',
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
-- (CREATE OR REPLACE keeps 0004's search_path, owner and grants.)
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_destroy_tenant_keys_before(bigint) SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_subject_key() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_pii_value_fence() SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
