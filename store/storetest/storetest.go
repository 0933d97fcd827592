// Package storetest is the conformance suite every EventVault store passes,
// and the one specification of store behaviour beyond the doc comments of
// eventvault.Store. A store is done when Run passes against it:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) eventvault.Store {
//			s := openFreshEmptyStore(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite works at the store level only. Payloads are opaque fake
// ciphertext ("sealed:<event id>:<position>", so that a payload read back
// proves where Seal put it), content MACs and wrapped keys are arbitrary
// bytes. Nothing in it skips.
//
// Where the interface docs are silent, the suite fixes this behaviour:
//
//   - Stream positions start at 0. Global positions start at 0 in each
//     tenant and have no gaps: a failed append consumes none.
//   - Append checks, in this order: the request (EINVALID for an empty
//     batch, an event id twice in one batch, or a nil Seal); the stream's
//     key (ENOTFOUND if it has none, EERASED if KeyID is not that key, even
//     for a retry; with NewKey: EERASED for a shredded stream or tenant,
//     ECONFLICT wrapping ErrStreamKeyExists if it has a key, ECONFLICT
//     wrapping ErrKEKRetired under a destroyed KEK version); idempotency (all ids present in this stream with the
//     same MACs: a replay; any other reuse of an id: ECONFLICT); the expected
//     version (ECONFLICT built by eventvault.ConflictError, so that
//     Fields["actual_version"] is the actual version as an int64, or
//     "no_stream" for a stream without events); then Seal.
//     A retried append is therefore replayed even when its expected version
//     no longer holds, and Seal is called only for an append that writes.
//   - An append carrying NewKey stores the key row with the events, in
//     one transaction: whatever refuses the append (a conflict, a Seal
//     error), the stream is left without a key row, events or owner, and
//     takes its first append afterwards as a new stream.
//   - A replay returns the original result: each event's original
//     positions, and as Version the highest of them rather than the
//     stream's current version, so that a client continuing from that
//     version still notices writes it has not seen.
//   - An error from Seal comes back from Append with errors.Is intact and its
//     code, if it has one (a plain error is EINTERNAL); a Seal that returns
//     the wrong number of payloads is EINTERNAL. Nothing is written.
//   - Reads: Limit must be positive; From must be >= 0 forward and >= -1
//     backward; ReadAll's from must be >= 0; otherwise EINVALID. A read past
//     the end is an empty page, not an error. A backward read from beyond
//     the end starts at the last event.
//   - AllPage.Keys holds exactly the keys of the streams in the page.
//   - Event ids are scoped to a tenant: the same id in two tenants is two
//     events and never a conflict (nor an oracle across tenants).
//   - Key rotation: KEK versions start at 1 and AddTenantKey takes exactly
//     the newest plus one. StreamKeysBefore pages in an order the store
//     fixes (its name order); passing the last name returned as after
//     visits every matching row once. The re-wraps are compare-and-swaps
//     on id, versions and ciphertext, keep the row's time, and lose with
//     ECONFLICT to any change they did not see.
//   - Deployment keys belong to no tenant; one per name, written once and
//     never replaced: CreateDeploymentKey returns the key that is stored.
//   - Tokens are global, since authentication looks one up before any tenant
//     is known; a root token may have an empty tenant.
//
// A store may call Seal more than once for one append if it retries a
// transaction; the concurrency tests allow for that, the others do not.
package storetest

import (
	"testing"

	"github.com/eventvault/eventvault"
)

// opener returns a fresh, empty store; the caller of Run registers cleanup.
type opener = func(t *testing.T) eventvault.Store

// Run runs the conformance suite. Each subtest calls open for its own fresh,
// empty store.
func Run(t *testing.T, open func(t *testing.T) eventvault.Store) {
	t.Run("Ping", func(t *testing.T) { testPing(t, open) })
	t.Run("Append", func(t *testing.T) { testAppend(t, open) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotency(t, open) })
	t.Run("ReadStream", func(t *testing.T) { testReadStream(t, open) })
	t.Run("ReadAll", func(t *testing.T) { testReadAll(t, open) })
	t.Run("PageBytes", func(t *testing.T) { testPageBytes(t, open) })
	t.Run("ReadAllTo", func(t *testing.T) { testReadAllTo(t, open) })
	t.Run("TenantIsolation", func(t *testing.T) { testTenantIsolation(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, open) })
	t.Run("Rotation", func(t *testing.T) { testRotation(t, open) })
	t.Run("KEKRetire", func(t *testing.T) { testKEKRetire(t, open) })
	t.Run("Erasure", func(t *testing.T) { testErasure(t, open) })
	t.Run("StreamOwner", func(t *testing.T) { testStreamOwner(t, open) })
	t.Run("DeleteTenantTokens", func(t *testing.T) { testDeleteTenantTokens(t, open) })
	t.Run("DeploymentKeys", func(t *testing.T) { testDeploymentKeys(t, open) })
	t.Run("DeploymentKeyRewrap", func(t *testing.T) { testDeploymentKeyRewrap(t, open) })
	t.Run("TokenLifecycle", func(t *testing.T) { testTokenLifecycle(t, open) })
	t.Run("Policies", func(t *testing.T) { testPolicies(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Subscriptions", func(t *testing.T) { testSubscriptions(t, open) })
	t.Run("PII", func(t *testing.T) { testPII(t, open) })
	t.Run("PIIRotation", func(t *testing.T) { testPIIRotation(t, open) })
}

func testPing(t *testing.T, open opener) {
	h := setup(t, open)
	if err := h.store.Ping(h.ctx); err != nil {
		t.Fatalf("Ping on a fresh store: %v", err)
	}
}
