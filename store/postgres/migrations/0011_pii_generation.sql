-- +goose Up
-- +goose StatementBegin
-- 0011_pii_generation: a per-tenant generation of its data subjects'
-- states (docs/pii.md, "Reading"), so that a node may keep the states it
-- read and know, from the page it reads, whether they still hold.
--
-- pii_generations.generation moves on, in the same transaction, with every
-- change to a subject key that exists (erased, re-wrapped, rectified: an
-- UPDATE, or a DELETE) and every change to a restriction. A new subject's
-- key (an INSERT) leaves it: no state a node read changes with it, and a
-- subject a node never read it fetches anyway. Page reads return it on
-- their snapshot; a node uses states it read at the same generation only.
-- The triggers, not the store's code, move it, so that no path that
-- changes a state can forget to, and nothing else may write it.
CREATE TABLE pii_generations (
	tenant_id text PRIMARY KEY,
	generation bigint NOT NULL CHECK (generation > 0)
);

ALTER TABLE pii_generations ENABLE ROW LEVEL SECURITY;
ALTER TABLE pii_generations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pii_generations
	USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
	WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''));

-- The server's role reads the generation and never writes it: only the
-- triggers below do, through a SECURITY DEFINER function (row-level
-- security still binds it to the transaction's tenant), so that the role
-- can neither hold it nor push it to its end (where every later change
-- would fail on overflow).
GRANT SELECT ON pii_generations TO eventvault_app;

CREATE FUNCTION eventvault_next_pii_generation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
	tenant text := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
BEGIN
	INSERT INTO pii_generations AS g (tenant_id, generation) VALUES (tenant, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET generation = g.generation + 1;
	RETURN NULL;
END
$$;
CREATE TRIGGER subject_keys_generation AFTER UPDATE OR DELETE ON subject_keys
	FOR EACH ROW EXECUTE FUNCTION eventvault_next_pii_generation();
CREATE TRIGGER pii_restrictions_generation AFTER INSERT OR UPDATE OR DELETE ON pii_restrictions
	FOR EACH ROW EXECUTE FUNCTION eventvault_next_pii_generation();
-- A generation only moves forward.
CREATE FUNCTION eventvault_check_pii_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.generation <= OLD.generation THEN
		RAISE EXCEPTION 'a tenant''s PII generation only moves forward'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER pii_generations_forward BEFORE UPDATE ON pii_generations
	FOR EACH ROW EXECUTE FUNCTION eventvault_check_pii_generation();
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION eventvault_next_pii_generation() SET search_path = %I, pg_temp', current_schema());
	EXECUTE format('ALTER FUNCTION eventvault_check_pii_generation() SET search_path = %I, pg_temp', current_schema());
END
$$;
-- +goose StatementEnd
