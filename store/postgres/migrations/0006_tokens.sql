-- 0006_tokens: token expiry.
--
-- expires_at is when a token stops authenticating; NULL: never. The server
-- checks it at each authentication (and caches a token no longer than
-- until it expires). Listing and revoking a tenant's tokens need nothing
-- new: 0001's tenant_isolation policy lets the tenant's transactions see
-- and delete its own tokens, never a root token, and eventvault_app holds
-- SELECT and DELETE on api_tokens already.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
