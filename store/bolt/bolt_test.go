package bolt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventvault.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "eventvault.db"))
	})
}

func openTemp(t *testing.T, path string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// appendEvents appends n events to a stream of tenant-a, whatever its version.
func appendEvents(t *testing.T, db *DB, stream eventvault.StreamName, keyID uuid.UUID, n int) eventvault.AppendResult {
	t.Helper()
	evs := make([]eventvault.ProposedEvent, n)
	for i := range evs {
		evs[i] = eventvault.ProposedEvent{ID: uuid.New(), Type: "Thing", ContentMAC: []byte("mac")}
	}
	res, err := db.Append(t.Context(), "tenant-a", eventvault.AppendRequest{
		Stream: stream, Expected: eventvault.ExpectAny, KeyID: keyID, Events: evs,
		Seal: func(int64) ([][]byte, error) { return make([][]byte, n), nil },
	})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

func TestOpenLockedFileFailsWithinTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventvault.db")
	openTemp(t, path)

	start := time.Now()
	second, err := Open(path)
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	if code := eventvault.ErrorCode(err); code != eventvault.EUNAVAILABLE {
		t.Errorf("second Open: code %q, want %q", code, eventvault.EUNAVAILABLE)
	}
	if msg := eventvault.ErrorMessage(err); !strings.Contains(msg, "locked by another process") || !strings.Contains(msg, path) {
		t.Errorf("second Open: message %q does not say that %s is locked by another process", msg, path)
	}
	if elapsed > DefaultLockTimeout+2*time.Second {
		t.Errorf("second Open took %v; the lock timeout is %v", elapsed, DefaultLockTimeout)
	}
}

func TestLockTimeoutOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventvault.db")
	openTemp(t, path)
	start := time.Now()
	_, err := Open(path, WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if elapsed := time.Since(start); elapsed > DefaultLockTimeout {
		t.Errorf("second Open with a 100ms timeout took %v", elapsed)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eventvault.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	kek := eventvault.WrappedKey{ID: uuid.New(), Version: 1, Ciphertext: []byte("kek"), CreatedAt: time.Now().UTC()}
	if _, err := db.CreateTenantKey(ctx, "tenant-a", kek); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	key, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("dk")})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	appendEvents(t, db, "order-1", key.ID, 3)
	tok := eventvault.Token{ID: "tok_1", Hash: []byte("hash-1"), Tenant: "tenant-a", Name: "svc"}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db = openTemp(t, path)
	if got, err := db.TenantKey(ctx, "tenant-a"); err != nil || got.ID != kek.ID {
		t.Errorf("TenantKey after reopen = %v, %v; want key %s", got.ID, err, kek.ID)
	}
	page, err := db.ReadStream(ctx, "tenant-a", "order-1", eventvault.ReadOptions{From: 0, Limit: 10})
	if err != nil {
		t.Fatalf("ReadStream after reopen: %v", err)
	}
	if len(page.Events) != 3 || page.Version != 2 || page.Key.ID != key.ID {
		t.Errorf("after reopen: %d events, version %d, key %s; want 3, 2, %s", len(page.Events), page.Version, page.Key.ID, key.ID)
	}
	if _, err := db.TokenByHash(ctx, tok.Hash); err != nil {
		t.Errorf("TokenByHash after reopen: %v", err)
	}
	res := appendEvents(t, db, "order-1", key.ID, 1)
	if want := (eventvault.Positions{Position: 3, GlobalPosition: 3}); res.Events[0] != want {
		t.Errorf("append after reopen landed at %+v, want %+v", res.Events[0], want)
	}
}

func TestFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventvault.db")
	openTemp(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600", perm)
	}
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if code := eventvault.ErrorCode(db.Ping(t.Context())); code != eventvault.EUNAVAILABLE {
		t.Errorf("Ping after Close: code %q, want %q", code, eventvault.EUNAVAILABLE)
	}
	_, err = db.StreamKey(t.Context(), "tenant-a", "order-1")
	if code := eventvault.ErrorCode(err); code != eventvault.EUNAVAILABLE {
		t.Errorf("StreamKey after Close: code %q, want %q", code, eventvault.EUNAVAILABLE)
	}
}

func TestRecordedAtComesFromTheClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)
	db := openTemp(t, filepath.Join(t.TempDir(), "eventvault.db"), WithClock(func() time.Time { return at }))
	key, err := db.CreateStreamKey(t.Context(), "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New()})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	appendEvents(t, db, "order-1", key.ID, 1)
	page, err := db.ReadAll(t.Context(), "tenant-a", 0, 1)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if want := at.Truncate(time.Microsecond); !page.Events[0].RecordedAt.Equal(want) {
		t.Errorf("RecordedAt = %v, want %v", page.Events[0].RecordedAt, want)
	}
}

func TestCanceledContextWritesNothing(t *testing.T) {
	db := openTemp(t, filepath.Join(t.TempDir(), "eventvault.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateStreamKey with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := db.StreamKey(t.Context(), "tenant-a", "order-1"); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
		t.Errorf("StreamKey after the canceled create: %v, want ENOTFOUND", err)
	}
}

func TestInvalidNames(t *testing.T) {
	db := openTemp(t, filepath.Join(t.TempDir(), "eventvault.db"))
	cases := []struct {
		name   string
		tenant eventvault.TenantID
		stream eventvault.StreamName
	}{
		{"empty tenant", "", "order-1"},
		{"upper-case tenant", "Tenant", "order-1"},
		{"empty stream", "tenant-a", ""},
		{"stream without category", "tenant-a", "order"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.CreateStreamKey(t.Context(), tc.tenant, tc.stream, eventvault.WrappedKey{ID: uuid.New()})
			if code := eventvault.ErrorCode(err); code != eventvault.EINVALID {
				t.Errorf("CreateStreamKey(%q, %q): %v, want EINVALID", tc.tenant, tc.stream, err)
			}
		})
	}
}

func TestOpenRefusesUnknownLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eventvault.db")
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyLayout, be64(layoutVersion+1))
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err == nil {
		db.Close()
		t.Fatal("Open of a file with a newer layout succeeded")
	}
	if code := eventvault.ErrorCode(err); code != eventvault.EINTERNAL {
		t.Errorf("Open of a file with a newer layout: code %q (%v), want %q", code, err, eventvault.EINTERNAL)
	}
}
