package engine_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/engine"
)

// appendAfterListing is the real store with one interleaving pinned: right
// after an erasure has listed the subject's streams the first time, a
// concurrent append gives the subject a new stream, as another client's
// request could at that moment.
type appendAfterListing struct {
	eventvault.Store
	once   sync.Once
	during func()
}

func (s *appendAfterListing) StreamsOfSubject(ctx context.Context, tenant eventvault.TenantID, subject eventvault.Pseudonym) ([]eventvault.StreamName, error) {
	streams, err := s.Store.StreamsOfSubject(ctx, tenant, subject)
	s.once.Do(s.during)
	return streams, err
}

// TestErasureShredsAStreamTheSubjectGainsWhileItRuns: a completed erasure
// request leaves no stream of the subject readable, even one whose first
// event was appended after the request had listed the subject's streams,
// and its certificate counts that stream.
func TestErasureShredsAStreamTheSubjectGainsWhileItRuns(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			real := b.open(t)
			pseud, signer := erasureKeys(t, t.TempDir())
			keys := evcrypto.NewKeyring(newRoot(t), real, evcrypto.KeyringOptions{})
			e := engine.NewEvents(real, keys, nil, engine.WithPseudonymizer(pseud))
			add := func(stream eventvault.StreamName) {
				t.Helper()
				ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(`{"pii":"yes"}`)}
				if _, err := e.AppendForSubject(ctx, dpo, stream, "customer-881", eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
					t.Fatalf("append to %s: %v", stream, err)
				}
			}
			add("order-1")
			store := &appendAfterListing{Store: real, during: func() { add("profile-1") }}
			er := engine.NewErasure(store, keys, pseud, signer, nil)

			req, _, err := er.RequestErasure(ctx, dpo, "customer-881")
			if err != nil || req.State != eventvault.ErasureCompleted {
				t.Fatalf("erasure: %+v, %v", req, err)
			}
			for _, s := range []eventvault.StreamName{"order-1", "profile-1"} {
				if _, err := e.ReadStream(ctx, dpo, s, eventvault.ReadOptions{}); eventvault.ErrorCode(err) != eventvault.EERASED {
					t.Errorf("read %s after a completed erasure: %v, want EERASED", s, err)
				}
			}
			env, err := dsse.Parse(req.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			var cert eventvault.ErasureCertificate
			if err := json.Unmarshal(env.Payload, &cert); err != nil {
				t.Fatal(err)
			}
			if cert.StreamCount != 2 || len(cert.DestroyedKeys) != 2 {
				t.Errorf("certificate counts %d streams and %d keys, want 2 and 2", cert.StreamCount, len(cert.DestroyedKeys))
			}
		})
	}
}

// TestConcurrentErasureRequestsShareOneRequest: clients retrying an
// erasure request at once all get the same request and the same signed
// certificate; the subject has exactly one completed request.
func TestConcurrentErasureRequestsShareOneRequest(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			store := b.open(t)
			pseud, signer := erasureKeys(t, t.TempDir())
			keys := evcrypto.NewKeyring(newRoot(t), store, evcrypto.KeyringOptions{})
			e := engine.NewEvents(store, keys, nil, engine.WithPseudonymizer(pseud))
			er := engine.NewErasure(store, keys, pseud, signer, nil)
			for _, s := range []eventvault.StreamName{"order-1", "order-2", "profile-1"} {
				ev := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: []byte(`1`)}
				if _, err := e.AppendForSubject(ctx, dpo, s, "customer-881", eventvault.ExpectAny, []eventvault.NewEvent{ev}); err != nil {
					t.Fatal(err)
				}
			}
			const clients = 8
			got := make([]eventvault.ErasureRequest, clients)
			created := make([]bool, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, c, err := er.RequestErasure(ctx, dpo, "customer-881")
					if err != nil {
						t.Errorf("erasure: %v", err)
					}
					got[i], created[i] = r, c
				}()
			}
			wg.Wait()
			// Exactly one call recorded the request (the API answers it 201,
			// the others 200).
			if n := len(slices.DeleteFunc(slices.Clone(created), func(c bool) bool { return !c })); n != 1 {
				t.Errorf("%d calls say they created the request, want 1", n)
			}
			stored, err := er.ErasureRequest(ctx, dpo, got[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range got {
				if r.ID != got[0].ID || r.State != eventvault.ErasureCompleted || string(r.Certificate) != string(stored.Certificate) {
					t.Errorf("client %d got request %s (%s), want the one stored request %s and its certificate", i, r.ID, r.State, stored.ID)
				}
			}
		})
	}
}
