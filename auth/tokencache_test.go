package auth

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
)

// countingStore is the real bbolt store with its token lookups counted:
// the store answers, the count says whether it was asked.
type countingStore struct {
	*bolt.DB
	lookups atomic.Int64
}

func (s *countingStore) TokenByHash(ctx context.Context, hash []byte) (eventvault.Token, error) {
	s.lookups.Add(1)
	return s.DB.TokenByHash(ctx, hash)
}

func openCountingStore(t *testing.T) *countingStore {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &countingStore{DB: db}
}

// clock is a settable clock for Tokens.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// cachedTokens returns Tokens with a cache of ttl over store, on clk.
func cachedTokens(store eventvault.TokenStore, ttl time.Duration, clk *clock) *Tokens {
	tok := NewTokens(store, ttl)
	tok.Key = testDeploymentKey // servers of one deployment share it
	tok.Now = clk.Now
	return tok
}

// authenticates fails unless secret authenticates with exactly wantLookups
// more store lookups than before.
func authenticates(t *testing.T, s *Tokens, store *countingStore, secret string, wantLookups int64) eventvault.Principal {
	t.Helper()
	before := store.lookups.Load()
	p, err := s.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if got := store.lookups.Load() - before; got != wantLookups {
		t.Fatalf("Authenticate made %d store lookups, want %d", got, wantLookups)
	}
	return p
}

// refused fails unless secret is refused as EUNAUTHORIZED with exactly
// wantLookups more store lookups than before.
func refused(t *testing.T, s *Tokens, store *countingStore, secret string, wantLookups int64) {
	t.Helper()
	before := store.lookups.Load()
	if _, err := s.Authenticate(context.Background(), secret); eventvault.ErrorCode(err) != eventvault.EUNAUTHORIZED {
		t.Fatalf("Authenticate = %v, want EUNAUTHORIZED", err)
	}
	if got := store.lookups.Load() - before; got != wantLookups {
		t.Fatalf("refusal made %d store lookups, want %d", got, wantLookups)
	}
}

func TestCachedTokenAuthenticatesWithoutAStoreCall(t *testing.T) {
	ctx := context.Background()
	store := openCountingStore(t)
	clk := &clock{now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	s := cachedTokens(store, time.Minute, clk)
	root, err := s.InstallRoot(ctx, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	rootP := authenticates(t, s, store, root, 1)
	secret, rec, err := s.Issue(ctx, rootP, NewTokenRequest{Tenant: "acme", Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	// Just issued: it works at once, from the store.
	first := authenticates(t, s, store, secret, 1)
	for range 10 {
		clk.advance(time.Second)
		p := authenticates(t, s, store, secret, 0)
		if p.Tenant != "acme" || p.TokenID != rec.ID || p.Name != "app" || p.Root || len(p.Rules) != len(first.Rules) {
			t.Fatalf("cached principal %+v, want that of %s as first authenticated (%+v)", p, rec.ID, first)
		}
	}
	// The cache is by token: a cached root token says nothing of another.
	if p := authenticates(t, s, store, root, 0); !p.Root || p.TokenID == rec.ID {
		t.Fatalf("root token gave %+v", p)
	}
	refused(t, s, store, secret+"x", 1)
}

func TestCachedTokenExpiresAfterTheTTL(t *testing.T) {
	ctx := context.Background()
	store := openCountingStore(t)
	clk := &clock{now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	const ttl = time.Minute // far beyond the real time the test takes
	// Two servers on one database: b revokes (retires the root token),
	// a only learns of it when its cached entry expires. That is the
	// revocation delay the cache introduces, bounded by the TTL.
	a, b := cachedTokens(store, ttl, clk), cachedTokens(store, ttl, clk)
	if _, err := a.InstallRoot(ctx, "default", "root-1"); err != nil {
		t.Fatal(err)
	}
	authenticates(t, a, store, "root-1", 1)
	if _, err := b.InstallRoot(ctx, "default", "root-2"); err != nil {
		t.Fatal(err)
	}
	refused(t, b, store, "root-1", 1)
	clk.advance(ttl - time.Nanosecond)
	authenticates(t, a, store, "root-1", 0)
	clk.advance(time.Nanosecond)
	refused(t, a, store, "root-1", 1)
	// Nor is the refusal cached: root-2 works at a, after a lookup.
	authenticates(t, a, store, "root-2", 1)
}

func TestInstallRootPurgesTheCache(t *testing.T) {
	ctx := context.Background()
	store := openCountingStore(t)
	clk := &clock{now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	s := cachedTokens(store, time.Hour, clk)
	if _, err := s.InstallRoot(ctx, "default", "root-1"); err != nil {
		t.Fatal(err)
	}
	rootP := authenticates(t, s, store, "root-1", 1)
	secret, _, err := s.Issue(ctx, rootP, NewTokenRequest{Tenant: "acme", Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	authenticates(t, s, store, secret, 1)
	authenticates(t, s, store, "root-1", 0)
	if _, err := s.InstallRoot(ctx, "default", "root-2"); err != nil {
		t.Fatal(err)
	}
	// The retired root token is refused at once, within the TTL.
	refused(t, s, store, "root-1", 1)
	authenticates(t, s, store, "root-2", 1)
	// The purge took every entry: the next use of any token is a lookup.
	authenticates(t, s, store, secret, 1)
	authenticates(t, s, store, secret, 0)
}

func TestUnknownTokensAreNotCached(t *testing.T) {
	ctx := context.Background()
	store := openCountingStore(t)
	clk := &clock{now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	a, b := cachedTokens(store, time.Hour, clk), cachedTokens(store, time.Hour, clk)
	// A forged token costs a lookup every time it is tried.
	for range 3 {
		refused(t, a, store, "evt_forged", 1)
	}
	// A token unknown a moment ago works as soon as it exists, though a
	// (which refused it) was never purged: b installed it.
	if _, err := b.InstallRoot(ctx, "default", "evt_forged"); err != nil {
		t.Fatal(err)
	}
	authenticates(t, a, store, "evt_forged", 1)
	authenticates(t, a, store, "evt_forged", 0)
	// Empty and over-long tokens are refused before any lookup.
	refused(t, a, store, "", 0)
	refused(t, a, store, string(make([]byte, MaxTokenLength+1)), 0)
}

func TestZeroTTLDisablesTheCache(t *testing.T) {
	ctx := context.Background()
	store := openCountingStore(t)
	s := NewTokens(store, 0)
	if _, err := s.InstallRoot(ctx, "default", "root-1"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		authenticates(t, s, store, "root-1", 1)
	}
	s.Purge() // harmless without a cache
}

// TestLookupBeforeAPurgeIsNotCached: a lookup that began before a purge
// may have seen a token the purge was for; its answer is not kept.
func TestLookupBeforeAPurgeIsNotCached(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	c := newTokenCache(time.Hour)
	hash := sha256.Sum256([]byte("root-1"))
	gen := c.generation()
	c.purge() // the revocation lands while the lookup is in flight
	c.add(hash, eventvault.Principal{Tenant: "default", Root: true}, now, gen)
	if p, ok := c.get(hash, now); ok {
		t.Fatalf("a lookup from before the purge was cached: %+v", p)
	}
	c.add(hash, eventvault.Principal{Tenant: "default", Root: true}, now, c.generation())
	if _, ok := c.get(hash, now); !ok {
		t.Fatal("a lookup after the purge was not cached")
	}
}
