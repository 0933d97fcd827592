package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

func openPostgres(t *testing.T) *postgres.DB {
	t.Helper()
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := postgres.Open(t.Context(), url, postgres.Options{MaxConns: 32})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestRotationChecksWhoAsks(t *testing.T) {
	store := openPostgres(t)
	keys := evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{})
	appendOne(t, engine.NewEvents(store, keys, nil), "order-1", `{"n":1}`, "")
	rot := engine.NewRotation(evcrypto.NewKeyManager(keys), nil)
	admin := eventvault.Principal{Tenant: "acme", TokenID: "tok_admin", Rules: []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"},
	}}
	root := eventvault.Principal{Tenant: "default", TokenID: "tok_root", Root: true}

	for _, tc := range []struct {
		name string
		call func() error
		code eventvault.Code
	}{
		{"a reader rotates its tenant's key", func() error { _, err := rot.RotateTenantKEK(t.Context(), acme, "acme"); return err }, eventvault.EFORBIDDEN},
		{"an admin rotates another tenant's key", func() error { _, err := rot.RotateTenantKEK(t.Context(), admin, "globex"); return err }, eventvault.EFORBIDDEN},
		{"an admin of a tenant-wide pattern only", func() error {
			p := admin
			p.Rules = []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "order-*"}}
			_, err := rot.RotateTenantKEK(t.Context(), p, "acme")
			return err
		}, eventvault.EFORBIDDEN},
		{"a tenant admin rotates the root key", func() error { _, err := rot.RotateRoot(t.Context(), admin); return err }, eventvault.EFORBIDDEN},
		{"a tenant admin retires root versions", func() error { return rot.RetireRootVersions(t.Context(), admin, 2) }, eventvault.EFORBIDDEN},
		{"root rotates a tenant without a key", func() error { _, err := rot.RotateTenantKEK(t.Context(), root, "globex"); return err }, eventvault.ENOTFOUND},
		{"root rotates a malformed tenant", func() error { _, err := rot.RotateTenantKEK(t.Context(), root, "../acme"); return err }, eventvault.EINVALID},
		{"root rotates a local root key", func() error { _, err := rot.RotateRoot(t.Context(), root); return err }, eventvault.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eventvault.ErrorCode(tc.call()); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
		})
	}
	if wk, _ := store.TenantKey(t.Context(), "acme"); wk.Version != 1 {
		t.Fatalf("a refused rotation added KEK version %d", wk.Version)
	}

	for _, p := range []eventvault.Principal{admin, root} {
		got, err := rot.RotateTenantKEK(t.Context(), p, "acme")
		if err != nil {
			t.Fatalf("RotateTenantKEK as %s: %v", p.TokenID, err)
		}
		if got.Tenant != "acme" || got.RewrappedStreams != 1 {
			t.Fatalf("RotateTenantKEK as %s = %+v, want acme and 1 stream re-wrapped", p.TokenID, got)
		}
	}
	if wk, _ := store.TenantKey(t.Context(), "acme"); wk.Version != 3 {
		t.Fatalf("after two rotations the newest KEK version is %d, want 3", wk.Version)
	}
}

// TestReadsAndAppendsKeepWorkingDuringARotation appends to and reads many
// streams from two nodes while one of them rotates the tenant's KEK twice
// and re-wraps every stream key. No call may fail, and afterwards every
// event reads back, through a keyring with a cold cache, as appended.
func TestReadsAndAppendsKeepWorkingDuringARotation(t *testing.T) {
	store := openPostgres(t)
	root := newRoot(t)
	keysA := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	keysB := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	nodeA, nodeB := engine.NewEvents(store, keysA, nil), engine.NewEvents(store, keysB, nil)
	ctx := t.Context()

	// ledger[stream][position] is the data appended there.
	var mu sync.Mutex
	ledger := map[eventvault.StreamName]map[int64][]byte{}
	appendTo := func(e *engine.Events, stream eventvault.StreamName) error {
		data := fmt.Appendf(nil, `{"stream":%q,"n":%q}`, stream, uuid.NewString())
		res, err := e.Append(ctx, acme, stream, eventvault.ExpectAny, []eventvault.NewEvent{{ID: uuid.New(), Type: "Noted", Data: data}})
		if err != nil {
			return fmt.Errorf("append to %s: %w", stream, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if ledger[stream] == nil {
			ledger[stream] = map[int64][]byte{}
		}
		ledger[stream][res.Events[0].Position] = data
		return nil
	}
	const seeded = 300
	streams := make([]eventvault.StreamName, seeded)
	for i := range streams {
		streams[i] = eventvault.StreamName(fmt.Sprintf("order-%d", i))
		if err := appendTo(nodeA, streams[i]); err != nil {
			t.Fatal(err)
		}
	}

	var ops, opsDuring atomic.Int64
	var rotating atomic.Bool
	errs := make(chan error, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(fn func(r *rand.Rand) error) {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(rand.Uint64(), 0))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(r); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
				if rotating.Load() {
					opsDuring.Add(1)
				}
			}
		})
	}
	for i := range 4 {
		e := []*engine.Events{nodeA, nodeB}[i%2]
		worker(func(r *rand.Rand) error {
			stream := streams[r.IntN(seeded)]
			if r.IntN(10) == 0 { // now and then a new stream, whose key is made under the newest KEK the node knows
				stream = eventvault.StreamName(fmt.Sprintf("invoice-%d", r.Uint64()))
			}
			return appendTo(e, stream)
		})
	}
	for i := range 4 {
		e := []*engine.Events{nodeA, nodeB}[i%2]
		worker(func(r *rand.Rand) error {
			stream := streams[r.IntN(seeded)]
			got, err := e.ReadStream(ctx, acme, stream, eventvault.ReadOptions{Limit: 1})
			if err != nil {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			mu.Lock()
			want := ledger[stream][0]
			mu.Unlock()
			if len(got.Events) != 1 || !bytes.Equal(got.Events[0].Data, want) {
				return fmt.Errorf("read %s: the first event does not hold what was appended", stream)
			}
			if _, err := e.ReadAll(ctx, acme, int64(r.IntN(seeded)), 50); err != nil {
				return fmt.Errorf("read all: %w", err)
			}
			return nil
		})
	}

	rot := engine.NewRotation(evcrypto.NewKeyManager(keysA), nil)
	admin := eventvault.Principal{Tenant: "acme", TokenID: "tok_admin", Rules: []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"},
	}}
	time.Sleep(50 * time.Millisecond) // let the workers warm their caches
	rotating.Store(true)
	var rewrapped int
	for range 2 {
		got, err := rot.RotateTenantKEK(ctx, admin, "acme")
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("RotateTenantKEK during traffic: %v", err)
		}
		rewrapped += got.RewrappedStreams
	}
	rotating.Store(false)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("during the rotation: %v", err)
	}
	if opsDuring.Load() < 20 {
		t.Fatalf("only %d reads and appends ran during the rotation; the test proves nothing", opsDuring.Load())
	}
	t.Logf("%d reads and appends in all, %d during two rotations that re-wrapped %d stream keys", ops.Load(), opsDuring.Load(), rewrapped)

	// Keys node B made under version 1 or 2 while its cache was stale:
	// running the re-wrap again moves them (it is resumable).
	if _, err := evcrypto.NewKeyManager(keysA).RewrapStreamKeys(ctx, "acme", nil); err != nil {
		t.Fatalf("RewrapStreamKeys after the traffic: %v", err)
	}
	if rows, err := store.StreamKeysBefore(ctx, "acme", 3, "", 10); err != nil || len(rows) != 0 {
		t.Fatalf("%d stream keys still under KEK versions before 3 (%v)", len(rows), err)
	}

	cold := engine.NewEvents(store, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), nil)
	events := 0
	for stream, want := range ledger {
		got, err := cold.ReadStream(ctx, acme, stream, eventvault.ReadOptions{Limit: engine.MaxReadLimit})
		if err != nil {
			t.Fatalf("read %s after the rotation: %v", stream, err)
		}
		if len(got.Events) != len(want) {
			t.Fatalf("%s holds %d events, want %d", stream, len(got.Events), len(want))
		}
		for _, ev := range got.Events {
			if !bytes.Equal(ev.Data, want[ev.Position]) {
				t.Fatalf("%s@%d reads other data than was appended", stream, ev.Position)
			}
			events++
		}
	}
	all, err := cold.ReadAll(ctx, acme, 0, engine.MaxReadLimit)
	if err != nil || len(all) == 0 {
		t.Fatalf("read all after the rotation: %d events, %v", len(all), err)
	}
	t.Logf("%d events in %d streams read back through a cold cache", events, len(ledger))
}

// outageStore answers StreamKeysBefore with EUNAVAILABLE while down is set:
// the database going away in the middle of a rotation.
type outageStore struct {
	eventvault.Store
	down atomic.Bool
}

func (s *outageStore) StreamKeysBefore(ctx context.Context, tenant eventvault.TenantID, kek uint32, after eventvault.StreamName, limit int) ([]eventvault.StreamKeyRow, error) {
	if s.down.Load() {
		return nil, eventvault.Errorf(eventvault.EUNAVAILABLE, "the database is unreachable; retry later")
	}
	return s.Store.StreamKeysBefore(ctx, tenant, kek, after, limit)
}

func TestAnInterruptedTenantRotationSaysHowToFinish(t *testing.T) {
	store := &outageStore{Store: openPostgres(t)}
	root := newRoot(t)
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	e := engine.NewEvents(store, keys, nil)
	appendOne(t, e, "order-1", `{"n":1}`, "")
	appendOne(t, e, "order-2", `{"n":2}`, "")
	rot := engine.NewRotation(evcrypto.NewKeyManager(keys), nil)
	rootP := eventvault.Principal{Tenant: "default", TokenID: "tok_root", Root: true}

	store.down.Store(true)
	got, err := rot.RotateTenantKEK(t.Context(), rootP, "acme")
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("rotation with the store down half-way = %v, want EUNAVAILABLE", err)
	}
	msg := eventvault.ErrorMessage(err)
	for _, want := range []string{"version 2 of the key of tenant acme was added", "stopped after 0", "-resume", "the database is unreachable"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	if f := eventvault.ErrorFields(err); f["version"] != uint32(2) || f["rewrapped_streams"] != 0 || got.Version != 2 {
		t.Fatalf("fields %v, result %+v; want version 2 and 0 streams", f, got)
	}
	// Every stream still reads, under version 1, and appends go on.
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		if _, err := e.ReadStream(t.Context(), acme, s, eventvault.ReadOptions{}); err != nil {
			t.Fatalf("read %s after the interrupted rotation: %v", s, err)
		}
	}
	appendOne(t, e, "order-1", `{"n":3}`, "")

	store.down.Store(false)
	if n, err := evcrypto.NewKeyManager(keys).RewrapStreamKeys(t.Context(), "acme", nil); err != nil || n != 2 {
		t.Fatalf("finishing the re-wrap: %d, %v; want 2", n, err)
	}
}
