package engine

import (
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/eventvault/eventvault"
)

// piiCache keeps the ciphertext of personal values a read fetched, so that
// the next read of the same events fetches only their subjects' states:
// one small round trip rather than a row per value. It holds ciphertext,
// never a value: a cached entry opens only with its subject's key, which
// every read takes from the key row it reads with the page (fail closed),
// so an erased subject's cached entries open for no one. An entry is used
// only at the generation of the subject it was fetched at; a
// rectification moves the generation on, and the value is fetched again.
type piiCache struct {
	lru *expirable.LRU[piiCacheKey, []cachedValue]
}

// Entries are per event, one value per entry of its manifest (in order),
// so that a page costs one lookup per event.
type piiCacheKey struct {
	tenant eventvault.TenantID
	event  uuid.UUID
}

type cachedValue struct {
	token      string
	subject    eventvault.Pseudonym
	version    int64
	generation int64
	ciphertext []byte
}

// Bounds of the cache of personal values' ciphertext.
const (
	piiCacheSize = 100000 // events
	piiCacheTTL  = 5 * time.Minute
)

func newPIICache() *piiCache {
	return &piiCache{lru: expirable.NewLRU[piiCacheKey, []cachedValue](piiCacheSize, nil, piiCacheTTL)}
}

// get returns the cached values of an event's manifest, in its order; a
// zero value where none was fetched. The caller checks each against the
// entry (token, subject) and the subject's generation.
func (c *piiCache) get(tenant eventvault.TenantID, event uuid.UUID) []cachedValue {
	v, _ := c.lru.Get(piiCacheKey{tenant, event})
	return v
}

func (c *piiCache) put(tenant eventvault.TenantID, event uuid.UUID, v []cachedValue) {
	c.lru.Add(piiCacheKey{tenant, event}, v)
}

func (c *piiCache) remove(tenant eventvault.TenantID, event uuid.UUID) {
	c.lru.Remove(piiCacheKey{tenant, event})
}

// fresh reports whether v is the value of entry en at generation gen.
func (v cachedValue) fresh(en manifestEntry, gen int64) bool {
	return v.ciphertext != nil && v.token == en.Token && v.subject == en.Subject && v.generation == gen
}
