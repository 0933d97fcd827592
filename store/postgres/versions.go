package postgres

import (
	"sync"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// maxCachedStreams bounds the version cache; past it, an arbitrary entry
// makes room for the new one.
const maxCachedStreams = 16384

// streamRef names a stream of a tenant.
type streamRef struct {
	tenant eventvault.TenantID
	stream eventvault.StreamName
}

// streamRow is what this process last saw of a stream's row: its version,
// its key and its owner ("" for none).
type streamRow struct {
	version int64
	keyID   uuid.UUID
	owner   eventvault.Pseudonym
}

// versionCache remembers each stream's last known row, so that an append
// can seal at the cached version and write in one round trip (the fast
// append). It is a hint only: the fast append checks the row under the
// stream's row lock, and a stale entry costs the locking path, never a
// wrong answer. Its
// zero value is ready for use; it is safe for concurrent use.
type versionCache struct {
	mu      sync.Mutex
	streams map[streamRef]streamRow
}

// get returns the cached row of a stream, if any.
func (c *versionCache) get(tenant eventvault.TenantID, stream eventvault.StreamName) (streamRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.streams[streamRef{tenant, stream}]
	return g, ok
}

// saw records a stream row read or written by a transaction. A stream's
// versions only grow under one key, so a sighting older than the entry
// (appends that finished out of order) leaves it as it is.
func (c *versionCache) saw(tenant eventvault.TenantID, stream eventvault.StreamName, g streamRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := streamRef{tenant, stream}
	old, ok := c.streams[ref]
	if ok && old.keyID == g.keyID && old.version > g.version {
		return
	}
	if ok && g.owner == "" {
		g.owner = old.owner
	}
	if c.streams == nil {
		c.streams = make(map[streamRef]streamRow)
	}
	if !ok && len(c.streams) >= maxCachedStreams {
		for k := range c.streams {
			delete(c.streams, k)
			break
		}
	}
	c.streams[ref] = g
}

// forget drops a stream's entry (it was shredded, or found without a key).
func (c *versionCache) forget(tenant eventvault.TenantID, stream eventvault.StreamName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.streams, streamRef{tenant, stream})
}

// forgetTenant drops every entry of a tenant (it was shredded).
func (c *versionCache) forgetTenant(tenant eventvault.TenantID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.streams {
		if k.tenant == tenant {
			delete(c.streams, k)
		}
	}
}

// maxRecentIDs is how many event ids recentIDs remembers.
const maxRecentIDs = 1 << 15

// recentIDs remembers the ids of the events this process appended or
// replayed last, so that a retry through the same node goes straight to
// the locking path, which answers it without sealing the batch again. A
// retry it does not catch (through another node, or older than the window)
// is still answered exactly: the fast append finds its ids and falls
// back, having sealed for nothing. Its zero value is ready for use; it is
// safe for concurrent use.
type recentIDs struct {
	mu   sync.Mutex
	ring [][16]byte
	next int
	set  map[[16]byte]struct{}
}

// any reports whether one of ids is among the remembered ones.
func (r *recentIDs) any(ids [][16]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if _, ok := r.set[id]; ok {
			return true
		}
	}
	return false
}

// add remembers ids, forgetting the oldest past maxRecentIDs.
func (r *recentIDs) add(ids [][16]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = make(map[[16]byte]struct{}, maxRecentIDs)
		r.ring = make([][16]byte, 0, maxRecentIDs)
	}
	for _, id := range ids {
		if _, ok := r.set[id]; ok {
			continue
		}
		if len(r.ring) < maxRecentIDs {
			r.ring = append(r.ring, id)
		} else {
			delete(r.set, r.ring[r.next])
			r.ring[r.next] = id
			r.next = (r.next + 1) % maxRecentIDs
		}
		r.set[id] = struct{}{}
	}
}
