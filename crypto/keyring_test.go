package crypto

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/google/uuid"
)

// keyringFixture is a Keyring over an in-memory KeyStore and a counting
// LocalRootKey.
type keyringFixture struct {
	root  *countingRoot
	store *memKeyStore
	ring  *Keyring
}

func newKeyringFixture(t *testing.T, opts KeyringOptions) *keyringFixture {
	t.Helper()
	f := &keyringFixture{root: newCountingRoot(t), store: newMemKeyStore()}
	f.ring = NewKeyring(f.root, f.store, opts)
	return f
}

// freshKeyring returns another Keyring (as after a restart, or on another
// node) over the same root key and store, with its own call counter.
func (f *keyringFixture) freshKeyring(opts KeyringOptions) (*Keyring, *countingRoot) {
	root := &countingRoot{RootKeyProvider: f.root.RootKeyProvider}
	return NewKeyring(root, f.store, opts), root
}

func streamCipher(t *testing.T, k *Keyring, tenant eventvault.TenantID, stream eventvault.StreamName) *StreamCipher {
	t.Helper()
	c, err := k.StreamCipher(t.Context(), tenant, stream)
	if err != nil {
		t.Fatalf("StreamCipher(%s, %s): %v", tenant, stream, err)
	}
	return c
}

func checkRootCalls(t *testing.T, root *countingRoot, wantWraps, wantUnwraps int64) {
	t.Helper()
	if wraps, unwraps := root.counts(); wraps != wantWraps || unwraps != wantUnwraps {
		t.Fatalf("root calls: %d wraps, %d unwraps; want %d, %d", wraps, unwraps, wantWraps, wantUnwraps)
	}
}

// checkSealOpen fails unless a seals an event that b opens.
func checkSealOpen(t *testing.T, a, b *StreamCipher) {
	t.Helper()
	ref := EventRef{Tenant: a.tenant, Stream: a.stream, ID: uuid.New(), Position: 3, Type: "Tested"}
	payload, err := a.SealEvent(ref, testData, testMetadata)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := b.OpenEvent(ref, payload)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, testData) {
		t.Fatal("opened other data")
	}
}

func TestStreamCipherOfANewTenantWrapsOneKEK(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	a := streamCipher(t, f.ring, "acme", "order-1")
	checkRootCalls(t, f.root, 1, 0)
	b := streamCipher(t, f.ring, "acme", "order-2")
	checkRootCalls(t, f.root, 1, 0)
	if a.KeyID() == b.KeyID() {
		t.Fatal("two streams share a key id")
	}
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		wk := f.store.streamKey(t, "acme", s)
		if wk.Version != streamKeyVersion || wk.KEKVersion != 1 {
			t.Errorf("key row of %s has version %d, KEK version %d; want %d, 1", s, wk.Version, wk.KEKVersion, streamKeyVersion)
		}
	}
	checkSealOpen(t, a, a)
}

func TestFreshKeyringUnwrapsEachTenantKEKOnce(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	want := map[eventvault.StreamName]uuid.UUID{}
	for i := range 5 {
		s := eventvault.StreamName(fmt.Sprintf("order-%d", i))
		want[s] = streamCipher(t, f.ring, "acme", s).KeyID()
	}
	streamCipher(t, f.ring, "globex", "invoice-1")

	ring, root := f.freshKeyring(KeyringOptions{})
	for s, id := range want {
		if got := streamCipher(t, ring, "acme", s).KeyID(); got != id {
			t.Fatalf("stream %s: key %s; want %s", s, got, id)
		}
		c, err := ring.OpenStreamCipher(t.Context(), "acme", s, f.store.streamKey(t, "acme", s))
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyID() != id {
			t.Fatalf("OpenStreamCipher(%s): key %s; want %s", s, c.KeyID(), id)
		}
	}
	checkRootCalls(t, root, 0, 1)
	streamCipher(t, ring, "globex", "invoice-1")
	checkRootCalls(t, root, 0, 2)
}

func TestKnownStreamMakesNoRootOrStoreCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		use  func(t *testing.T, f *keyringFixture) *StreamCipher
	}{
		{"StreamCipher", func(t *testing.T, f *keyringFixture) *StreamCipher {
			return streamCipher(t, f.ring, "acme", "order-1")
		}},
		{"OpenStreamCipher", func(t *testing.T, f *keyringFixture) *StreamCipher {
			c, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", f.store.streamKey(t, "acme", "order-1"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			first := streamCipher(t, f.ring, "acme", "order-1")
			wraps, unwraps := f.root.counts()
			storeCalls := f.store.calls.Load()
			for range 100 {
				if c := tc.use(t, f); c != first {
					t.Fatal("a known stream got another cipher")
				}
			}
			checkRootCalls(t, f.root, wraps, unwraps)
			if got := f.store.calls.Load(); got != storeCalls {
				t.Fatalf("%d store calls for a known stream; want 0", got-storeCalls)
			}
		})
	}
}

func TestKEKIsUnwrappedAgainAfterTheTTL(t *testing.T) {
	const ttl = 50 * time.Millisecond
	f := newKeyringFixture(t, KeyringOptions{TTL: ttl})
	streamCipher(t, f.ring, "acme", "order-1")
	ring, root := f.freshKeyring(KeyringOptions{TTL: ttl})
	streamCipher(t, ring, "acme", "order-1")
	streamCipher(t, ring, "acme", "order-2")
	checkRootCalls(t, root, 0, 1)
	time.Sleep(3 * ttl)
	streamCipher(t, ring, "acme", "order-1")
	checkRootCalls(t, root, 0, 2)
	if _, err := ring.OpenStreamCipher(t.Context(), "acme", "order-2", f.store.streamKey(t, "acme", "order-2")); err != nil {
		t.Fatal(err)
	}
	checkRootCalls(t, root, 0, 2)
}

func TestOpenStreamCipherOfAZeroKeyIsErasedEvenWhenCached(t *testing.T) {
	for _, tc := range []struct {
		name string
		wk   func(eventvault.WrappedKey) eventvault.WrappedKey
	}{
		{"zero", func(eventvault.WrappedKey) eventvault.WrappedKey { return eventvault.WrappedKey{} }},
		{"idWithoutCiphertext", func(wk eventvault.WrappedKey) eventvault.WrappedKey {
			return eventvault.WrappedKey{ID: wk.ID, Version: wk.Version, KEKVersion: wk.KEKVersion}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			streamCipher(t, f.ring, "acme", "order-1")
			_, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", tc.wk(f.store.streamKey(t, "acme", "order-1")))
			checkCode(t, err, eventvault.EERASED)
			if msg, want := eventvault.ErrorMessage(err), "the key of stream order-1 was destroyed"; !strings.Contains(msg, want) {
				t.Fatalf("message %q; want %q", msg, want)
			}
			calls := f.store.calls.Load()
			streamCipher(t, f.ring, "acme", "order-1")
			if f.store.calls.Load() == calls {
				t.Fatal("after an erased read, StreamCipher still served the stream from the cache")
			}
		})
	}
}

func TestOpenStreamCipherChecksTheKeyRowAgainstTheCache(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	cached := streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "acme", "order-2")
	row := f.store.streamKey(t, "acme", "order-1")

	t.Run("alteredRowWithTheSameID", func(t *testing.T) {
		altered := cloneKey(row)
		altered.Ciphertext[len(altered.Ciphertext)-1] ^= 1
		_, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", altered)
		checkAuthFailure(t, err)
	})
	t.Run("rowOfAnotherStream", func(t *testing.T) {
		_, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", f.store.streamKey(t, "acme", "order-2"))
		checkAuthFailure(t, err)
	})
	t.Run("rowWithAnotherKEKVersion", func(t *testing.T) {
		other := cloneKey(row)
		other.KEKVersion++
		_, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", other)
		checkAuthFailure(t, err)
	})
	t.Run("rewrappedRowOfTheSameKey", func(t *testing.T) {
		// As after re-wrapping under the KEK: other bytes, same key.
		kek, err := f.ring.tenantKEK(t.Context(), "acme", false)
		if err != nil {
			t.Fatal(err)
		}
		key, err := kek.unwrapStreamKey("order-1", row)
		if err != nil {
			t.Fatal(err)
		}
		rewrapped := cloneKey(row)
		if rewrapped.Ciphertext, err = kek.wrapStreamKey("order-1", row.ID, key, crand.Reader); err != nil {
			t.Fatal(err)
		}
		c, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", rewrapped)
		if err != nil {
			t.Fatal(err)
		}
		if c == cached {
			t.Fatal("a row with other bytes was served from the cache")
		}
		checkSealOpen(t, cached, c)
	})
}

func TestWrappedStreamKeyMovedElsewhereFailsToUnwrap(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "acme", "order-2")
	streamCipher(t, f.ring, "globex", "order-1")
	row := f.store.streamKey(t, "acme", "order-1")
	for _, tc := range []struct {
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}{
		{"acme", "order-2"},
		{"acme", "order-3"},
		{"globex", "order-1"},
	} {
		t.Run(string(tc.tenant)+"/"+string(tc.stream), func(t *testing.T) {
			ring, _ := f.freshKeyring(KeyringOptions{})
			_, err := ring.OpenStreamCipher(t.Context(), tc.tenant, tc.stream, row)
			checkAuthFailure(t, err)
		})
	}
}

// The KEK-level check: a wrapped stream key is bound to tenant, stream, key
// id and KEK version by its associated data, even under the same KEK bytes.
func TestTenantKEKUnwrapsAStreamKeyOnlyForItsPlace(t *testing.T) {
	kekKey, kekID, streamKeyID := randomBytes(t, keySize), uuid.New(), uuid.New()
	newKEK := func(tenant eventvault.TenantID, version uint32) *tenantKEK {
		k, err := newTenantKEK(tenant, kekID, version, kekKey)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	key := randomBytes(t, keySize)
	ct, err := newKEK("acme", 1).wrapStreamKey("order-1", streamKeyID, key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	row := eventvault.WrappedKey{ID: streamKeyID, Version: 1, KEKVersion: 1, Ciphertext: ct}
	got, err := newKEK("acme", 1).unwrapStreamKey("order-1", row)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("round trip: %v", err)
	}
	otherID := row
	otherID.ID = uuid.New()
	for name, open := range map[string]func() ([]byte, error){
		"otherTenant":     func() ([]byte, error) { return newKEK("globex", 1).unwrapStreamKey("order-1", row) },
		"otherStream":     func() ([]byte, error) { return newKEK("acme", 1).unwrapStreamKey("order-2", row) },
		"otherKeyID":      func() ([]byte, error) { return newKEK("acme", 1).unwrapStreamKey("order-1", otherID) },
		"otherKEKVersion": func() ([]byte, error) { return newKEK("acme", 2).unwrapStreamKey("order-1", row) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := open()
			checkAuthFailure(t, err)
		})
	}
}

func TestConcurrentStreamCipherForANewStreamAgreesOnOneKey(t *testing.T) {
	for _, nodes := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("%dKeyrings", nodes), func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			rings := []*Keyring{f.ring}
			for len(rings) < nodes {
				r, _ := f.freshKeyring(KeyringOptions{})
				rings = append(rings, r)
			}
			ids := make([]uuid.UUID, 8)
			errs := make([]error, 8)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range ids {
				wg.Go(func() {
					<-start
					c, err := rings[i%nodes].StreamCipher(t.Context(), "acme", "order-1")
					if err == nil {
						ids[i] = c.KeyID()
					}
					errs[i] = err
				})
			}
			close(start)
			wg.Wait()
			stored := f.store.streamKey(t, "acme", "order-1").ID
			for i := range ids {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if ids[i] != stored {
					t.Fatalf("goroutine %d got key %s; the store holds %s", i, ids[i], stored)
				}
			}
			if nodes == 1 {
				checkRootCalls(t, f.root, 1, 0)
			}
		})
	}
}

func TestEvictMakesTheNextUseReadTheStore(t *testing.T) {
	for _, tc := range []struct {
		name        string
		evict       func(*Keyring)
		wantUnwraps int64
	}{
		{"EvictStream", func(k *Keyring) { k.EvictStream("acme", "order-1") }, 0},
		{"EvictTenant", func(k *Keyring) { k.EvictTenant("acme") }, 1},
		{"EvictOtherTenant", func(k *Keyring) { k.EvictTenant("globex") }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			before := streamCipher(t, f.ring, "acme", "order-1")
			tc.evict(f.ring)
			calls := f.store.calls.Load()
			after := streamCipher(t, f.ring, "acme", "order-1")
			checkRootCalls(t, f.root, 1, tc.wantUnwraps)
			if evicted := f.store.calls.Load() != calls; evicted != (tc.name != "EvictOtherTenant") {
				t.Fatalf("store read after %s: %v", tc.name, evicted)
			}
			if before.KeyID() != after.KeyID() {
				t.Fatal("eviction changed the stream's key")
			}
		})
	}
}

func TestLoadRacingAnEvictionDoesNotRefillTheCache(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	streamCipher(t, f.ring, "acme", "order-1")
	f.ring.EvictStream("acme", "order-1")
	release := make(chan struct{})
	loading := make(chan struct{})
	f.store.beforeStreamKey = func() {
		close(loading)
		<-release
	}
	done := make(chan error)
	go func() {
		_, err := f.ring.StreamCipher(t.Context(), "acme", "order-1")
		done <- err
	}()
	<-loading
	f.ring.EvictStream("acme", "order-1") // the stream is shredded meanwhile
	f.store.beforeStreamKey = nil
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls := f.store.calls.Load()
	streamCipher(t, f.ring, "acme", "order-1")
	if f.store.calls.Load() == calls {
		t.Fatal("a key loaded before an eviction was cached after it")
	}
}

func TestCacheIsBounded(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{CacheSize: 3}) // the KEK and two streams
	streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "acme", "order-2")
	streamCipher(t, f.ring, "acme", "order-3")
	calls := f.store.calls.Load()
	streamCipher(t, f.ring, "acme", "order-1")
	if f.store.calls.Load() == calls {
		t.Fatal("the least recently used stream stayed cached beyond CacheSize")
	}
}

func TestKeyringKeepsTheCodesOfStoreAndRootErrors(t *testing.T) {
	unavailable := &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "the database is unreachable"}
	for _, tc := range []struct {
		name    string
		setup   func(*keyringFixture)
		call    func(*testing.T, *Keyring) error
		code    eventvault.Code
		context string
	}{
		{
			name:    "storeUnavailable",
			setup:   func(f *keyringFixture) { f.store.setFail(unavailable) },
			code:    eventvault.EUNAVAILABLE,
			context: "read key of stream order-1",
		},
		{
			name:    "rootUnavailableOnWrap",
			setup:   func(f *keyringFixture) { f.root.fail = unavailable },
			code:    eventvault.EUNAVAILABLE,
			context: "wrap key",
		},
		{
			name: "rootUnavailableOnUnwrap",
			setup: func(f *keyringFixture) {
				streamCipher(t, f.ring, "acme", "order-2")
				f.ring.EvictTenant("acme")
				f.root.fail = unavailable
			},
			code:    eventvault.EUNAVAILABLE,
			context: "unwrap key",
		},
		{
			name: "shreddedStream",
			setup: func(f *keyringFixture) {
				streamCipher(t, f.ring, "acme", "order-1")
				f.store.shred("acme", "order-1")
				f.ring.EvictStream("acme", "order-1")
			},
			code:    eventvault.EERASED,
			context: "store key of stream order-1",
		},
		{
			name: "shreddedTenant",
			setup: func(f *keyringFixture) {
				streamCipher(t, f.ring, "acme", "order-2")
				f.store.shred("acme", "")
				f.ring.EvictTenant("acme")
			},
			code:    eventvault.EERASED,
			context: "store key of tenant acme",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			tc.setup(f)
			_, err := f.ring.StreamCipher(t.Context(), "acme", "order-1")
			checkCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.context) {
				t.Fatalf("error %q lacks context %q", err, tc.context)
			}
		})
	}
}

func TestOpenStreamCipherWithoutATenantKEKIsErased(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	streamCipher(t, f.ring, "acme", "order-1")
	row := f.store.streamKey(t, "acme", "order-1")
	f.store.shred("acme", "")
	ring, root := f.freshKeyring(KeyringOptions{})
	_, err := ring.OpenStreamCipher(t.Context(), "acme", "order-1", row)
	checkCode(t, err, eventvault.EERASED)
	checkRootCalls(t, root, 0, 0)
	if _, ok := f.store.keks["acme"]; ok {
		t.Fatal("reading a stream created a tenant KEK")
	}
}

func TestAlteredTenantKEKRowFailsAuthentication(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alter func(*eventvault.WrappedKey)
	}{
		{"flippedByte", func(wk *eventvault.WrappedKey) { wk.Ciphertext[len(wk.Ciphertext)-1] ^= 1 }},
		{"otherID", func(wk *eventvault.WrappedKey) { wk.ID = uuid.New() }},
		{"otherVersion", func(wk *eventvault.WrappedKey) { wk.Version = 2 }},
		{"headerOfAnotherKind", func(wk *eventvault.WrappedKey) { wk.Ciphertext[1] = byte(kindStreamKey) }},
		{"truncated", func(wk *eventvault.WrappedKey) { wk.Ciphertext = wk.Ciphertext[:headerSize+3] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newKeyringFixture(t, KeyringOptions{})
			streamCipher(t, f.ring, "acme", "order-1")
			wk := f.store.keks["acme"][1]
			tc.alter(&wk)
			f.store.keks["acme"][1] = wk
			ring, _ := f.freshKeyring(KeyringOptions{})
			_, err := ring.StreamCipher(t.Context(), "acme", "order-1")
			checkAuthFailure(t, err)
		})
	}
}

func TestStreamCipherRefusesInvalidNames(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	for _, tc := range []struct {
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}{
		{"acme", ""},
		{"", "order-1"},
		{"Acme", "order-1"},
		{"acme", "order"},
	} {
		_, err := f.ring.StreamCipher(t.Context(), tc.tenant, tc.stream)
		checkCode(t, err, eventvault.EINVALID)
	}
	checkRootCalls(t, f.root, 0, 0)
}

func TestKeyTypesPrintNoKeyBytes(t *testing.T) {
	key := randomBytes(t, keySize)
	kek, err := newTenantKEK("acme", uuid.New(), 1, key)
	if err != nil {
		t.Fatal(err)
	}
	checkPrintsNoSecret(t, kek, key)
	checkPrintsNoSecret(t, *kek, key)
	root, err := newLocalRootKey("root.key", key, crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	checkPrintsNoSecret(t, root, key)
	checkPrintsNoSecret(t, *root, key)
}

// rotateTenantKEK rotates the tenant's KEK and re-wraps its stream keys
// from another node: a keyring of its own over the same root and store.
func rotateTenantKEK(t *testing.T, f *keyringFixture, tenant eventvault.TenantID) {
	t.Helper()
	other, _ := f.freshKeyring(KeyringOptions{})
	otherMgr := NewKeyManager(other)
	if _, err := otherMgr.RotateTenantKEK(t.Context(), tenant); err != nil {
		t.Fatalf("RotateTenantKEK: %v", err)
	}
	if _, err := otherMgr.RewrapStreamKeys(t.Context(), tenant, nil); err != nil {
		t.Fatalf("RewrapStreamKeys: %v", err)
	}
}

func TestKeyRowOfANewerKEKVersionReloadsTheKEKOnce(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	before := streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "acme", "order-2")
	rotateTenantKEK(t, f, "acme")
	wraps, unwraps := f.root.counts()
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		c, err := f.ring.OpenStreamCipher(t.Context(), "acme", s, f.store.streamKey(t, "acme", s))
		if err != nil {
			t.Fatal(err)
		}
		if s == "order-1" {
			checkSealOpen(t, before, c)
		}
	}
	checkRootCalls(t, f.root, wraps, unwraps+1)
}

func TestKeyRowOfAnotherTenantMakesNoRootCall(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "globex", "order-1")
	wraps, unwraps := f.root.counts()
	for range 10 {
		_, err := f.ring.OpenStreamCipher(t.Context(), "acme", "order-1", f.store.streamKey(t, "globex", "order-1"))
		checkAuthFailure(t, err)
	}
	checkRootCalls(t, f.root, wraps, unwraps)
}

func BenchmarkKeyringStreamCipherCached(b *testing.B) {
	key := randomBytes(b, keySize)
	root, err := newLocalRootKey("bench", key, crand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ring := NewKeyring(root, newMemKeyStore(), KeyringOptions{})
	if _, err := ring.StreamCipher(b.Context(), "acme", "order-1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.StreamCipher(b.Context(), "acme", "order-1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCachedStreamCipherAtServesOnlyTheEpochChecked: a cipher is served
// without its key row only at the key epoch a read checked that very row
// at; a mark with another row, a zero epoch unmarked, or another epoch
// serves nothing, and a stream found shredded comes back erased at its
// epoch only, its cipher forgotten.
func TestCachedStreamCipherAtServesOnlyTheEpochChecked(t *testing.T) {
	f := newKeyringFixture(t, KeyringOptions{})
	cached := streamCipher(t, f.ring, "acme", "order-1")
	streamCipher(t, f.ring, "acme", "order-2")
	row := f.store.streamKey(t, "acme", "order-1")

	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 0); ok {
		t.Fatal("a cipher no read checked was served at epoch 0")
	}
	f.ring.MarkStreamKeyChecked("acme", "order-1", f.store.streamKey(t, "acme", "order-2"), 3)
	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 3); ok {
		t.Fatal("a mark with another stream's row made the cipher served")
	}
	altered := cloneKey(row)
	altered.Ciphertext[0] ^= 1
	f.ring.MarkStreamKeyChecked("acme", "order-1", altered, 3)
	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 3); ok {
		t.Fatal("a mark with an altered row made the cipher served")
	}
	f.ring.MarkStreamKeyChecked("acme", "order-1", row, 3)
	if c, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 3); !ok || c != cached {
		t.Fatalf("the cipher checked at epoch 3: %v, %v; want the cached one", c, ok)
	}
	for _, epoch := range []int64{2, 4, -1} {
		if _, ok := f.ring.CachedStreamCipherAt("acme", "order-1", epoch); ok {
			t.Fatalf("the cipher checked at epoch 3 was served at epoch %d", epoch)
		}
	}
	if _, ok := f.ring.CachedStreamCipherAt("tenant-b", "order-1", 3); ok {
		t.Fatal("another tenant's stream of the same name was served")
	}

	f.ring.MarkStreamKeyChecked("acme", "order-2", eventvault.WrappedKey{}, 5)
	if c, ok := f.ring.CachedStreamCipherAt("acme", "order-2", 5); !ok || c != nil {
		t.Fatalf("a stream found shredded at epoch 5: %v, %v; want erased (nil, true)", c, ok)
	}
	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-2", 6); ok {
		t.Fatal("a stream found shredded at epoch 5 was answered at epoch 6")
	}
	calls := f.store.calls.Load()
	streamCipher(t, f.ring, "acme", "order-2")
	if f.store.calls.Load() == calls {
		t.Fatal("after a read found the stream shredded, its cipher was still served from the cache")
	}

	// Epoch 0 is unknown (the store found no epoch row): a check there
	// marks nothing, so that a row deleted again later cannot bring it back.
	f.ring.MarkStreamKeyChecked("acme", "order-1", row, 0)
	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 0); ok {
		t.Fatal("a cipher checked at the unknown epoch 0 was served at it")
	}
	if c, ok := f.ring.CachedStreamCipherAt("acme", "order-1", 3); !ok || c != cached {
		t.Fatalf("a check at the unknown epoch 0 took the mark at epoch 3 away: %v, %v", c, ok)
	}
	f.ring.MarkStreamKeyChecked("acme", "order-3", eventvault.WrappedKey{}, 0)
	if _, ok := f.ring.CachedStreamCipherAt("acme", "order-3", 0); ok {
		t.Fatal("a stream found shredded at the unknown epoch 0 was answered at it")
	}
}
