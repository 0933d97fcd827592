-- +goose Up
-- +goose StatementBegin
-- 0014_tenant_plans: plans that never depend on which tenant a statement
-- is for (docs/performance.md, "A big tenant the statistics do not know").
--
-- Every statement of the store is for one tenant, `tenant_id = $1`, and
-- runs on its generic plan (txn.go), which estimates that condition from
-- the column's number of distinct values: with many small tenants, as the
-- average one. PostgreSQL then found it as cheap to read all of a tenant's
-- entries of an index on (tenant_id, …) and filter them as to look up the
-- few it needs, and did so, which is fine for the average tenant and ruins
-- a big one: an append of one event to a tenant of a million events read
-- the million. (Custom plans were worse: a tenant the last ANALYZE did not
-- see was estimated at one row.)
--
-- n_distinct = 1 has ANALYZE record one distinct tenant, so that a generic
-- plan takes any tenant for a big one (as big as the most common tenant
-- the statistics saw, the planner's own cap): it then looks up what a
-- statement needs and never scans a tenant. Tables with one row per tenant
-- have it as their key and need nothing. ANALYZE records it now rather
-- than at autovacuum's next visit; it reads a sample, not the tables.
ALTER TABLE events ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE streams ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE audit_records ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE audit_hashes ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE audit_checkpoints ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE pii_values ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE subject_keys ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE pii_restrictions ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE subscription_consumers ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE erasure_requests ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE erasure_propagations ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE legal_holds ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE api_tokens ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE policies ALTER COLUMN tenant_id SET (n_distinct = 1);
ALTER TABLE tenant_keys ALTER COLUMN tenant_id SET (n_distinct = 1);
ANALYZE events, streams, audit_records, audit_hashes, audit_checkpoints, pii_values, subject_keys, pii_restrictions,
	subscription_consumers, erasure_requests, erasure_propagations, legal_holds, api_tokens, policies, tenant_keys;
-- +goose StatementEnd
