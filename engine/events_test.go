package engine_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// backend is one real store with the means to look inside it as an
// attacker with a copy of the storage would.
type backend struct {
	name string
	open func(t *testing.T) eventvault.Store
	// scan returns where any needle occurs in the stored bytes; it runs
	// after the store is closed, so files are flushed.
	scan func(t *testing.T, needles ...[]byte) []string
}

func backends(t *testing.T) []backend {
	t.Helper()
	dir := t.TempDir()
	pgURL := pgtest.URL(t)
	return []backend{
		{
			name: "bolt",
			open: func(t *testing.T) eventvault.Store {
				db, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
				if err != nil {
					t.Fatalf("open bolt: %v", err)
				}
				return db
			},
			scan: func(t *testing.T, needles ...[]byte) []string { return scanFiles(t, dir, needles...) },
		},
		{
			name: "postgres",
			open: func(t *testing.T) eventvault.Store {
				ctx := context.Background()
				if err := postgres.Migrate(ctx, pgURL); err != nil {
					t.Fatalf("migrate: %v", err)
				}
				db, err := postgres.Open(ctx, pgURL, postgres.Options{})
				if err != nil {
					t.Fatalf("open postgres: %v", err)
				}
				return db
			},
			scan: func(t *testing.T, needles ...[]byte) []string { return pgtest.Scan(t, pgURL, needles...) },
		},
	}
}

// scanFiles looks for each needle, raw and hex-encoded, in every file below
// dir except the root key.
func scanFiles(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, n) || bytes.Contains(b, []byte(hex.EncodeToString(n))) {
				hits = append(hits, fmt.Sprintf("%s holds %q", path, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	if files == 0 {
		t.Fatalf("scan %s: no files to scan", dir)
	}
	return hits
}

// countingRoot counts calls to the real root key provider it wraps.
type countingRoot struct {
	evcrypto.RootKeyProvider
	wraps, unwraps atomic.Int64
}

func (c *countingRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	c.wraps.Add(1)
	return c.RootKeyProvider.WrapKey(ctx, key, aad)
}

func (c *countingRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	c.unwraps.Add(1)
	return c.RootKeyProvider.UnwrapKey(ctx, wrapped, aad)
}

func newRoot(t testing.TB) *countingRoot {
	t.Helper()
	k, err := evcrypto.OpenLocalRootKey(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatalf("root key: %v", err)
	}
	return &countingRoot{RootKeyProvider: k}
}

var acme = eventvault.Principal{Tenant: "acme", TokenID: "tok_test", Rules: []eventvault.Rule{
	{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead}, Streams: "*"},
}}

func appendOne(t *testing.T, e *engine.Events, stream eventvault.StreamName, data, md string) eventvault.AppendResult {
	t.Helper()
	ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(data)}
	if md != "" {
		ev.Metadata = []byte(md)
	}
	res, err := e.Append(context.Background(), acme, stream, eventvault.ExpectAny, []eventvault.NewEvent{ev})
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// TestNoPlaintextAtRest appends events whose data and metadata hold a unique
// marker, checks they read back, then scans every table and file: the
// marker must be nowhere.
func TestNoPlaintextAtRest(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			marker := []byte("EVMARKER-" + uuid.NewString())
			store := b.open(t)
			e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil)
			for i := 0; i < 20; i++ {
				stream := eventvault.StreamName(fmt.Sprintf("note-%d", i%4))
				appendOne(t, e, stream, fmt.Sprintf(`{"text":"%s","n":%d}`, marker, i), fmt.Sprintf(`{"why":"%s"}`, marker))
			}
			all, err := e.ReadAll(context.Background(), acme, 0, 100)
			if err != nil || len(all) != 20 || !bytes.Contains(all[19].Data, marker) || !bytes.Contains(all[19].Metadata, marker) {
				t.Fatalf("read back %d events (%v); the marker must be readable through the vault", len(all), err)
			}
			if err := store.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if hits := b.scan(t, marker); len(hits) > 0 {
				t.Fatalf("plaintext found at rest:\n%v", hits)
			}
		})
	}
}

// TestKnownStreamMakesNoRootKeyCalls: the root key is needed to create or
// unwrap a tenant KEK, never per event.
func TestKnownStreamMakesNoRootKeyCalls(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			store := b.open(t)
			defer store.Close()
			root := newRoot(t)
			e := engine.NewEvents(store, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), nil)
			appendOne(t, e, "order-1", `{}`, "")
			if w, u := root.wraps.Load(), root.unwraps.Load(); w != 1 || u != 0 {
				t.Fatalf("first append: %d wraps, %d unwraps; want 1 wrap (the new tenant KEK)", w, u)
			}
			for i := 0; i < 100; i++ {
				appendOne(t, e, eventvault.StreamName(fmt.Sprintf("order-%d", i%10)), `{}`, "")
				if _, err := e.ReadStream(ctx, acme, "order-1", eventvault.ReadOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if w, u := root.wraps.Load(), root.unwraps.Load(); w != 1 || u != 0 {
				t.Fatalf("after 100 appends and reads on 10 streams: %d wraps, %d unwraps; want 1 and 0", w, u)
			}
			// A restarted node unwraps the tenant KEK once, then no more.
			restarted := engine.NewEvents(store, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), nil)
			for i := 0; i < 10; i++ {
				if _, err := restarted.ReadStream(ctx, acme, eventvault.StreamName(fmt.Sprintf("order-%d", i)), eventvault.ReadOptions{}); err != nil {
					t.Fatal(err)
				}
				appendOne(t, restarted, eventvault.StreamName(fmt.Sprintf("order-%d", i)), `{}`, "")
			}
			if u := root.unwraps.Load(); u != 1 {
				t.Fatalf("restarted node: %d unwraps for 10 streams of one tenant; want 1", u)
			}
		})
	}
}

// TestMovedCiphertextFailsToOpen plays an attacker with write access to the
// database: each payload copied to another row, another stream, or an event
// moved to another position or type must fail to decrypt, never read as
// another event's data.
func TestMovedCiphertextFailsToOpen(t *testing.T) {
	cases := []struct {
		name string
		sql  string
	}{
		{"payload copied to another event's row", `UPDATE events SET payload = (SELECT payload FROM events WHERE stream = 'order-a' AND position = 1) WHERE stream = 'order-a' AND position = 0`},
		{"payload copied from another stream", `UPDATE events SET payload = (SELECT payload FROM events WHERE stream = 'order-b' AND position = 0) WHERE stream = 'order-a' AND position = 0`},
		{"event moved to another position", `UPDATE events SET position = 7 WHERE stream = 'order-a' AND position = 1`},
		{"event type changed", `UPDATE events SET type = 'Refunded' WHERE stream = 'order-a' AND position = 0`},
		{"event id changed", `UPDATE events SET id = gen_random_uuid() WHERE stream = 'order-a' AND position = 0`},
		{"payload copied from another tenant", `UPDATE events SET payload = (SELECT payload FROM events WHERE tenant_id = 'globex' AND stream = 'order-a' AND position = 0) WHERE tenant_id = 'acme' AND stream = 'order-a' AND position = 0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			url := pgtest.URL(t)
			if err := postgres.Migrate(ctx, url); err != nil {
				t.Fatal(err)
			}
			store, err := postgres.Open(ctx, url, postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil)
			appendOne(t, e, "order-a", `{"n":"a0"}`, "")
			appendOne(t, e, "order-a", `{"n":"a1"}`, "")
			appendOne(t, e, "order-b", `{"n":"b0"}`, "")
			globex := acme
			globex.Tenant = "globex"
			if _, err := e.Append(ctx, globex, "order-a", eventvault.ExpectAny, []eventvault.NewEvent{{ID: uuid.New(), Type: "Noted", Data: []byte(`{"n":"g0"}`)}}); err != nil {
				t.Fatal(err)
			}

			pgtest.Exec(t, url, c.sql)

			slice, err := e.ReadStream(ctx, acme, "order-a", eventvault.ReadOptions{From: 0, Limit: 100})
			if err == nil {
				t.Fatalf("read after tampering succeeded: %+v", slice.Events)
			}
			if code := eventvault.ErrorCode(err); code != eventvault.EINTERNAL {
				t.Fatalf("read after tampering: code %s (%v), want %s", code, err, eventvault.EINTERNAL)
			}
			if _, err := e.ReadAll(ctx, acme, 0, 100); err == nil {
				t.Fatal("read-all after tampering succeeded")
			}
			// The untouched stream still reads.
			if _, err := e.ReadStream(ctx, acme, "order-b", eventvault.ReadOptions{}); err != nil {
				t.Fatalf("untouched stream: %v", err)
			}
		})
	}
}

// TestAppendRefusesDataThatIsNotJSON: reads copy stored data into JSON
// responses as it is, so the engine refuses non-JSON whoever calls it.
func TestAppendRefusesDataThatIsNotJSON(t *testing.T) {
	store, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e := engine.NewEvents(store, evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{}), nil)
	for _, c := range []struct{ data, md string }{
		{`{"a":`, ""}, {`not json`, ""}, {`{}`, `{"b"`}, {`1 2`, ""},
	} {
		ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(c.data)}
		if c.md != "" {
			ev.Metadata = []byte(c.md)
		}
		_, err := e.Append(context.Background(), acme, "order-1", eventvault.ExpectAny, []eventvault.NewEvent{ev})
		if eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("data %q metadata %q: %v, want EINVALID", c.data, c.md, err)
		}
	}
	if _, err := e.ReadStream(context.Background(), acme, "order-1", eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Fatalf("refused appends wrote something: %v", err)
	}
}
