package crypto

import (
	"context"
	"slices"
	"strings"

	"github.com/eventvault/eventvault"
)

// The rotation half of memKeyStore. The real stores' behaviour is fixed by
// store/storetest; the rotation tests of this package run on bbolt and
// PostgreSQL (rotation_test.go).

func (s *memKeyStore) TenantKeyVersion(_ context.Context, tenant eventvault.TenantID, version uint32) (eventvault.WrappedKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return eventvault.WrappedKey{}, s.fail
	}
	k, ok := s.keks[tenant][version]
	if !ok {
		return eventvault.WrappedKey{}, eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no key version %d", tenant, version)
	}
	return cloneKey(k), nil
}

func (s *memKeyStore) AddTenantKey(_ context.Context, tenant eventvault.TenantID, k eventvault.WrappedKey) error {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	newest, ok := s.newest(tenant)
	if !ok {
		return eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no key", tenant)
	}
	if k.Version != newest.Version+1 {
		return eventvault.Errorf(eventvault.ECONFLICT, "version %d of tenant %s is not the next", k.Version, tenant)
	}
	s.keks[tenant][k.Version] = cloneKey(k)
	return nil
}

func (s *memKeyStore) RewrapTenantKey(_ context.Context, tenant eventvault.TenantID, old, next eventvault.WrappedKey) error {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	stored, ok := s.keks[tenant][old.Version]
	if !ok {
		return eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no key version %d", tenant, old.Version)
	}
	if !eventvault.SameKeyRow(stored, old) {
		return eventvault.Errorf(eventvault.ECONFLICT, "changed")
	}
	s.keks[tenant][old.Version] = cloneKey(next)
	return nil
}

func (s *memKeyStore) Tenants(context.Context) ([]eventvault.TenantID, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []eventvault.TenantID
	for t := range s.keks {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

func (s *memKeyStore) StreamKeysBefore(_ context.Context, tenant eventvault.TenantID, kekVersion uint32, after eventvault.StreamName, limit int) ([]eventvault.StreamKeyRow, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []eventvault.StreamKeyRow
	for ref, k := range s.streams {
		if ref.tenant == tenant && ref.stream > after && k.KEKVersion < kekVersion {
			out = append(out, eventvault.StreamKeyRow{Stream: ref.stream, Key: cloneKey(k)})
		}
	}
	slices.SortFunc(out, func(a, b eventvault.StreamKeyRow) int { return strings.Compare(string(a.Stream), string(b.Stream)) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memKeyStore) RewrapStreamKey(_ context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, old, next eventvault.WrappedKey) error {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if err := eventvault.CheckRewrap(old, next); err != nil {
		return err
	}
	stored, ok := s.streams[streamRef{tenant, stream}]
	if !ok {
		return eventvault.Errorf(eventvault.ENOTFOUND, "stream %s has no key", stream)
	}
	if !eventvault.SameKeyRow(stored, old) {
		return eventvault.Errorf(eventvault.ECONFLICT, "changed")
	}
	s.streams[streamRef{tenant, stream}] = cloneKey(next)
	return nil
}

func (s *memKeyStore) DestroyTenantKeysBefore(_ context.Context, tenant eventvault.TenantID, version uint32) (int, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if newest, ok := s.newest(tenant); !ok || newest.Version < version {
		return 0, eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no key version %d or newer", tenant, version)
	}
	for ref, k := range s.streams {
		if ref.tenant == tenant && k.KEKVersion < version {
			return 0, eventvault.Errorf(eventvault.ECONFLICT, "stream %s is under KEK version %d", ref.stream, k.KEKVersion)
		}
	}
	n := 0
	for v := range s.keks[tenant] {
		if v < version {
			delete(s.keks[tenant], v)
			n++
		}
	}
	return n, nil
}
