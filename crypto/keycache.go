package crypto

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/eventvault/eventvault"
)

// The Keyring's cache of unwrapped keys, and the one rule that keeps it
// honest: a load that began before an eviction never puts its key back.
// Every fill and every eviction goes through this file.

type cacheKind uint8

const (
	cacheTenantKEK cacheKind = iota + 1 // the tenant's newest KEK, which wraps new stream keys
	cacheStream
	cacheKEKVersion // one version of the tenant's KEK, which unwraps the stream keys it wrapped
	cacheSubject    // a data subject's key (subjectkeys.go)
	// cacheErasedStream marks a stream a read found shredded at a key
	// epoch (MarkStreamKeyChecked with the zero key): no key, only
	// checkedAt.
	cacheErasedStream
)

type cacheKey struct {
	kind   cacheKind
	tenant eventvault.TenantID
	stream eventvault.StreamName
	// version is, for cacheKEKVersion, the KEK version.
	version uint32
	// subject is, for cacheSubject, the subject's pseudonym.
	subject eventvault.Pseudonym
}

type cacheEntry struct {
	kek    *tenantKEK
	cipher *StreamCipher
	// subjectCipher is, for cacheSubject, the subject's cipher.
	subjectCipher *SubjectCipher
	// fingerprint is, for a stream, the rowFingerprint of the wrapped key
	// row the cipher came from: a read presenting any other row misses the
	// cache.
	fingerprint [sha256.Size]byte
	// checkedAt is, for a stream, the key epoch (eventvault.AllPage.KeyEpoch)
	// plus one at which a read last found the stream's key row to be the one
	// the entry was filled from, 0 for none: CachedStreamCipherAt. It is
	// shared by the copies of the entry the cache hands out, so that marking
	// it neither re-adds the entry (which would renew its time to live) nor
	// races with a lookup.
	checkedAt *atomic.Int64
}

// filledFrom reports, in constant time, whether the entry was filled from
// the key row whose rowFingerprint is fp: only then may it serve a read.
func (e cacheEntry) filledFrom(fp [sha256.Size]byte) bool {
	return subtle.ConstantTimeCompare(e.fingerprint[:], fp[:]) == 1
}

// String names what the entry holds; it prints no key bytes.
func (e cacheEntry) String() string {
	switch {
	case e.kek != nil:
		return "cacheEntry(" + e.kek.String() + ")"
	case e.cipher != nil:
		return "cacheEntry(" + e.cipher.String() + ")"
	case e.subjectCipher != nil:
		return "cacheEntry(" + e.subjectCipher.String() + ")"
	}
	return "cacheEntry(empty)"
}

// Format prints String whatever the verb, so that no verb reaches a key.
func (e cacheEntry) Format(f fmt.State, _ rune) { io.WriteString(f, e.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (e cacheEntry) LogValue() slog.Value { return slog.StringValue(e.String()) }

// rowFingerprint is SHA-256 over every field of a key row but its time:
// id || version || KEK version || ciphertext.
func rowFingerprint(wk eventvault.WrappedKey) [sha256.Size]byte {
	h := sha256.New()
	h.Write(wk.ID[:])
	var v [8]byte
	binary.BigEndian.PutUint32(v[:4], wk.Version)
	binary.BigEndian.PutUint32(v[4:], wk.KEKVersion)
	h.Write(v[:])
	h.Write(wk.Ciphertext)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp
}

// EvictStream drops the cached key of one stream, so that the next use reads
// the store. Call it when the stream is shredded, here or on another node.
func (k *Keyring) EvictStream(tenant eventvault.TenantID, stream eventvault.StreamName) {
	k.evictMu.Lock()
	defer k.evictMu.Unlock()
	k.gen++
	k.cache.Remove(cacheKey{kind: cacheStream, tenant: tenant, stream: stream})
}

// EvictTenant drops every cached key of the tenant, its KEK included. Call it
// when the tenant's KEK is shredded or rotated, here or on another node.
func (k *Keyring) EvictTenant(tenant eventvault.TenantID) {
	k.evictMu.Lock()
	defer k.evictMu.Unlock()
	k.gen++
	for _, key := range k.cache.Keys() {
		if key.tenant == tenant {
			k.cache.Remove(key)
		}
	}
}

func (k *Keyring) generation() uint64 {
	k.evictMu.RLock()
	defer k.evictMu.RUnlock()
	return k.gen
}

// fill caches e unless an eviction happened since the load began at gen.
func (k *Keyring) fill(gen uint64, key cacheKey, e cacheEntry) {
	k.evictMu.RLock()
	defer k.evictMu.RUnlock()
	if k.gen == gen {
		if old, ok := k.cache.Peek(key); ok && old.subjectCipher != nil && old.subjectCipher != e.subjectCipher {
			// Another key row replaces it (the cache does not call the
			// eviction callback on a replacement): its values go too.
			old.subjectCipher.values.drop(true)
		}
		if e.subjectCipher != nil {
			// Only a cipher the cache holds keeps values: they then go
			// with its entry (subjectvalues.go).
			e.subjectCipher.values.enable(&k.valueBudget)
		}
		if e.cipher != nil && e.checkedAt == nil {
			e.checkedAt = new(atomic.Int64)
		}
		k.cache.Add(key, e)
	}
}

// fillKEK caches kek under its version, unless an eviction happened since
// the load began at gen. It also caches kek as the tenant's newest KEK if
// newest is set (kek came from TenantKey or a rotation) and no newer one is
// cached, or if a cached newest KEK is older than kek (another node rotated).
// A version loaded for a read never becomes the newest on its own: it may
// be an old one.
func (k *Keyring) fillKEK(gen uint64, kek *tenantKEK, newest bool) {
	nk := cacheKey{kind: cacheTenantKEK, tenant: kek.tenant}
	k.evictMu.Lock()
	defer k.evictMu.Unlock()
	if k.gen != gen {
		return
	}
	k.cache.Add(cacheKey{kind: cacheKEKVersion, tenant: kek.tenant, version: kek.version}, cacheEntry{kek: kek})
	e, ok := k.cache.Peek(nk)
	if (newest && (!ok || e.kek.version <= kek.version)) || (ok && e.kek.version < kek.version) {
		k.cache.Add(nk, cacheEntry{kek: kek})
	}
}

// cacheGet looks ck up in the cache and reports the lookup to onLookup.
func (k *Keyring) cacheGet(ck cacheKey) (cacheEntry, bool) {
	e, ok := k.cache.Get(ck)
	if k.onLookup != nil {
		kind := "kek"
		switch ck.kind {
		case cacheStream:
			kind = "stream"
		case cacheSubject:
			kind = "subject"
		}
		k.onLookup(kind, ok)
	}
	return e, ok
}
