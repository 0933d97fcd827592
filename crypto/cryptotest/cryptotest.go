// Package cryptotest holds the conformance suite every root key provider
// passes: the local root key file and Vault Transit run the same tests.
package cryptotest

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// RunRootKeyProvider checks that p wraps and unwraps keys as
// evcrypto.RootKeyProvider promises: a round trip returns the key; two wraps
// differ; a wrong aad, truncated, altered or foreign input fails with an
// error wrapping evcrypto.ErrAuthentication that carries no key bytes; and p
// is safe for concurrent use.
func RunRootKeyProvider(t *testing.T, p evcrypto.RootKeyProvider) {
	t.Helper()
	aad := []byte("eventvault/test\x00tenant-a\x00key-1")

	t.Run("RoundTripReturnsTheKey", func(t *testing.T) {
		key := randomKey(t)
		original := bytes.Clone(key)
		wrapped := wrap(t, p, key, aad)
		if !bytes.Equal(key, original) {
			t.Fatal("WrapKey modified the key it was given")
		}
		if bytes.Contains(wrapped, key) {
			t.Fatal("the wrapped key holds the key in clear")
		}
		got, err := p.UnwrapKey(t.Context(), wrapped, aad)
		if err != nil {
			t.Fatalf("UnwrapKey: %v", err)
		}
		if !bytes.Equal(got, key) {
			t.Fatal("UnwrapKey returned another key")
		}
	})

	t.Run("TwoWrapsOfOneKeyDiffer", func(t *testing.T) {
		key := randomKey(t)
		if bytes.Equal(wrap(t, p, key, aad), wrap(t, p, key, aad)) {
			t.Fatal("two wraps of the same key are equal")
		}
	})

	t.Run("WrongAADFails", func(t *testing.T) {
		key := randomKey(t)
		wrapped := wrap(t, p, key, aad)
		flipped := bytes.Clone(aad)
		flipped[len(flipped)-1] ^= 1
		for name, other := range map[string][]byte{
			"empty":      nil,
			"flipped":    flipped,
			"extended":   append(bytes.Clone(aad), 0),
			"truncated":  aad[:len(aad)-1],
			"otherLabel": []byte("eventvault/test\x00tenant-b\x00key-1"),
		} {
			t.Run(name, func(t *testing.T) {
				_, err := p.UnwrapKey(t.Context(), wrapped, other)
				checkAuthError(t, err, key)
			})
		}
	})

	t.Run("MalformedInputFails", func(t *testing.T) {
		key := randomKey(t)
		wrapped := wrap(t, p, key, aad)
		other := wrap(t, p, randomKey(t), aad)
		cases := map[string][]byte{
			"nil":          nil,
			"oneByte":      wrapped[:1],
			"half":         wrapped[:len(wrapped)/2],
			"lastByteCut":  wrapped[:len(wrapped)-1],
			"appendedByte": append(bytes.Clone(wrapped), 0),
			"garbage":      randomBytes(t, len(wrapped)),
			"spliced":      append(bytes.Clone(wrapped[:len(wrapped)/2]), other[len(other)/2:]...),
		}
		for i := range wrapped {
			b := bytes.Clone(wrapped)
			b[i] ^= 0x01
			cases["flippedByte"+strconv.Itoa(i)] = b
		}
		for name, in := range cases {
			t.Run(name, func(t *testing.T) {
				_, err := p.UnwrapKey(t.Context(), in, aad)
				checkAuthError(t, err, key)
			})
		}
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				key := make([]byte, 32)
				crand.Read(key)
				w, err := p.WrapKey(context.Background(), key, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := p.UnwrapKey(context.Background(), w, aad)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, key) {
					errs <- errors.New("concurrent round trip returned another key")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func wrap(t *testing.T, p evcrypto.RootKeyProvider, key, aad []byte) []byte {
	t.Helper()
	w, err := p.WrapKey(t.Context(), key, aad)
	if err != nil {
		t.Fatalf("WrapKey: %v", err)
	}
	return w
}

// checkAuthError fails unless err is an authentication failure that names no
// key bytes.
func checkAuthError(t *testing.T, err error, key []byte) {
	t.Helper()
	if err == nil {
		t.Fatal("UnwrapKey succeeded; want an authentication failure")
	}
	if !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("UnwrapKey error %q does not wrap ErrAuthentication", err)
	}
	if code := eventvault.ErrorCode(err); code != eventvault.EINTERNAL {
		t.Fatalf("UnwrapKey error code %q, want %q", code, eventvault.EINTERNAL)
	}
	msg := err.Error() + eventvault.ErrorMessage(err)
	if bytes.Contains([]byte(msg), key) || bytes.Contains([]byte(msg), []byte(hex.EncodeToString(key))) {
		t.Fatal("the error message holds the key")
	}
}

func randomKey(t *testing.T) []byte { return randomBytes(t, 32) }

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
