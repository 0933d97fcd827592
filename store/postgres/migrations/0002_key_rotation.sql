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
