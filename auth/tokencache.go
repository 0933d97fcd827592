package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/eventvault/eventvault"
)

// TokenCacheSize bounds how many authenticated tokens a Tokens remembers.
const TokenCacheSize = 10000

// DefaultTokenCacheTTL is how long the server remembers an authenticated
// token unless told otherwise: the longest a revocation made by another
// server process on the same database may go unnoticed.
const DefaultTokenCacheTTL = 5 * time.Second

// tokenCache remembers the principals of tokens that authenticated, by
// their SHA-256 hash (never the token), for a bounded time. Unknown tokens
// are never remembered: a just-issued token works at once, and a forged one
// costs a store lookup every time.
type tokenCache struct {
	ttl time.Duration
	lru *expirable.LRU[[sha256.Size]byte, cachedPrincipal]
	// mu orders add against purge, so that a lookup that began before a
	// purge (and may have seen a token the purge was for) is not added
	// after it. gen counts purges.
	mu  sync.Mutex
	gen uint64
}

type cachedPrincipal struct {
	p eventvault.Principal
	// expires is on the Tokens' clock; the LRU's own TTL, on the wall
	// clock, only frees the memory.
	expires time.Time
}

func newTokenCache(ttl time.Duration) *tokenCache {
	return &tokenCache{ttl: ttl, lru: expirable.NewLRU[[sha256.Size]byte, cachedPrincipal](TokenCacheSize, nil, ttl)}
}

func (c *tokenCache) get(hash [sha256.Size]byte, now time.Time) (eventvault.Principal, bool) {
	e, ok := c.lru.Get(hash)
	if !ok || !now.Before(e.expires) {
		return eventvault.Principal{}, false
	}
	return e.p, true
}

// generation is taken before a store lookup and handed to add after it.
func (c *tokenCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// add remembers p unless the cache was purged since generation gen.
func (c *tokenCache) add(hash [sha256.Size]byte, p eventvault.Principal, now time.Time, gen uint64) {
	c.addUntil(hash, p, now, gen, time.Time{})
}

// addUntil is add for a token that expires at until (zero: never): the
// entry lasts no longer than the token.
func (c *tokenCache) addUntil(hash [sha256.Size]byte, p eventvault.Principal, now time.Time, gen uint64, until time.Time) {
	expires := now.Add(c.ttl)
	if !until.IsZero() && until.Before(expires) {
		expires = until
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.lru.Add(hash, cachedPrincipal{p: p, expires: expires})
	}
}

func (c *tokenCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Purge()
}
