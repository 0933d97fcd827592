package engine

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// piiCache keeps, per event, its decoded manifest and the ciphertext of
// personal values a read fetched, so that the next read of the same events
// neither decodes their manifests again nor fetches their values: one
// small round trip for their subjects' states rather than a row per value.
// A decoded manifest is used only for the manifest bytes it was decoded
// from (the ones just opened, authenticated, from the event; matched by
// length and a keyed 64-bit hash, manifestSum). It holds ciphertext, and
// values only through handles that die with their key (KeptValue,
// KeptData): a cached entry opens only with its subject's key, which
// every read takes from the key row it reads with the page (fail closed),
// so an erased subject's cached entries open for no one. An entry is used
// only at the generation of the subject it was fetched at; a
// rectification moves the generation on, and the value is fetched again.
//
// It holds at most piiCacheSize events and about piiCacheBytes of them.
// It is a map under a read-write lock rather than an LRU: a page looks up
// all its events under one read lock (getPage), where an LRU would take
// its one mutex per event to move it to the front. When full, a put drops
// an arbitrary tenth of the entries (Go's map order); an entry older than
// piiCacheTTL is not used.
type piiCache struct {
	mu sync.RWMutex
	// tenants holds the entries per tenant, per event: a page costs one
	// lookup of its tenant and one per event.
	tenants map[eventvault.TenantID]map[uuid.UUID]piiCacheEntry
	size    int   // entries over all tenants
	bytes   int64 // what the entries hold (piiCacheEntry.bytes), over all tenants
	now     func() time.Time
}

type piiCacheEntry struct {
	ep      *eventPII
	expires int64 // Unix nanoseconds
	bytes   int64 // about what ep holds: its ciphertexts, tokens and pointers
}

// entryBytes is about what ep holds, for piiCacheBytes.
func entryBytes(ep *eventPII) int64 {
	n := 256 + len(ep.whoseJSON) + len(ep.shape)
	for k, en := range ep.entries {
		n += 64 + len(en.Pointer) + len(en.Token) + len(ep.values[k].ciphertext)
	}
	return int64(n)
}

type cachedValue struct {
	token      string
	subject    eventvault.Pseudonym
	version    int64
	generation int64
	ciphertext []byte
	// kept is what the subject's cipher returned when it last opened the
	// value: a hint that spares its lookup (it holds the value only as
	// long as the subject key's cache entry keeps it).
	kept *evcrypto.KeptValue
}

// Bounds of the cache of personal values' ciphertext.
const (
	piiCacheSize  = 100000   // events
	piiCacheBytes = 64 << 20 // about what the entries hold (entryBytes)
	piiCacheTTL   = 5 * time.Minute
)

func newPIICache() *piiCache {
	return &piiCache{tenants: map[eventvault.TenantID]map[uuid.UUID]piiCacheEntry{}, now: time.Now}
}

// eventPII is an event's decoded manifest and the ciphertext of its values.
// It is never modified once made: readers share it.
type eventPII struct {
	// manifestLen and manifestSum identify the manifest's bytes, as
	// sealed: its length and keyed hash (manifestSum).
	manifestLen int
	manifestSum uint64
	subjects    []eventvault.Pseudonym // the manifest's subjects, in its order
	entries     []manifestEntry        // by offset
	// values holds one per entry: a zero value where none was fetched.
	// The caller checks each against the entry (token, subject) and the
	// subject's generation (cachedValue.fresh).
	values []cachedValue
	// shape is the entries' pointers and classes, which decide what a
	// read shows of each (with the stream, the type and restrictions).
	shape string
	// whose is an event's PII member (eventvault.Event.PII) when a read
	// shows every one of its values: shared by such reads.
	whose []eventvault.SubjectValues
	// whoseJSON is whose rendered (eventvault.AppendPIIMember).
	whoseJSON []byte
	// kept is the event's data as a read showed it (every value decrypted
	// or masked, by keptActs, an interned actsString), kept with the key
	// of its one subject under keptID (SubjectCipher.KeepData): a hint
	// that serves only while that cipher keeps it, at the subject's
	// generation it was made at.
	kept     *evcrypto.KeptData
	keptID   string
	keptActs string
}

// manifestSeed keys manifestSum.
var manifestSeed = maphash.MakeSeed()

// manifestSum is the keyed 64-bit hash by which a cached decoded manifest
// is matched to the manifest bytes a read just opened (authenticated, of
// the same event): cheaper than comparing the bytes, with a seed of this
// process so that no input can be chosen to collide.
func manifestSum(m []byte) uint64 { return maphash.Bytes(manifestSeed, m) }

// interned holds strings that many cache entries repeat (shapes, the
// actions of a shape), so that entries share one copy and comparing two
// of them compares pointers; bounded, since pointers may be any string.
var interned = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

const internedMax = 4096

// intern returns the interned copy of s, or s once the table is full.
func intern(s string) string {
	interned.Lock()
	defer interned.Unlock()
	if i, ok := interned.m[s]; ok {
		return i
	}
	if len(interned.m) >= internedMax {
		return s
	}
	interned.m[s] = s
	return s
}

// newEventPII decodes manifest m of an event whose sealed data is data,
// entries sorted by offset.
func newEventPII(m, data []byte) (*eventPII, error) {
	subjects, entries, err := decodeManifest(m, data)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b manifestEntry) int { return a.Offset - b.Offset })
	var shape []byte
	for _, en := range entries {
		// Length-prefixed: a pointer may hold any character.
		shape = append(append(binary.AppendUvarint(shape, uint64(len(en.Pointer))), en.Pointer...), classByte(en.Class))
	}
	whose := whoseValues(subjects, entries, nil)
	return &eventPII{manifestLen: len(m), manifestSum: manifestSum(m), subjects: subjects, entries: entries, values: make([]cachedValue, len(entries)),
		shape: intern(string(shape)), whose: whose, whoseJSON: eventvault.AppendPIIMember(nil, whose)}, nil
}

// whoseValues is the PII member of an event showing the entries for which
// shown is true (every entry when shown is nil): per subject, in the
// order of subjects, its pointers in the order of entries; nil for none.
func whoseValues(subjects []eventvault.Pseudonym, entries []manifestEntry, shown []bool) []eventvault.SubjectValues {
	counts := make([]int, len(subjects))
	n := 0
	for k, en := range entries {
		if shown == nil || shown[k] {
			counts[en.subjectIndex]++
			n++
		}
	}
	if n == 0 {
		return nil
	}
	pointers := make([]string, 0, n) // one array for every subject's pointers
	var out []eventvault.SubjectValues
	for si, s := range subjects {
		if counts[si] == 0 {
			continue
		}
		first := len(pointers)
		for k, en := range entries {
			if en.subjectIndex == si && (shown == nil || shown[k]) {
				pointers = append(pointers, en.Pointer)
			}
		}
		out = append(out, eventvault.SubjectValues{Subject: s, Pointers: pointers[first:len(pointers):len(pointers)]})
	}
	return out
}

// clone returns a copy of ep whose entries and values may be changed.
func (ep *eventPII) clone() *eventPII {
	c := *ep
	c.entries, c.values = slices.Clone(ep.entries), slices.Clone(ep.values)
	return &c
}

// getPage sets out[i] to the cached entry of events[i] for each i where
// marked[i], else nil; one read lock for the page.
func (c *piiCache) getPage(tenant eventvault.TenantID, events []eventvault.Event, marked [][]byte, out []*eventPII) {
	now := c.now().UnixNano()
	c.mu.RLock()
	defer c.mu.RUnlock()
	entries := c.tenants[tenant]
	if entries == nil {
		return
	}
	for i := range events {
		if marked[i] == nil {
			continue
		}
		if en, ok := entries[events[i].ID]; ok && en.expires > now {
			out[i] = en.ep
		}
	}
}

func (c *piiCache) put(tenant eventvault.TenantID, event uuid.UUID, v *eventPII) {
	expires := c.now().Add(piiCacheTTL).UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(tenant, event)
	size := entryBytes(v)
	if size > piiCacheBytes/100 {
		// One event's values, fetched for a read, are not kept when they
		// would take a hundredth of the cache.
		return
	}
	if c.size >= piiCacheSize {
		c.dropLocked(piiCacheSize / 10)
	}
	for c.bytes+size > piiCacheBytes && c.size > 0 {
		c.dropLocked(max(1, c.size/10))
	}
	entries := c.tenants[tenant]
	if entries == nil {
		entries = map[uuid.UUID]piiCacheEntry{}
		c.tenants[tenant] = entries
	}
	entries[event] = piiCacheEntry{ep: v, expires: expires, bytes: size}
	c.size++
	c.bytes += size
}

// dropLocked drops n arbitrary entries (Go's map order), emptied tenants
// with them.
func (c *piiCache) dropLocked(n int) {
	for tenant, entries := range c.tenants {
		for k := range entries {
			if n == 0 {
				return
			}
			c.bytes -= entries[k].bytes
			delete(entries, k)
			c.size--
			n--
		}
		if len(entries) == 0 {
			delete(c.tenants, tenant)
		}
	}
}

func (c *piiCache) remove(tenant eventvault.TenantID, event uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(tenant, event)
}

func (c *piiCache) removeLocked(tenant eventvault.TenantID, event uuid.UUID) {
	if entries := c.tenants[tenant]; entries != nil {
		if en, ok := entries[event]; ok {
			delete(entries, event)
			c.size--
			c.bytes -= en.bytes
		}
	}
}

// fresh reports whether v is the value of entry en at generation gen.
func (v cachedValue) fresh(en manifestEntry, gen int64) bool {
	return v.ciphertext != nil && v.token == en.Token && v.subject == en.Subject && v.generation == gen
}
