package main

import (
	"context"
	"sync/atomic"

	evcrypto "github.com/eventvault/eventvault/crypto"
)

// countingRoot is a root key provider that counts the calls it passes on:
// the hot path of appends and reads to known streams should make none.
type countingRoot struct {
	inner   evcrypto.RootKeyProvider
	wraps   atomic.Int64
	unwraps atomic.Int64
}

var _ evcrypto.RootKeyProvider = (*countingRoot)(nil)

// WrapKey counts and passes on.
func (r *countingRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	r.wraps.Add(1)
	return r.inner.WrapKey(ctx, key, aad)
}

// UnwrapKey counts and passes on.
func (r *countingRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	r.unwraps.Add(1)
	return r.inner.UnwrapKey(ctx, wrapped, aad)
}
