package crypto

import "context"

// RootOperation is one kind of request a root key provider serves.
type RootOperation string

// Root key operations, as CheckRootPermissions names them.
const (
	RootWrap   RootOperation = "wrap"   // wrap a new KEK (Vault: encrypt)
	RootUnwrap RootOperation = "unwrap" // unwrap a KEK (Vault: decrypt)
	RootRewrap RootOperation = "rewrap" // re-wrap a KEK under the newest root version
	RootRotate RootOperation = "rotate" // add a root key version
	RootRetire RootOperation = "retire" // retire older root key versions
)

// RootPermissionChecker is a root key provider that can tell, without
// changing anything, whether it is allowed every operation a multi-step
// operation will need. A multi-step operation (EndCryptoPeriod) asks before
// its first step that destroys or changes something, so that a missing
// permission stops it before it has done anything rather than halfway.
type RootPermissionChecker interface {
	// CheckPermissions returns nil when every operation is allowed.
	// Errors: EFORBIDDEN naming, for each refused operation, what the
	// provider's credentials lack (for Vault: the policy, the path and the
	// capability); EUNAVAILABLE if the provider cannot be asked.
	CheckPermissions(ctx context.Context, ops ...RootOperation) error
}

// CheckRootPermissions asks the root key provider, when it can tell,
// whether every operation in ops is allowed. A provider that cannot tell
// (the local root key, which allows everything it supports) passes.
func (m *KeyManager) CheckRootPermissions(ctx context.Context, ops ...RootOperation) error {
	if pc, ok := RootAs[RootPermissionChecker](m.root); ok {
		return pc.CheckPermissions(ctx, ops...)
	}
	return nil
}
