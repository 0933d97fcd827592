-- +goose Up
-- 0015_tokens_by_tenant: a tenant's token listing and revocation read its
-- tokens, not every tenant's. api_tokens was the one table with a
-- tenant_id and no index that begins with it, so those statements read
-- the whole table; every store transaction has sequential scans as its
-- last resort (txn.go), and now finds the tenant's index range instead.
CREATE INDEX IF NOT EXISTS api_tokens_tenant ON api_tokens (tenant_id);
