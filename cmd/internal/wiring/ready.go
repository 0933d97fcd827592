package wiring

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/api"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// Readiness cache times: the root of trust is asked at most once per
// RootCheckTTL, however often /readyz is called; the scan of the tenants'
// KEK rows runs at most once per KeysCheckTTL (and again at once when the
// root key's retired versions change).
const (
	RootCheckTTL = 5 * time.Second
	KeysCheckTTL = 30 * time.Second
)

// ReadyChecks returns what /readyz checks, in order:
//
//   - store: the store answers (Ping);
//   - root_of_trust: the root key answers: for Vault, one read of the
//     Transit key (transit/keys/:name), cached RootCheckTTL; a local root
//     key file, read at start, always passes;
//   - keys: no tenant's newest KEK row is wrapped by a root key version
//     Vault has retired (below min_decryption_version), which is what a
//     database restored from a backup older than the last crypto-period
//     looks like: every stream would be unreadable. It reads each tenant's
//     newest KEK row, cached KeysCheckTTL, and calls Vault for nothing more
//     than root_of_trust does. Older KEK versions are not checked: a
//     rotation re-wraps them all before it retires anything. A scan the
//     store did not answer is not cached: readiness comes back with the
//     store.
func ReadyChecks(store eventvault.Store, keys *evcrypto.KeyManager) []api.ReadyCheck {
	r := &readiness{keys: keys, now: time.Now}
	return []api.ReadyCheck{
		{Name: "store", Check: store.Ping},
		{Name: "root_of_trust", Check: r.root},
		{Name: "keys", Check: r.keysCheck},
	}
}

type readiness struct {
	keys *evcrypto.KeyManager
	now  func() time.Time

	rootMu     sync.Mutex
	rootAt     time.Time
	rootStatus evcrypto.RootStatus
	rootProbed bool // the provider can be probed
	rootErr    error

	keysMu  sync.Mutex
	keysAt  time.Time
	keysMin int // the min_decryption_version keysErr was computed for
	keysErr error
}

// probe returns the root key's status, asking the provider at most once
// per RootCheckTTL (a failure is cached as long, so a down Vault is not
// hammered either).
func (r *readiness) probe(ctx context.Context) (evcrypto.RootStatus, bool, error) {
	r.rootMu.Lock()
	defer r.rootMu.Unlock()
	if !r.rootAt.IsZero() && r.now().Sub(r.rootAt) < RootCheckTTL {
		return r.rootStatus, r.rootProbed, r.rootErr
	}
	r.rootStatus, r.rootProbed, r.rootErr = r.keys.ProbeRoot(ctx)
	r.rootAt = r.now()
	return r.rootStatus, r.rootProbed, r.rootErr
}

func (r *readiness) root(ctx context.Context) error {
	_, _, err := r.probe(ctx)
	return err
}

func (r *readiness) keysCheck(ctx context.Context) error {
	status, probed, err := r.probe(ctx)
	if err != nil {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "not checked: the root of trust does not answer", Err: err}
	}
	if !probed {
		return nil // a local root key has no versions to retire
	}
	r.keysMu.Lock()
	defer r.keysMu.Unlock()
	if !r.keysAt.IsZero() && r.keysMin == status.MinDecryptionVersion && r.now().Sub(r.keysAt) < KeysCheckTTL {
		return r.keysErr
	}
	err = r.scan(ctx, status)
	if err != nil && eventvault.ErrorCode(err) != eventvault.EKEYRETIRED {
		// The scan did not run to its verdict (the store did not answer):
		// not kept, so that readiness comes back with the store, not up
		// to KeysCheckTTL after it.
		return err
	}
	r.keysErr = err
	r.keysAt, r.keysMin = r.now(), status.MinDecryptionVersion
	return r.keysErr
}

func (r *readiness) scan(ctx context.Context, status evcrypto.RootStatus) error {
	retired, total, err := r.keys.KEKsUnderRetiredRoot(ctx, status.MinDecryptionVersion)
	if err != nil {
		return err
	}
	if retired > 0 {
		return &eventvault.Error{Code: eventvault.EKEYRETIRED, Op: "wiring.ReadyChecks",
			Message: fmt.Sprintf("%d of %d tenants have keys wrapped by root key versions that were retired (before version %d): their streams cannot be read here; this database is older than the last crypto-period, as a backup restored from before it is", retired, total, status.MinDecryptionVersion)}
	}
	return nil
}
