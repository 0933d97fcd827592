package postgres_test

import (
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestConcurrentReuseOfAnEventID races appends of one event id: to two
// streams, where one must win and the other get ECONFLICT (the unique index
// catches what the lookup could not yet see, and the store answers as for a
// sequential reuse), and to one stream, where one writes and the other is a
// replay.
func TestConcurrentReuseOfAnEventID(t *testing.T) {
	db, _ := openDB(t)
	ctx := t.Context()
	keys := map[eventvault.StreamName]uuid.UUID{}
	for _, s := range []eventvault.StreamName{"order-1", "order-2"} {
		k, err := db.CreateStreamKey(ctx, tenantA, s, wrappedKey(string(s)))
		if err != nil {
			t.Fatalf("CreateStreamKey %s: %v", s, err)
		}
		keys[s] = k.ID
	}
	cases := []struct {
		name    string
		streams [2]eventvault.StreamName
	}{
		{"two streams", [2]eventvault.StreamName{"order-1", "order-2"}},
		{"one stream", [2]eventvault.StreamName{"order-1", "order-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 20 {
				base := appendRequest("order-1", uuid.Nil, 2)
				results := make([]eventvault.AppendResult, 2)
				errs := make([]error, 2)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i, s := range tc.streams {
					req := base
					req.Stream, req.KeyID = s, keys[s]
					wg.Go(func() {
						<-start
						results[i], errs[i] = db.Append(ctx, tenantA, req)
					})
				}
				close(start)
				wg.Wait()

				var written, replayed, conflicts int
				for i, err := range errs {
					switch {
					case err == nil && results[i].Replayed:
						replayed++
					case err == nil:
						written++
					case eventvault.ErrorCode(err) == eventvault.ECONFLICT:
						conflicts++
					default:
						t.Fatalf("round %d: append to %s: %v, want success or ECONFLICT", round, tc.streams[i], err)
					}
				}
				if written != 1 {
					t.Fatalf("round %d: %d appends wrote, want exactly 1", round, written)
				}
				if tc.streams[0] == tc.streams[1] && replayed != 1 {
					t.Fatalf("round %d: the second append to the same stream was not a replay (conflicts %d)", round, conflicts)
				}
				if tc.streams[0] != tc.streams[1] && conflicts != 1 {
					t.Fatalf("round %d: the append to the other stream did not conflict (replayed %d)", round, replayed)
				}
			}
		})
	}
}
