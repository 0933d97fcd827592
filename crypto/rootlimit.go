package crypto

import (
	"context"

	"github.com/eventvault/eventvault"
)

// DefaultRootConcurrency is how many calls LimitRoot lets a node make to
// the root key provider at once by default: a cold start or a storm of new
// tenants, each needing its KEK wrapped or unwrapped, queues here rather
// than piling calls on Vault.
const DefaultRootConcurrency = 4

// LimitRoot returns root with at most n WrapKey and UnwrapKey calls in
// flight at once (n <= 0: DefaultRootConcurrency). A call past the bound
// waits for a free one as long as its context lives, and then fails with
// EUNAVAILABLE without calling root, so that what a waiting caller gave up
// on is never sent. With the keyring's merging of loads per tenant
// (flight.go), a storm of requests for N new tenants makes N root calls,
// at most n at a time.
func LimitRoot(root RootKeyProvider, n int) RootKeyProvider {
	if n <= 0 {
		n = DefaultRootConcurrency
	}
	return &limitedRoot{inner: root, slots: make(chan struct{}, n)}
}

type limitedRoot struct {
	inner RootKeyProvider
	slots chan struct{}
}

// Unwrap returns the provider the bound is around, so that what it can do
// besides wrapping and unwrapping (probe, rotate, rewrap) stays visible
// (RootAs).
func (l *limitedRoot) Unwrap() RootKeyProvider { return l.inner }

// RootAs returns root as a T (an optional capability such as RootProber
// or RootRotator), looking through wrappers that have an Unwrap method
// (LimitRoot's, the metrics' counter), outermost first.
func RootAs[T any](root RootKeyProvider) (T, bool) {
	for root != nil {
		if t, ok := root.(T); ok {
			return t, true
		}
		u, ok := root.(interface{ Unwrap() RootKeyProvider })
		if !ok {
			break
		}
		root = u.Unwrap()
	}
	var zero T
	return zero, false
}

func (l *limitedRoot) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return rootBusy(op, err)
	}
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return rootBusy(op, ctx.Err())
	}
	// A slot and the end of ctx may come in the same instant: a caller
	// that is gone sends nothing.
	if err := ctx.Err(); err != nil {
		<-l.slots
		return rootBusy(op, err)
	}
	return nil
}

func rootBusy(op string, err error) error {
	return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op,
		Message: "the root key provider is busy with other key loads and the request ended before its turn: nothing was sent; retry later", Err: err}
}

// WrapKey is root's WrapKey, within the bound.
func (l *limitedRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	if err := l.enter(ctx, "crypto.LimitRoot.WrapKey"); err != nil {
		return nil, err
	}
	defer func() { <-l.slots }()
	return l.inner.WrapKey(ctx, key, aad)
}

// UnwrapKey is root's UnwrapKey, within the bound.
func (l *limitedRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := l.enter(ctx, "crypto.LimitRoot.UnwrapKey"); err != nil {
		return nil, err
	}
	defer func() { <-l.slots }()
	return l.inner.UnwrapKey(ctx, wrapped, aad)
}
