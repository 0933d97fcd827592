-- +goose Up
-- +goose StatementBegin
-- 0002_key_rotation: re-wrapping keys in place, and the list of tenants.
--
-- A tenant KEK rotation re-wraps every stream key of the tenant under the
-- new KEK version; a root rotation re-wraps the ciphertext of every KEK
-- version under the newest root key version. Key ids and versions never
-- change, and events are never re-encrypted, so only these columns become
-- updatable (the store updates them by compare-and-swap).
GRANT UPDATE (wrapped) ON tenant_keys TO eventvault_app;
GRANT UPDATE (kek_version, wrapped_key) ON streams TO eventvault_app;

-- Root rotation walks every tenant. A transaction that sets
-- eventvault.admin = 'on' may read the tenants table (ids and positions);
-- the other tables stay confined to the tenant set for the transaction.
CREATE POLICY admin_list ON tenants FOR SELECT
	USING (current_setting('eventvault.admin', true) = 'on');

-- A stream key row may change in two ways only: re-wrapped under a newer KEK
-- version (rotation), or emptied (shredding). The grant above would let the
-- app role write any bytes; this trigger keeps it to those two, so that a
-- bug or a forged statement cannot put an older wrapping back (a row from a
-- backup) or give a shredded stream a key again.
CREATE FUNCTION eventvault_check_stream_key_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.wrapped_key IS NULL THEN
		RETURN NEW;
	END IF;
	IF OLD.wrapped_key IS NULL THEN
		RAISE EXCEPTION 'stream % was shredded: it never gets a key again', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF NEW.kek_version IS NULL OR NEW.kek_version <= OLD.kek_version THEN
		RAISE EXCEPTION 'the key of stream % may only be re-wrapped under a newer KEK version', OLD.name
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER stream_key_update BEFORE UPDATE OF wrapped_key, kek_version ON streams
	FOR EACH ROW
	WHEN (OLD.wrapped_key IS DISTINCT FROM NEW.wrapped_key OR OLD.kek_version IS DISTINCT FROM NEW.kek_version)
	EXECUTE FUNCTION eventvault_check_stream_key_update();
-- +goose StatementEnd
