-- +goose Up
-- +goose StatementBegin
-- 0010_subscriptions: durable consumers of the feed and the propagation
-- of erasures to them (issue 14).
--
-- subscription_consumers: a named feed filter per tenant with its
-- checkpoint (the next global position not acknowledged). An ack moves the
-- checkpoint forward only (the store's UPDATE says so). An admin removes a
-- consumer (DELETE), recorded in the audit log in the same transaction.
CREATE TABLE subscription_consumers (
	tenant_id text NOT NULL,
	name text NOT NULL,
	filter jsonb NOT NULL,
	checkpoint bigint NOT NULL CHECK (checkpoint >= 0),
	created_at timestamptz NOT NULL,
	created_by text NOT NULL,
	acked_at timestamptz,
	PRIMARY KEY (tenant_id, name)
);

-- erasure_propagations: an erasure request's tombstone in the feed, the
-- consumers that must acknowledge past it (pending), those that did
-- (acks) and those an admin removed instead (removed), as JSON in body;
-- done once nothing is pending and the certificate is issued. Records:
-- never deleted.
CREATE TABLE erasure_propagations (
	tenant_id text NOT NULL,
	request_id uuid NOT NULL,
	tombstone_position bigint NOT NULL CHECK (tombstone_position >= 0),
	body jsonb NOT NULL,
	done boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX erasure_propagations_open ON erasure_propagations (tenant_id) WHERE NOT done;

DO $$
DECLARE t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['subscription_consumers', 'erasure_propagations'] LOOP
		EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
		EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
			USING (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))
			WITH CHECK (tenant_id = nullif(current_setting('eventvault.tenant', true), ''))$p$, t);
	END LOOP;
END
$$;

GRANT SELECT, INSERT, DELETE ON subscription_consumers TO eventvault_app;
GRANT UPDATE (filter, checkpoint, acked_at) ON subscription_consumers TO eventvault_app;
GRANT SELECT, INSERT ON erasure_propagations TO eventvault_app;
GRANT UPDATE (body, done) ON erasure_propagations TO eventvault_app;

-- An erasure request waits in 'propagating' until its consumers have
-- acknowledged its tombstone.
ALTER TABLE erasure_requests DROP CONSTRAINT erasure_requests_state_check;
ALTER TABLE erasure_requests ADD CONSTRAINT erasure_requests_state_check
	CHECK (state IN ('received', 'propagating', 'completed', 'rejected'));
-- +goose StatementEnd
