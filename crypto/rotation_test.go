package crypto_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// The rotation tests run the keyring on the real stores: bbolt and
// PostgreSQL.

type realStore struct {
	name string
	open func(t *testing.T) eventvault.Store
}

func realStores() []realStore {
	return []realStore{
		{"bolt", func(t *testing.T) eventvault.Store {
			db, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
			if err != nil {
				t.Fatalf("open bolt: %v", err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}},
		{"postgres", func(t *testing.T) eventvault.Store {
			url := pgtest.URL(t)
			if err := postgres.Migrate(t.Context(), url); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			db, err := postgres.Open(t.Context(), url, postgres.Options{})
			if err != nil {
				t.Fatalf("open postgres: %v", err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		}},
	}
}

// forEachStore runs fn as a subtest per real store.
func forEachStore(t *testing.T, fn func(t *testing.T, store eventvault.Store)) {
	for _, s := range realStores() {
		t.Run(s.name, func(t *testing.T) { fn(t, s.open(t)) })
	}
}

func localRoot(t *testing.T) *evcrypto.LocalRootKey {
	t.Helper()
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatalf("OpenLocalRootKey: %v", err)
	}
	return root
}

// sealed is an event sealed under a stream's key when the test began.
type sealed struct {
	ref     evcrypto.EventRef
	data    []byte
	payload []byte
}

// sealStreams creates n streams of tenant acme and seals one event in each.
func sealStreams(t *testing.T, ring *evcrypto.Keyring, n int) map[eventvault.StreamName]sealed {
	t.Helper()
	out := make(map[eventvault.StreamName]sealed, n)
	for i := range n {
		stream := eventvault.StreamName(fmt.Sprintf("order-%04d", i))
		c, err := ring.StreamCipher(t.Context(), "acme", stream)
		if err != nil {
			t.Fatalf("StreamCipher %s: %v", stream, err)
		}
		ref := evcrypto.EventRef{Tenant: "acme", Stream: stream, ID: uuid.New(), Position: 0, Type: "OrderPlaced"}
		data := fmt.Appendf(nil, `{"order":%d}`, i)
		payload, err := c.SealEvent(ref, data, nil)
		if err != nil {
			t.Fatalf("SealEvent: %v", err)
		}
		out[stream] = sealed{ref: ref, data: data, payload: payload}
	}
	return out
}

// checkOpens opens every sealed event with a keyring of its own (a cold
// cache, as after a restart), through the key row the store holds now.
func checkOpens(t *testing.T, root evcrypto.RootKeyProvider, store eventvault.Store, events map[eventvault.StreamName]sealed) {
	t.Helper()
	ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	for stream, ev := range events {
		wk, err := store.StreamKey(t.Context(), "acme", stream)
		if err != nil {
			t.Fatalf("StreamKey %s: %v", stream, err)
		}
		c, err := ring.OpenStreamCipher(t.Context(), "acme", stream, wk)
		if err != nil {
			t.Fatalf("OpenStreamCipher %s (key under KEK version %d): %v", stream, wk.KEKVersion, err)
		}
		data, _, err := c.OpenEvent(ev.ref, ev.payload)
		if err != nil {
			t.Fatalf("OpenEvent in %s: %v", stream, err)
		}
		if !bytes.Equal(data, ev.data) {
			t.Fatalf("OpenEvent in %s returned other data", stream)
		}
	}
}

// kekVersions returns how many of the streams' keys are under each KEK
// version, and fails if a key id changed.
func kekVersions(t *testing.T, store eventvault.Store, ids map[eventvault.StreamName]eventvault.WrappedKey) map[uint32]int {
	t.Helper()
	out := map[uint32]int{}
	for stream, before := range ids {
		wk, err := store.StreamKey(t.Context(), "acme", stream)
		if err != nil {
			t.Fatalf("StreamKey %s: %v", stream, err)
		}
		if wk.ID != before.ID || wk.Version != before.Version || !wk.CreatedAt.Equal(before.CreatedAt) {
			t.Fatalf("the key of %s changed identity: %s v%d created %v, was %s v%d created %v", stream, wk.ID, wk.Version, wk.CreatedAt, before.ID, before.Version, before.CreatedAt)
		}
		out[wk.KEKVersion]++
	}
	return out
}

func streamRows(t *testing.T, store eventvault.Store, events map[eventvault.StreamName]sealed) map[eventvault.StreamName]eventvault.WrappedKey {
	t.Helper()
	out := make(map[eventvault.StreamName]eventvault.WrappedKey, len(events))
	for stream := range events {
		wk, err := store.StreamKey(t.Context(), "acme", stream)
		if err != nil {
			t.Fatalf("StreamKey %s: %v", stream, err)
		}
		out[stream] = wk
	}
	return out
}

func TestRotateTenantKEKAddsAVersionAndKeepsOldKeysReadable(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		events := sealStreams(t, ring, 3)
		first, err := store.TenantKey(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}

		v, err := mgr.RotateTenantKEK(t.Context(), "acme")
		if err != nil {
			t.Fatalf("RotateTenantKEK: %v", err)
		}
		if v != 2 {
			t.Fatalf("RotateTenantKEK returned version %d, want 2", v)
		}
		newest, err := store.TenantKey(t.Context(), "acme")
		if err != nil {
			t.Fatal(err)
		}
		if newest.Version != 2 || newest.ID != first.ID || bytes.Equal(newest.Ciphertext[22:], first.Ciphertext[22:]) {
			t.Fatalf("newest KEK: %s v%d; want a new wrapping of key %s v2", newest.ID, newest.Version, first.ID)
		}
		if got := kekVersions(t, store, streamRows(t, store, events)); got[1] != 3 {
			t.Fatalf("stream keys by KEK version after a rotation without re-wrap: %v, want all 3 under 1", got)
		}
		checkOpens(t, root, store, events)

		// New stream keys are wrapped by the new version, on this node at once.
		if _, err := ring.StreamCipher(t.Context(), "acme", "order-new"); err != nil {
			t.Fatal(err)
		}
		wk, err := store.StreamKey(t.Context(), "acme", "order-new")
		if err != nil || wk.KEKVersion != 2 {
			t.Fatalf("a stream key made after the rotation: KEK version %d, %v; want 2", wk.KEKVersion, err)
		}

		if _, err := mgr.RotateTenantKEK(t.Context(), "globex"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("RotateTenantKEK of a tenant without a key = %v, want ENOTFOUND", err)
		}
		if _, err := mgr.RotateTenantKEK(t.Context(), "Not A Tenant"); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("RotateTenantKEK of a malformed tenant = %v, want EINVALID", err)
		}
	})
}

func TestConcurrentRotationsAddDistinctVersions(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		sealStreams(t, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), 1)
		const n = 6
		versions := make([]uint32, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
			wg.Go(func() { versions[i], errs[i] = evcrypto.NewKeyManager(ring).RotateTenantKEK(t.Context(), "acme") })
		}
		wg.Wait()
		var added []uint32
		for i, err := range errs {
			switch eventvault.ErrorCode(err) {
			case "":
				added = append(added, versions[i])
			case eventvault.ECONFLICT:
			default:
				t.Fatalf("RotateTenantKEK %d: %v", i, err)
			}
		}
		slices.Sort(added)
		if len(added) == 0 || len(slices.Compact(slices.Clone(added))) != len(added) {
			t.Fatalf("concurrent rotations added versions %v: want at least one, no two alike", added)
		}
		newest, err := store.TenantKey(t.Context(), "acme")
		if err != nil || newest.Version != added[len(added)-1] {
			t.Fatalf("newest KEK version %d (%v), want %d", newest.Version, err, added[len(added)-1])
		}
	})
}

func TestRewrapStreamKeysMovesEveryKeyWithoutChangingIt(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		const n = 300 // more than one page
		events := sealStreams(t, ring, n)
		before := streamRows(t, store, events)
		if _, err := mgr.RotateTenantKEK(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		var calls []int
		done, err := mgr.RewrapStreamKeys(t.Context(), "acme", func(d int) { calls = append(calls, d) })
		if err != nil {
			t.Fatalf("RewrapStreamKeys: %v", err)
		}
		if done != n || len(calls) != n || calls[0] != 1 || calls[n-1] != n {
			t.Fatalf("RewrapStreamKeys: %d done, progress called %d times; want %d and 1..%d", done, len(calls), n, n)
		}
		if got := kekVersions(t, store, before); got[2] != n {
			t.Fatalf("stream keys by KEK version after the re-wrap: %v, want all under 2", got)
		}
		checkOpens(t, root, store, events)

		again, err := mgr.RewrapStreamKeys(t.Context(), "acme", nil)
		if err != nil || again != 0 {
			t.Fatalf("a second RewrapStreamKeys: %d, %v; want 0 and no error", again, err)
		}
		if _, err := mgr.RewrapStreamKeys(t.Context(), "globex", nil); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("RewrapStreamKeys of a tenant without a key = %v, want ENOTFOUND", err)
		}
	})
}

func TestRewrapStreamKeysResumesAfterAnInterruption(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		const n, stopAt = 300, 120
		events := sealStreams(t, ring, n)
		before := streamRows(t, store, events)
		if _, err := mgr.RotateTenantKEK(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		first, err := mgr.RewrapStreamKeys(ctx, "acme", func(d int) {
			if d == stopAt {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted RewrapStreamKeys: %v, want an error wrapping context.Canceled", err)
		}
		got := kekVersions(t, store, before)
		if got[2] != first || got[1] != n-first || first < stopAt || first == n {
			t.Fatalf("after the interruption: %d done, keys by KEK version %v", first, got)
		}
		// Half-way, every stream still opens: each row under its own version.
		checkOpens(t, root, store, events)

		rest, err := evcrypto.NewKeyManager(evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})).RewrapStreamKeys(t.Context(), "acme", nil)
		if err != nil {
			t.Fatalf("RewrapStreamKeys again: %v", err)
		}
		if first+rest != n {
			t.Fatalf("the two runs re-wrapped %d + %d keys, want %d in all", first, rest, n)
		}
		if got := kekVersions(t, store, before); got[2] != n {
			t.Fatalf("keys by KEK version after the resumed run: %v, want all under 2", got)
		}
		checkOpens(t, root, store, events)
	})
}

func TestConcurrentRewrapsShareTheWork(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		const n = 100
		events := sealStreams(t, ring, n)
		if _, err := evcrypto.NewKeyManager(ring).RotateTenantKEK(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		done := make([]int, 3)
		errs := make([]error, 3)
		for i := range done {
			other := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
			wg.Go(func() { done[i], errs[i] = evcrypto.NewKeyManager(other).RewrapStreamKeys(t.Context(), "acme", nil) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("concurrent RewrapStreamKeys: %v", err)
			}
		}
		if total := done[0] + done[1] + done[2]; total != n {
			t.Fatalf("three concurrent re-wraps stored %v keys, %d in all; want %d (each key once)", done, total, n)
		}
		if got := kekVersions(t, store, streamRows(t, store, events)); got[2] != n {
			t.Fatalf("keys by KEK version: %v, want all under 2", got)
		}
		checkOpens(t, root, store, events)
	})
}

// staleStore is a node that has not seen the newest KEK version: TenantKey
// answers version newest.
type staleStore struct {
	eventvault.Store
	newest uint32
}

func (s staleStore) TenantKey(ctx context.Context, tenant eventvault.TenantID) (eventvault.WrappedKey, error) {
	return s.TenantKeyVersion(ctx, tenant, s.newest)
}

// racingStore runs race once, just before the first RewrapStreamKey.
type racingStore struct {
	eventvault.Store
	once sync.Once
	race func()
}

func (s *racingStore) RewrapStreamKey(ctx context.Context, tenant eventvault.TenantID, stream eventvault.StreamName, old, next eventvault.WrappedKey) error {
	s.once.Do(s.race)
	return s.Store.RewrapStreamKey(ctx, tenant, stream, old, next)
}

func TestRewrapStreamKeysRetriesALostCompareAndSwap(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		ring := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		const n = 20
		events := sealStreams(t, ring, n)
		before := streamRows(t, store, events)
		for range 2 {
			if _, err := evcrypto.NewKeyManager(ring).RotateTenantKEK(t.Context(), "acme"); err != nil {
				t.Fatal(err)
			}
		}
		// Between reading its page and storing the first key, the re-wrap
		// to version 3 races a node that moves every key to version 2: each
		// of its compare-and-swaps loses once, is read again and retried.
		stale := evcrypto.NewKeyring(root, staleStore{Store: store, newest: 2}, evcrypto.KeyringOptions{})
		var staleDone int
		var staleErr error
		racing := &racingStore{Store: store, race: func() {
			staleDone, staleErr = evcrypto.NewKeyManager(stale).RewrapStreamKeys(t.Context(), "acme", nil)
		}}
		done, err := evcrypto.NewKeyManager(evcrypto.NewKeyring(root, racing, evcrypto.KeyringOptions{})).RewrapStreamKeys(t.Context(), "acme", nil)
		if staleErr != nil || staleDone != n {
			t.Fatalf("the racing node re-wrapped %d keys, %v; want %d", staleDone, staleErr, n)
		}
		if err != nil || done != n {
			t.Fatalf("RewrapStreamKeys after losing every swap once: %d, %v; want %d", done, err, n)
		}
		if got := kekVersions(t, store, before); got[3] != n {
			t.Fatalf("keys by KEK version: %v, want all under 3", got)
		}
		checkOpens(t, root, store, events)
	})
}

func TestANodeLearnsOfARotationFromTheFirstNewerRow(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		root := localRoot(t)
		a := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		b := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
		sealStreams(t, b, 1) // b caches version 1 as the newest
		if _, err := evcrypto.NewKeyManager(a).RotateTenantKEK(t.Context(), "acme"); err != nil {
			t.Fatal(err)
		}
		kekOf := func(ring *evcrypto.Keyring, stream eventvault.StreamName) uint32 {
			t.Helper()
			if _, err := ring.StreamCipher(t.Context(), "acme", stream); err != nil {
				t.Fatal(err)
			}
			wk, err := store.StreamKey(t.Context(), "acme", stream)
			if err != nil {
				t.Fatal(err)
			}
			return wk.KEKVersion
		}
		// Within its cache TTL, b still wraps new keys under version 1
		// (RewrapStreamKeys picks them up) ...
		if v := kekOf(b, "order-b1"); v != 1 {
			t.Fatalf("b wrapped a new key under KEK version %d before it saw the rotation, want 1 (cached)", v)
		}
		// ... until it reads a row under version 2.
		if v := kekOf(a, "order-a1"); v != 2 {
			t.Fatalf("a wrapped a new key under KEK version %d, want 2", v)
		}
		wk, _ := store.StreamKey(t.Context(), "acme", "order-a1")
		if _, err := b.OpenStreamCipher(t.Context(), "acme", "order-a1", wk); err != nil {
			t.Fatal(err)
		}
		if v := kekOf(b, "order-b2"); v != 2 {
			t.Fatalf("b wrapped a new key under KEK version %d after reading a version 2 row, want 2", v)
		}
	})
}

func TestRootRotationNeedsAProviderWithVersions(t *testing.T) {
	forEachStore(t, func(t *testing.T, store eventvault.Store) {
		ring := evcrypto.NewKeyring(localRoot(t), store, evcrypto.KeyringOptions{})
		mgr := evcrypto.NewKeyManager(ring)
		sealStreams(t, ring, 1)
		const want = "the root key provider cannot rewrap (the local root key has a single version: it cannot rotate, rewrap or retire; use Vault Transit)"
		_, err := mgr.RewrapRootWrapped(t.Context(), nil)
		if eventvault.ErrorCode(err) != eventvault.EINVALID || eventvault.ErrorMessage(err) != want {
			t.Fatalf("RewrapRootWrapped with the local root key = %v, want EINVALID %q", err, want)
		}
		// Each refusal names the operation asked for: a retire is not
		// told "cannot rotate".
		if _, err := mgr.RotateRoot(t.Context()); eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.HasPrefix(eventvault.ErrorMessage(err), "the root key provider cannot rotate (") {
			t.Fatalf("RotateRoot with the local root key = %v, want EINVALID", err)
		}
		if err := mgr.RetireRootVersionsBefore(t.Context(), 2); eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.HasPrefix(eventvault.ErrorMessage(err), "the root key provider cannot retire old versions (") {
			t.Fatalf("RetireRootVersionsBefore with the local root key = %v, want EINVALID saying retire", err)
		}
	})
}
