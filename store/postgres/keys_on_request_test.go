package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/postgres"
)

// shreddingReceiver takes a page's keys on request and, when asked whether
// it wants them, first shreds a stream of the page through the store, as
// another node could between the page's transaction and the keys'.
type shreddingReceiver struct {
	t         *testing.T
	db        *postgres.DB
	shred     eventvault.StreamName
	headEpoch int64
	events    int
	keys      map[eventvault.StreamName]eventvault.WrappedKey
	keysEpoch int64
}

func (r *shreddingReceiver) Head(page eventvault.AllPage) error {
	if page.Keys != nil {
		r.t.Errorf("the head of a page for a receiver that takes the keys on request has keys")
	}
	r.headEpoch = page.KeyEpoch
	return nil
}

func (r *shreddingReceiver) Events(chunk []eventvault.StoredEvent) error {
	r.events += len(chunk)
	return nil
}

func (r *shreddingReceiver) WantsKeys() bool {
	if _, err := r.db.ShredStream(r.t.Context(), tenantA, r.shred, true, time.Now()); err != nil {
		r.t.Errorf("ShredStream %s while the page is read: %v", r.shred, err)
	}
	return true
}

func (r *shreddingReceiver) Keys(keys map[eventvault.StreamName]eventvault.WrappedKey, epoch int64) error {
	r.keys, r.keysEpoch = keys, epoch
	return nil
}

// TestKeysReadAfterAPageShowWhatBecameOfThem: the keys a receiver asks for
// after a page's events are read after the page's transaction. A stream
// shredded and purged in between (its events gone, its key row emptied)
// comes back with the zero key, so that its events the page holds are
// erased envelopes, never opened; the others' rows are as they were; and
// the keys' epoch is past the page's, so that the receiver knows them to
// be of a later snapshot.
func TestKeysReadAfterAPageShowWhatBecameOfThem(t *testing.T) {
	db, _ := openDB(t)
	ctx := t.Context()
	keys := map[eventvault.StreamName]eventvault.WrappedKey{}
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		k, err := db.CreateStreamKey(ctx, tenantA, s, wrappedKey(string(s)))
		if err != nil {
			t.Fatal(err)
		}
		keys[s] = k
		if _, err := db.Append(ctx, tenantA, appendRequest(s, k.ID, 3)); err != nil {
			t.Fatal(err)
		}
	}
	r := &shreddingReceiver{t: t, db: db, shred: "order-1"}
	if err := db.ReadAllTo(ctx, tenantA, 0, 100, r); err != nil {
		t.Fatalf("ReadAllTo: %v", err)
	}
	if r.events != 6 {
		t.Fatalf("the page handed over %d events, want 6", r.events)
	}
	if r.keysEpoch <= r.headEpoch {
		t.Fatalf("keys read after a shred at epoch %d, the page's %d; want a later epoch", r.keysEpoch, r.headEpoch)
	}
	if k := r.keys["order-1"]; k.ID != uuid.Nil || len(k.Ciphertext) != 0 {
		t.Fatalf("the shredded stream's key after the page has id %v and %d bytes; want the zero key", k.ID, len(k.Ciphertext))
	}
	if k := r.keys["order-2"]; k.ID != keys["order-2"].ID || string(k.Ciphertext) != string(keys["order-2"].Ciphertext) {
		t.Fatalf("the other stream's key after the page: id %v, want %v", k.ID, keys["order-2"].ID)
	}
}
