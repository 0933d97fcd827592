package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/engine"
)

// erasureKeys opens a pseudonym key and a signing key in dir.
func erasureKeys(t testing.TB, dir string) (*pseudonym.Key, *dsse.SigningKey) {
	t.Helper()
	pseud, err := pseudonym.OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return pseud, signer
}

var dpo = eventvault.Principal{Tenant: "acme", TokenID: "tok_dpo", Rules: []eventvault.Rule{
	{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead, eventvault.CapErase}, Streams: "*"},
}}

// TestErasedDataCannotBeRecovered appends events holding a unique marker for
// one subject, erases the subject, then tries everything that is left to
// get the marker back: every stored row and file, the warm key cache, every
// remaining key and the root key. Nothing may decrypt.
func TestErasedDataCannotBeRecovered(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			store := b.open(t)
			root := newRoot(t)
			pseud, signer := erasureKeys(t, dir)
			keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
			e := engine.NewEvents(store, keys, nil, engine.WithPseudonymizer(pseud))
			er := engine.NewErasure(store, keys, pseud, signer, nil)

			marker := []byte("EVMARKER-" + uuid.NewString())
			erased := []eventvault.StreamName{"order-1", "profile-1"}
			for _, s := range erased {
				for i := 0; i < 3; i++ {
					ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(fmt.Sprintf(`{"m":"%s","i":%d}`, marker, i))}
					if _, err := e.AppendForSubject(ctx, dpo, s, "customer-881", eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
						t.Fatal(err)
					}
				}
			}
			kept := eventvault.StreamName("order-2")
			if _, err := e.Append(ctx, dpo, kept, eventvault.ExpectAny, []eventvault.NewEvent{{ID: uuid.New(), Type: "Noted", Data: []byte(`{"m":"other"}`)}}); err != nil {
				t.Fatal(err)
			}
			// Warm every cache: the data reads, marker and all.
			for _, s := range erased {
				sl, err := e.ReadStream(ctx, dpo, s, eventvault.ReadOptions{})
				if err != nil || !bytes.Contains(sl.Events[0].Data, marker) {
					t.Fatalf("before erasure %s: %v", s, err)
				}
			}
			req, _, err := er.RequestErasure(ctx, dpo, "customer-881")
			if err != nil || req.State != eventvault.ErasureCompleted {
				t.Fatalf("erasure: %+v, %v", req, err)
			}

			// 1. The API's own paths: erased, not an error and not data.
			for _, s := range erased {
				if _, err := e.ReadStream(ctx, dpo, s, eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.EERASED {
					t.Fatalf("read %s after erasure: %v, want EERASED", s, err)
				}
			}
			all, err := e.ReadAll(ctx, dpo, 0, 100)
			if err != nil || len(all) != 7 {
				t.Fatalf("read-all after erasure: %d events, %v", len(all), err)
			}
			for _, ev := range all {
				if bytes.Contains(ev.Data, marker) || (ev.Stream != kept && (!ev.Erased || ev.Data != nil)) {
					t.Fatalf("read-all returned %+v", ev)
				}
			}
			// 2. The warm key cache: it neither opens the stream nor makes a
			// fresh key for it.
			for _, s := range erased {
				if _, err := keys.StreamCipher(ctx, dpo.Tenant, s); err == nil {
					t.Fatalf("keyring still gives a cipher for %s", s)
				}
			}
			// 3. Every key that is left, and the root through the tenant KEK,
			// against every stored payload of the erased streams.
			keptKey, err := store.StreamKey(ctx, dpo.Tenant, kept)
			if err != nil {
				t.Fatal(err)
			}
			keptCipher, err := keys.OpenStreamCipher(ctx, dpo.Tenant, kept, keptKey)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range erased {
				if k, err := store.StreamKey(ctx, dpo.Tenant, s); err == nil {
					t.Fatalf("the key row of %s is still there: %+v", s, k.ID)
				}
				page, err := store.ReadStream(ctx, dpo.Tenant, s, eventvault.ReadOptions{Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Events) != 3 || page.Key.ID != uuid.Nil {
					t.Fatalf("%s: %d stored envelopes with key %v; want 3 envelopes and no key", s, len(page.Events), page.Key.ID)
				}
				// The kept stream's key, moved onto the erased stream.
				if _, err := keys.OpenStreamCipher(ctx, dpo.Tenant, s, keptKey); err == nil {
					t.Fatalf("another stream's key row opened %s", s)
				}
				for _, se := range page.Events {
					ref := evcrypto.EventRef{Tenant: dpo.Tenant, Stream: s, ID: se.ID, Position: se.Position, Type: se.Type}
					if data, _, err := keptCipher.OpenEvent(ref, se.Payload); err == nil {
						t.Fatalf("the kept stream's key opened an erased event: %q", data)
					}
					if bytes.Contains(se.Payload, marker) {
						t.Fatal("payload holds the marker in clear")
					}
				}
			}
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
			// 4. The raw bytes at rest.
			if hits := b.scan(t, marker); len(hits) > 0 {
				t.Fatalf("marker at rest: %v", hits)
			}
		})
	}
}
