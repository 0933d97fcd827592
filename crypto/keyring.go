package crypto

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// RootKeyProvider wraps and unwraps tenant KEKs with the root key (level 0).
// The local file key (dev) and Vault Transit implement it; the suite in
// crypto/cryptotest specifies the behaviour every implementation shares.
type RootKeyProvider interface {
	// WrapKey encrypts key, bound to aad, so that only UnwrapKey with the
	// same aad returns it. Two calls never return the same bytes. It does
	// not keep key.
	// Errors: EUNAVAILABLE if the root key cannot be reached.
	WrapKey(ctx context.Context, key, aad []byte) ([]byte, error)
	// UnwrapKey returns the key WrapKey wrapped with aad. The caller zeroes
	// it when done.
	// Errors: EINTERNAL wrapping ErrAuthentication if wrapped or aad was
	// altered or truncated, or wrapped did not come from this root key;
	// EUNAVAILABLE if the root key cannot be reached, so that an outage is
	// never taken for tampering.
	UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}

// KeyringOptions tune a Keyring. The zero value gives the defaults.
type KeyringOptions struct {
	CacheSize int           // max cached unwrapped keys (default 10000)
	TTL       time.Duration // how long an unwrapped key stays cached (default 5 * time.Minute)
	Rand      io.Reader     // source of keys, key ids and nonces (default crypto/rand.Reader)
	// OnCacheLookup, if set, learns of every lookup in the cache of
	// unwrapped keys: kind "stream", "subject" or "kek", and whether it
	// hit. It must be quick and safe for concurrent use (a metrics
	// counter).
	OnCacheLookup func(kind string, hit bool)
}

// Default KeyringOptions.
const (
	DefaultCacheSize = 10000
	DefaultTTL       = 5 * time.Minute
)

// Keyring is the key hierarchy of one server: it creates, unwraps and caches
// tenant KEKs and stream keys, and hands out StreamCiphers. Unwrapped keys
// never leave it. It is safe for concurrent use.
//
// A tenant KEK is unwrapped by the root provider at most once per tenant per
// TTL (concurrent loads are merged); a stream key is unwrapped locally by the
// KEK. Both stay in one bounded LRU cache for at most the TTL from when they
// were loaded (keycache.go).
//
// A Keyring only uses keys, on the hot path of every append and read;
// rotating, re-wrapping and destroying them is a KeyManager's
// (NewKeyManager), which builds on it.
type Keyring struct {
	root  RootKeyProvider
	keys  eventvault.KeyStore
	rand  io.Reader
	cache *expirable.LRU[cacheKey, cacheEntry]
	// onLookup is KeyringOptions.OnCacheLookup, or nil.
	onLookup func(kind string, hit bool)

	// evictMu makes an eviction and a cache fill exclusive: a load that
	// began before an eviction does not put its (possibly shredded) key back.
	evictMu sync.RWMutex
	gen     uint64 // eviction count, guarded by evictMu

	kekLoads    flight[*tenantKEK]
	streamLoads flight[*StreamCipher]

	// valueBudget is the bytes of opened personal values the subject keys'
	// cache entries may still keep (subjectvalues.go).
	valueBudget atomic.Int64
}

// String names the keyring and how many keys it caches; it prints no key
// bytes.
func (k *Keyring) String() string {
	return fmt.Sprintf("crypto.Keyring(%d cached keys)", k.cache.Len())
}

// GoString is String, so that %#v prints no key bytes either.
func (k *Keyring) GoString() string { return k.String() }

// Format prints String whatever the verb, so that no verb reaches a key.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue logs String, so that slog prints no key bytes either.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

// NewKeyring returns a Keyring over the root key provider and the store of
// wrapped keys.
//
// The KeyStore must enforce the erasure fence: CreateTenantKey and
// CreateStreamKey refuse (EERASED) a tenant or stream that was shredded, so
// that a shredded id never silently gets a fresh key.
func NewKeyring(root RootKeyProvider, keys eventvault.KeyStore, opts KeyringOptions) *Keyring {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	var rand io.Reader = crand.Reader
	if opts.Rand != nil {
		rand = &lockedReader{r: opts.Rand}
	}
	k := &Keyring{
		root: root,
		keys: keys,
		rand: rand,

		onLookup: opts.OnCacheLookup,
	}
	k.valueBudget.Store(valueCacheBytes)
	// An evicted or expired subject key takes the values it opened along.
	k.cache = expirable.NewLRU(opts.CacheSize, func(_ cacheKey, e cacheEntry) {
		if e.subjectCipher != nil {
			e.subjectCipher.values.drop(true)
		}
	}, opts.TTL)
	return k
}

// StreamCipher returns the cipher of the stream's key, creating the tenant
// KEK and the stream key when missing. Whatever the store returns wins, so
// concurrent creators on any number of nodes agree on one key. A stream
// known to the cache costs no root-provider call and no store call.
// Errors: EINVALID for an invalid tenant or stream name; EERASED if the
// store refuses a key for a shredded tenant or stream; the store's and the
// root provider's codes (EUNAVAILABLE, …) wrapped with context; EINTERNAL
// wrapping ErrAuthentication for a key row that does not authenticate.
func (k *Keyring) StreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (*StreamCipher, error) {
	return k.streamCipher(ctx, tenant, stream, true)
}

// LoadStreamCipher returns the cipher of the stream's stored key, and
// creates nothing: it is StreamCipher for a stream that has a key row.
// Errors: ENOTFOUND if the stream has no key row (the store's error); the
// others of StreamCipher.
func (k *Keyring) LoadStreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (*StreamCipher, error) {
	return k.streamCipher(ctx, tenant, stream, false)
}

// streamCipher serves StreamCipher (create) and LoadStreamCipher: the
// cached cipher, else one load per stream at a time on this node (loads
// that create and loads that do not are kept apart, so that neither waits
// for the other's answer).
func (k *Keyring) streamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, create bool) (*StreamCipher, error) {
	if e, ok := k.cacheGet(cacheKey{kind: cacheStream, tenant: tenant, stream: stream}); ok {
		return e.cipher, nil
	}
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return nil, err
	}
	if err := eventvault.ValidateStream(stream); err != nil {
		return nil, err
	}
	flight := string(tenant) + "\x00" + string(stream)
	if !create {
		flight = "load\x00" + flight
	}
	return k.streamLoads.do(ctx, flight, func() (*StreamCipher, error) {
		return k.loadStreamCipher(ctx, tenant, stream, create)
	})
}

// NewStreamKey is a stream key made for the first append to a stream that
// has no key row: a fresh key wrapped under the tenant's newest KEK, and
// its cipher. It is stored nowhere: the append carries Wrapped
// (eventvault.AppendRequest.NewKey) and the store stores it with the
// events, or not at all; KeepStreamKey then caches it.
type NewStreamKey struct {
	Cipher  *StreamCipher
	Wrapped eventvault.WrappedKey
	gen     uint64 // the cache generation when it was made
}

// NewStreamKey makes a new key for the stream, stores nothing of it and
// caches nothing of it. The tenant's KEK is created if the tenant has none
// (a KEK with no data, as every tenant's first key is until its first
// event commits: see docs/design.md).
// Errors: EINVALID for an invalid tenant or stream name; EERASED for a
// shredded tenant; the store's and the root provider's codes.
func (k *Keyring) NewStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (NewStreamKey, error) {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return NewStreamKey{}, err
	}
	if err := eventvault.ValidateStream(stream); err != nil {
		return NewStreamKey{}, err
	}
	gen := k.generation()
	wk, key, err := k.makeStreamKey(ctx, tenant, stream)
	if err != nil {
		return NewStreamKey{}, err
	}
	defer clear(key)
	c, err := newStreamCipher(tenant, stream, wk.ID, wk.Version, key, k.rand)
	if err != nil {
		return NewStreamKey{}, internalError("crypto.Keyring.NewStreamKey", err, "could not use the key of stream %s", stream)
	}
	return NewStreamKey{Cipher: c, Wrapped: wk, gen: gen}, nil
}

// KeepStreamKey caches nk once the append that stored it committed, unless
// a key of the tenant or stream was evicted since nk was made.
func (k *Keyring) KeepStreamKey(tenant eventvault.TenantID, stream eventvault.StreamName, nk NewStreamKey) {
	if nk.Cipher == nil {
		return
	}
	k.fill(nk.gen, cacheKey{kind: cacheStream, tenant: tenant, stream: stream},
		cacheEntry{cipher: nk.Cipher, fingerprint: rowFingerprint(nk.Wrapped)})
}

func (k *Keyring) loadStreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, create bool) (*StreamCipher, error) {
	ck := cacheKey{kind: cacheStream, tenant: tenant, stream: stream}
	if e, ok := k.cacheGet(ck); ok {
		return e.cipher, nil
	}
	gen := k.generation()
	wk, err := k.keys.StreamKey(ctx, tenant, stream)
	switch {
	case err == nil:
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND && !create:
		return nil, err
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
		wk, err = k.createStreamKey(ctx, tenant, stream)
		if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
			// This node's newest KEK was destroyed by a crypto-period
			// another node ran (the store refuses keys under it): forget
			// the tenant's keys and wrap under the KEK that is newest now.
			k.EvictTenant(tenant)
			gen = k.generation()
			wk, err = k.createStreamKey(ctx, tenant, stream)
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("read key of stream %s: %w", stream, err)
	}
	c, err := k.openStreamKey(ctx, tenant, stream, wk)
	if err != nil {
		return nil, err
	}
	k.fill(gen, ck, cacheEntry{cipher: c, fingerprint: rowFingerprint(wk)})
	return c, nil
}

func (k *Keyring) createStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.WrappedKey, error) {
	wk, key, err := k.makeStreamKey(ctx, tenant, stream)
	if err != nil {
		return eventvault.WrappedKey{}, err
	}
	clear(key)
	stored, err := k.keys.CreateStreamKey(ctx, tenant, stream, wk)
	if err != nil {
		return eventvault.WrappedKey{}, fmt.Errorf("store key of stream %s: %w", stream, err)
	}
	return stored, nil
}

// makeStreamKey returns a fresh stream key wrapped under the tenant's
// newest KEK (created if the tenant has none), and the key itself, which
// the caller zeroes.
func (k *Keyring) makeStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName) (eventvault.WrappedKey, []byte, error) {
	const op = "crypto.Keyring.StreamCipher"
	kek, err := k.tenantKEK(ctx, tenant, true)
	if err != nil {
		return eventvault.WrappedKey{}, nil, err
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(k.rand, key); err != nil {
		clear(key)
		return eventvault.WrappedKey{}, nil, internalError(op, err, "could not read random bytes for the key of stream %s", stream)
	}
	id, err := uuid.NewRandomFromReader(k.rand)
	if err != nil {
		clear(key)
		return eventvault.WrappedKey{}, nil, internalError(op, err, "could not read random bytes for the key id of stream %s", stream)
	}
	ct, err := kek.wrapStreamKey(stream, id, key, k.rand)
	if err != nil {
		clear(key)
		return eventvault.WrappedKey{}, nil, internalError(op, err, "could not read a random nonce for the key of stream %s", stream)
	}
	return eventvault.WrappedKey{
		ID:         id,
		Version:    streamKeyVersion,
		KEKVersion: kek.version,
		Ciphertext: ct,
		CreatedAt:  time.Now().UTC(),
	}, key, nil
}

// OpenStreamCipher returns the cipher of wk, the key row the caller read
// together with the events it is about to open. Reads fail closed: the cache
// serves only the very row it was filled from (same key id, versions and
// SHA-256 fingerprint of the ciphertext), so a changed row is unwrapped
// afresh and a missing row is honoured at once.
// Errors: EERASED for a zero WrappedKey (the stream's key was shredded) and
// for a tenant whose KEK is gone; EINTERNAL wrapping ErrAuthentication for a
// row that does not authenticate for this tenant and stream; the store's
// and root provider's codes, wrapped with context.
func (k *Keyring) OpenStreamCipher(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey) (*StreamCipher, error) {
	const op = "crypto.Keyring.OpenStreamCipher"
	if len(wk.Ciphertext) == 0 {
		k.EvictStream(tenant, stream)
		return nil, streamErasedError(op, stream)
	}
	ck := cacheKey{kind: cacheStream, tenant: tenant, stream: stream}
	fp := rowFingerprint(wk)
	if e, ok := k.cacheGet(ck); ok && e.filledFrom(fp) {
		return e.cipher, nil
	}
	gen := k.generation()
	c, err := k.openStreamKey(ctx, tenant, stream, wk)
	if err != nil {
		return nil, err
	}
	k.fill(gen, ck, cacheEntry{cipher: c, fingerprint: fp})
	return c, nil
}

// CachedStreamCipher returns the cipher of wk when the cache holds it for
// that very row, as OpenStreamCipher would serve it, and false otherwise
// (a zero WrappedKey included), without unwrapping anything or calling the
// store or the root key: for a caller that may not wait on them (a reader
// still receiving the events the key opens, whose connection to the store
// is taken). A false is not a miss of the cache's metrics: the caller goes
// on to OpenStreamCipher, which counts it.
func (k *Keyring) CachedStreamCipher(tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey) (*StreamCipher, bool) {
	if len(wk.Ciphertext) == 0 {
		return nil, false
	}
	e, ok := k.cache.Get(cacheKey{kind: cacheStream, tenant: tenant, stream: stream})
	if !ok {
		return nil, false
	}
	fp := rowFingerprint(wk)
	if !e.filledFrom(fp) {
		return nil, false
	}
	if k.onLookup != nil {
		k.onLookup("stream", true)
	}
	return e.cipher, true
}

// CachedStreamCipherAt returns the cached cipher of the stream if a read
// found its key row to be the one the cipher came from on a snapshot at
// key epoch epoch (MarkStreamKeyChecked), and false otherwise: the
// tenant's stream key rows are then the same on any snapshot at that epoch
// (eventvault.AllPage.KeyEpoch), so the cipher opens the stream's events
// of such a page as OpenStreamCipher with its key row would, without the
// row. It calls neither the store nor the root key. A false is not a miss
// of the cache's metrics, as CachedStreamCipher's.
//
// A stream a read found shredded at that epoch comes back as a nil cipher
// and true: its events are erased envelopes. An epoch of 0 or less is
// unknown (the store found none): nothing is served at it.
func (k *Keyring) CachedStreamCipherAt(tenant eventvault.TenantID, stream eventvault.StreamName, epoch int64) (*StreamCipher, bool) {
	if epoch <= 0 {
		return nil, false
	}
	e, ok := k.cache.Get(cacheKey{kind: cacheStream, tenant: tenant, stream: stream})
	if ok && e.cipher != nil && e.checkedAt != nil && e.checkedAt.Load() == epoch+1 {
		if k.onLookup != nil {
			k.onLookup("stream", true)
		}
		return e.cipher, true
	}
	if e, ok = k.cache.Get(cacheKey{kind: cacheErasedStream, tenant: tenant, stream: stream}); ok && e.checkedAt.Load() == epoch+1 {
		return nil, true
	}
	return nil, false
}

// MarkStreamKeyChecked records that wk is the stream's key row on a
// snapshot at key epoch epoch, if the cache holds the cipher of that very
// row: CachedStreamCipherAt then serves it to pages read at that epoch. A
// zero wk (a shredded stream), another row, or no cached cipher marks
// nothing.
//
// A zero wk marks the stream as found shredded at the epoch, so that pages
// at that epoch leave its events erased without its key row; a shredded
// key never comes back, and the epoch moves with any change to the row.
// An epoch of 0 or less is unknown and marks nothing.
func (k *Keyring) MarkStreamKeyChecked(tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey, epoch int64) {
	if epoch <= 0 {
		return
	}
	if wk.ID == uuid.Nil && len(wk.Ciphertext) == 0 {
		k.EvictStream(tenant, stream) // a cipher this node still holds
		ek := cacheKey{kind: cacheErasedStream, tenant: tenant, stream: stream}
		if e, ok := k.cache.Peek(ek); ok {
			e.checkedAt.Store(epoch + 1)
			return
		}
		e := cacheEntry{checkedAt: new(atomic.Int64)}
		e.checkedAt.Store(epoch + 1)
		k.cache.Add(ek, e)
		return
	}
	if len(wk.Ciphertext) == 0 {
		return
	}
	e, ok := k.cache.Peek(cacheKey{kind: cacheStream, tenant: tenant, stream: stream})
	if !ok || e.checkedAt == nil || !e.filledFrom(rowFingerprint(wk)) {
		return
	}
	e.checkedAt.Store(epoch + 1)
}

// openStreamKey unwraps a stream key row with the version of the tenant's
// KEK that the row names: rows not yet re-wrapped after a KEK rotation
// open with the older version, fetched and cached on its own.
func (k *Keyring) openStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, wk eventvault.WrappedKey) (*StreamCipher, error) {
	const op = "crypto.Keyring.OpenStreamCipher"
	h, err := streamKeyHeader(op, stream, wk)
	if err != nil {
		return nil, err
	}
	kek, err := k.kekVersion(ctx, tenant, h.keyVersion)
	if err != nil {
		return nil, err
	}
	if kek.id != h.keyID {
		return nil, authError(op, "the key of stream %s is wrapped by tenant key %s, but tenant %s has key %s", stream, h.keyID, tenant, kek.id)
	}
	key, err := kek.unwrapStreamKey(stream, wk)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	c, err := newStreamCipher(tenant, stream, wk.ID, wk.Version, key, k.rand)
	if err != nil {
		return nil, internalError(op, err, "could not use the key of stream %s", stream)
	}
	return c, nil
}

// streamKeyHeader checks a stream key row's envelope header against the
// row and returns it: a stream key, under the KEK version the row names.
func streamKeyHeader(op string, stream eventvault.StreamName, wk eventvault.WrappedKey) (header, error) {
	if len(wk.Ciphertext) == 0 {
		return header{}, streamErasedError(op, stream)
	}
	h, err := parseHeader(wk.Ciphertext)
	switch {
	case err != nil:
		return header{}, authError(op, "the key row of stream %s failed authentication: %s", stream, describeHeaderError(err))
	case h.kind != kindStreamKey:
		return header{}, authError(op, "the key row of stream %s holds a %s, not a stream key", stream, h.kind)
	case h.keyVersion != wk.KEKVersion:
		return header{}, authError(op, "the key row of stream %s says KEK version %d but its envelope says %d", stream, wk.KEKVersion, h.keyVersion)
	}
	return h, nil
}

// lockedReader serializes reads from an injected random source, which need
// not be safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
