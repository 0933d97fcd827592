package crypto

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventvault/eventvault"
)

// memKeyStore is test scaffolding: an in-memory KeyStore with insert-if-absent
// semantics and call counters. The real stores are tested against
// PostgreSQL and bbolt in store/; the integration tests run the keyring
// against them.
type memKeyStore struct {
	mu sync.Mutex
	// keks holds every version of each tenant's KEK, by version.
	keks    map[eventvault.TenantID]map[uint32]eventvault.WrappedKey
	streams map[streamRef]eventvault.WrappedKey
	calls   atomic.Int64
	// fail, if set, answers every call instead of the store.
	fail error
	// beforeStreamKey, if set, runs at the start of StreamKey.
	beforeStreamKey func()
	// fenced holds shredded tenants (stream "") and streams: the erasure
	// fence refuses them a new key.
	fenced map[streamRef]bool
}

type streamRef struct {
	tenant eventvault.TenantID
	stream eventvault.StreamName
}

func newMemKeyStore() *memKeyStore {
	return &memKeyStore{
		keks:    make(map[eventvault.TenantID]map[uint32]eventvault.WrappedKey),
		streams: make(map[streamRef]eventvault.WrappedKey),
		fenced:  make(map[streamRef]bool),
	}
}

// shred destroys the key of a stream, or of the tenant if stream is "", and
// fences the id.
func (s *memKeyStore) shred(tenant eventvault.TenantID, stream eventvault.StreamName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stream == "" {
		delete(s.keks, tenant)
	} else {
		delete(s.streams, streamRef{tenant, stream})
	}
	s.fenced[streamRef{tenant, stream}] = true
}

func cloneKey(k eventvault.WrappedKey) eventvault.WrappedKey {
	k.Ciphertext = bytes.Clone(k.Ciphertext)
	return k
}

func (s *memKeyStore) TenantKey(_ context.Context, tenant eventvault.TenantID) (eventvault.WrappedKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return eventvault.WrappedKey{}, s.fail
	}
	k, ok := s.newest(tenant)
	if !ok {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no key", tenant)
	}
	return cloneKey(k), nil
}

// newest returns the tenant's KEK with the highest version; s.mu is held.
func (s *memKeyStore) newest(tenant eventvault.TenantID) (eventvault.WrappedKey, bool) {
	var k eventvault.WrappedKey
	var newest uint32
	for v, wk := range s.keks[tenant] {
		if v >= newest {
			newest, k = v, wk
		}
	}
	return k, len(s.keks[tenant]) > 0
}

func (s *memKeyStore) CreateTenantKey(_ context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return eventvault.WrappedKey{}, s.fail
	}
	if old, ok := s.newest(tenant); ok {
		return cloneKey(old), nil
	}
	if s.fenced[streamRef{tenant, ""}] {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.EERASED, "tenant %s was shredded", tenant)
	}
	s.keks[tenant] = map[uint32]eventvault.WrappedKey{k.Version: cloneKey(k)}
	return cloneKey(k), nil
}

func (s *memKeyStore) StreamKey(_ context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.WrappedKey, error) {
	s.calls.Add(1)
	if s.beforeStreamKey != nil {
		s.beforeStreamKey()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return eventvault.WrappedKey{}, s.fail
	}
	k, ok := s.streams[streamRef{tenant, stream}]
	if !ok {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.ENOTFOUND, "stream %s has no key", stream)
	}
	return cloneKey(k), nil
}

func (s *memKeyStore) CreateStreamKey(_ context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, k eventvault.WrappedKey) (eventvault.WrappedKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return eventvault.WrappedKey{}, s.fail
	}
	if old, ok := s.streams[streamRef{tenant, stream}]; ok {
		return cloneKey(old), nil
	}
	if s.fenced[streamRef{tenant, stream}] {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.EERASED, "stream %s was shredded", stream)
	}
	s.streams[streamRef{tenant, stream}] = cloneKey(k)
	return cloneKey(k), nil
}

func (s *memKeyStore) streamKey(t *testing.T, tenant eventvault.TenantID, stream eventvault.StreamName) eventvault.WrappedKey {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.streams[streamRef{tenant, stream}]
	if !ok {
		t.Fatalf("the store holds no key of stream %s/%s", tenant, stream)
	}
	return cloneKey(k)
}

func (s *memKeyStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// countingRoot counts the calls to a root key provider and can fail them.
type countingRoot struct {
	RootKeyProvider
	wraps, unwraps atomic.Int64
	fail           error
}

func (c *countingRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	c.wraps.Add(1)
	if c.fail != nil {
		return nil, c.fail
	}
	return c.RootKeyProvider.WrapKey(ctx, key, aad)
}

func (c *countingRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	c.unwraps.Add(1)
	if c.fail != nil {
		return nil, c.fail
	}
	return c.RootKeyProvider.UnwrapKey(ctx, wrapped, aad)
}

func (c *countingRoot) counts() (wraps, unwraps int64) { return c.wraps.Load(), c.unwraps.Load() }

// newCountingRoot returns a counting wrapper around a LocalRootKey with a
// random key.
func newCountingRoot(t *testing.T) *countingRoot {
	t.Helper()
	key := randomBytes(t, keySize)
	defer clear(key)
	k, err := newLocalRootKey("test", key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &countingRoot{RootKeyProvider: k}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkCode fails unless err carries the code.
func checkCode(t *testing.T, err error, code eventvault.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error; want code %q", code)
	}
	if got := eventvault.ErrorCode(err); got != code {
		t.Fatalf("error %q has code %q; want %q", err, got, code)
	}
}

// checkAuthFailure fails unless err is an EINTERNAL authentication failure.
func checkAuthFailure(t *testing.T, err error) {
	t.Helper()
	checkCode(t, err, eventvault.EINTERNAL)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("error %q does not wrap ErrAuthentication", err)
	}
}
