package bolt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	bbolt "go.etcd.io/bbolt"

	"github.com/eventvault/eventvault"
)

// needle returns random bytes that can be in the file only if the store
// put them there.
func needle(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fileHolds reports whether the bytes of the file at path contain n, raw
// or base64 (as JSON records hold bytes), anywhere: in a live page or a
// free one. A needle is always a whole value, so its base64 is exact.
func fileHolds(t *testing.T, path string, n []byte) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return bytes.Contains(data, n) || bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(n)))
}

// appendSealed appends one event to a stream of tenant-a whose payload is
// payload.
func appendSealed(t *testing.T, db *DB, stream eventvault.StreamName, keyID uuid.UUID, payload []byte) {
	t.Helper()
	_, err := db.Append(t.Context(), "tenant-a", eventvault.AppendRequest{
		Stream: stream, Expected: eventvault.ExpectAny, KeyID: keyID,
		Events: []eventvault.ProposedEvent{{ID: uuid.New(), Type: "Thing", ContentMAC: []byte("mac")}},
		Seal:   func(int64) ([][]byte, error) { return [][]byte{payload}, nil },
	})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// TestShredScrubsTheFile reads the store's file as an attacker with a copy
// of it would: after a shred, no byte of the destroyed key is left in it,
// in a live page or a free one; after a purge, no byte of the events; after
// a tenant shred, no byte of its KEK or of any stream key.
func TestShredScrubsTheFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eventvault.db")
	db := openTemp(t, path)
	kekCT, keyCT, otherCT, payload := needle(t), needle(t), needle(t), needle(t)
	if _, err := db.CreateTenantKey(ctx, "tenant-a", eventvault.WrappedKey{ID: uuid.New(), Version: 1, Ciphertext: kekCT}); err != nil {
		t.Fatalf("CreateTenantKey: %v", err)
	}
	key, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: keyCT})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	other, err := db.CreateStreamKey(ctx, "tenant-a", "order-2", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: otherCT})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	// Every append rewrites the stream record, leaving copies of the key in
	// pages bbolt has freed.
	for range 5 {
		appendSealed(t, db, "order-1", key.ID, payload)
		appendSealed(t, db, "order-2", other.ID, needle(t))
	}
	for name, n := range map[string][]byte{"KEK": kekCT, "stream key": keyCT, "other stream key": otherCT, "payload": payload} {
		if !fileHolds(t, path, n) {
			t.Fatalf("positive control: the file does not hold the %s before any shred", name)
		}
	}

	if _, err := db.ShredStream(ctx, "tenant-a", "order-1", false, time.Now()); err != nil {
		t.Fatalf("ShredStream: %v", err)
	}
	if fileHolds(t, path, keyCT) {
		t.Error("the file still holds the shredded stream key")
	}
	if !fileHolds(t, path, payload) || !fileHolds(t, path, otherCT) {
		t.Error("the shred scrubbed more than the key: the events (not purged) or another stream's key are gone")
	}

	if _, err := db.ShredStream(ctx, "tenant-a", "order-1", true, time.Now()); err != nil {
		t.Fatalf("ShredStream with purge: %v", err)
	}
	if fileHolds(t, path, payload) {
		t.Error("the file still holds a purged event's payload")
	}

	if _, err := db.ShredTenant(ctx, "tenant-a", time.Now()); err != nil {
		t.Fatalf("ShredTenant: %v", err)
	}
	for name, n := range map[string][]byte{"KEK": kekCT, "other stream key": otherCT} {
		if fileHolds(t, path, n) {
			t.Errorf("the file still holds the %s after the tenant shred", name)
		}
	}
	if _, err := os.Stat(path + ".scrub"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the scrub left %s.scrub behind (stat: %v)", path, err)
	}
	page, err := db.ReadAll(ctx, "tenant-a", 0, 100)
	if err != nil {
		t.Fatalf("ReadAll after the scrubs: %v", err)
	}
	if len(page.Events) != 5 {
		t.Errorf("ReadAll after the scrubs: %d events, want order-2's 5", len(page.Events))
	}
}

// TestOpenFinishesAnInterruptedScrub plays a process that dies between a
// shred's commit and its scrub: the file still holds the key in a free page,
// and the next Open scrubs it.
func TestOpenFinishesAnInterruptedScrub(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "eventvault.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	keyCT := needle(t)
	key, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: keyCT})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	appendEvents(t, db, "order-1", key.ID, 2)
	err = db.update(ctx, "test", func(tx *bbolt.Tx) error {
		tb := readTenant(tx, "tenant-a")
		rec, _, err := tb.stream("order-1")
		if err != nil {
			return err
		}
		shredRec(&rec, time.Now())
		if err := tb.putStream("order-1", rec); err != nil {
			return err
		}
		return db.markScrub(tx)
	})
	if err != nil {
		t.Fatalf("shred without scrub: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !fileHolds(t, path, keyCT) {
		t.Fatal("positive control: after a shred without scrub, bbolt's free pages should still hold the key")
	}

	db = openTemp(t, path)
	if fileHolds(t, path, keyCT) {
		t.Error("Open did not finish the interrupted scrub: the file still holds the shredded key")
	}
	if _, err := db.StreamKey(ctx, "tenant-a", "order-1"); eventvault.ErrorCode(err) != eventvault.EERASED {
		t.Errorf("StreamKey after reopen = %v, want EERASED", err)
	}
	if db.scrubPending.Load() {
		t.Error("the scrub is still pending after Open")
	}
}

// TestScrubWhileServing shreds streams while other goroutines read and
// append: the file is swapped under them, and none of them may notice.
func TestScrubWhileServing(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t, filepath.Join(t.TempDir(), "eventvault.db"))
	live, err := db.CreateStreamKey(ctx, "tenant-a", "order-1", eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("live")})
	if err != nil {
		t.Fatalf("CreateStreamKey: %v", err)
	}
	appendEvents(t, db, "order-1", live.ID, 1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	work := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 3 {
		work(func() error {
			_, err := db.ReadStream(ctx, "tenant-a", "order-1", eventvault.ReadOptions{From: 0, Limit: 100})
			return err
		})
	}
	work(func() error {
		_, err := db.Append(ctx, "tenant-a", eventvault.AppendRequest{
			Stream: "order-1", Expected: eventvault.ExpectAny, KeyID: live.ID,
			Events: []eventvault.ProposedEvent{{ID: uuid.New(), Type: "Thing", ContentMAC: []byte("mac")}},
			Seal:   func(int64) ([][]byte, error) { return [][]byte{[]byte("sealed")}, nil },
		})
		return err
	})
	for i := range 10 {
		stream := eventvault.StreamName("shred-" + string(rune('a'+i)))
		k, err := db.CreateStreamKey(ctx, "tenant-a", stream, eventvault.WrappedKey{ID: uuid.New(), Version: 1, KEKVersion: 1, Ciphertext: []byte("doomed")})
		if err != nil {
			t.Fatalf("CreateStreamKey %s: %v", stream, err)
		}
		appendEvents(t, db, stream, k.ID, 2)
		if _, err := db.ShredStream(ctx, "tenant-a", stream, i%2 == 0, time.Now()); err != nil {
			t.Fatalf("ShredStream %s: %v", stream, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a reader or writer failed during the scrubs: %v", err)
	}
}
