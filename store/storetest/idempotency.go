package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// testIdempotency checks retried appends, as eventvault.Replay decides
// them. A batch whose every id is stored in this stream with the same MAC
// is replayed, whatever its expected version says and whatever its order
// (a part of a batch too), with the original positions in the request's
// order; any other reuse of a stored id is ECONFLICT, whose message never
// names another stream; an id twice in one batch is EINVALID.
func testIdempotency(t *testing.T, open opener) {
	type batches struct{ first, second, other []eventvault.ProposedEvent }
	fresh := newEvents(1)[0]

	cases := []struct {
		name     string
		stream   eventvault.StreamName
		events   func(b batches) []eventvault.ProposedEvent
		expected eventvault.ExpectedVersion
		code     eventvault.Code // "" for a replay
	}{
		{"same batch with stale no_stream", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.first }, eventvault.ExpectNoStream, ""},
		{"same batch with any", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.first }, eventvault.ExpectAny, ""},
		{"same batch with the current exact version", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.first }, eventvault.ExpectPosition(4), ""},
		{"latest batch with its stale exact version", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.second }, eventvault.ExpectPosition(2), ""},
		{"part of a batch", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.first[1:] }, eventvault.ExpectAny, ""},
		{"part of a batch with a gap", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.first[0], b.first[2]}
			}, eventvault.ExpectAny, ""},
		{"same batch in another order", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.first[2], b.first[0], b.first[1]}
			}, eventvault.ExpectNoStream, ""},
		{"two batches in another order", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.second[1], b.first[0]}
			}, eventvault.ExpectAny, ""},
		{"events of two batches", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.first[2], b.second[0]}
			}, eventvault.ExpectAny, ""},
		{"same id with another MAC", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				evs := slices.Clone(b.first)
				evs[1].ContentMAC = []byte("mac:something else")
				return evs
			}, eventvault.ExpectAny, eventvault.ECONFLICT},
		{"some ids stored, some new", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.second[0], fresh}
			}, eventvault.ExpectAny, eventvault.ECONFLICT},
		{"new id after stored ids", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return append(slices.Clone(b.second), fresh)
			}, eventvault.ExpectPosition(4), eventvault.ECONFLICT},
		{"same ids in another stream", "order-2",
			func(b batches) []eventvault.ProposedEvent { return b.first }, eventvault.ExpectAny, eventvault.ECONFLICT},
		{"an id of another stream", "order-1",
			func(b batches) []eventvault.ProposedEvent { return b.other }, eventvault.ExpectAny, eventvault.ECONFLICT},
		{"an id of another stream after new ones", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{fresh, b.other[0]}
			}, eventvault.ExpectAny, eventvault.ECONFLICT},
		{"new id twice in the batch", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{fresh, fresh}
			}, eventvault.ExpectAny, eventvault.EINVALID},
		{"stored id twice in the batch", "order-1",
			func(b batches) []eventvault.ProposedEvent {
				return []eventvault.ProposedEvent{b.first[0], b.first[0]}
			}, eventvault.ExpectAny, eventvault.EINVALID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open)
			keys := map[eventvault.StreamName]eventvault.WrappedKey{
				"order-1": h.streamKey(tenantA, "order-1"),
				"order-2": h.streamKey(tenantA, "order-2"),
			}
			b := batches{first: newEvents(3), second: newEvents(2), other: newEvents(1)}
			h.mustAppend(tenantA, "order-1", keys["order-1"].ID, eventvault.ExpectNoStream, b.first)
			h.mustAppend(tenantA, "order-2", keys["order-2"].ID, eventvault.ExpectNoStream, b.other)
			h.mustAppend(tenantA, "order-1", keys["order-1"].ID, eventvault.ExpectPosition(2), b.second)
			before := h.snapshot(tenantA, "order-1", "order-2")

			evs := tc.events(b)
			res, calls, err := h.tryAppend(tenantA, tc.stream, keys[tc.stream].ID, tc.expected, evs)
			if len(calls) != 0 {
				t.Errorf("Seal called with %v; a retry or a refused batch must not be sealed", calls)
			}
			h.unchanged(tenantA, before)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				// The caller may not be allowed to know the other stream.
				other := map[eventvault.StreamName]string{"order-1": "order-2", "order-2": "order-1"}[tc.stream]
				if msg := eventvault.ErrorMessage(err); strings.Contains(msg, other) {
					t.Errorf("the conflict names the other stream %s: %q", other, msg)
				}
				return
			}

			if err != nil {
				t.Fatalf("retried append: %v", err)
			}
			if !res.Replayed {
				t.Errorf("retried append: Replayed = false")
			}
			if res.Stream != tc.stream {
				t.Errorf("AppendResult.Stream = %q, want %q", res.Stream, tc.stream)
			}
			want := make([]eventvault.Positions, len(evs))
			version := eventvault.NoStream
			for i, ev := range evs {
				orig := h.lookup(tenantA, ev.ID)
				want[i] = eventvault.Positions{Position: orig.Position, GlobalPosition: orig.GlobalPosition}
				version = max(version, orig.Position)
			}
			if !slices.Equal(res.Events, want) {
				t.Errorf("replayed positions %+v, want the original ones %+v", res.Events, want)
			}
			if res.Version != version {
				t.Errorf("replayed Version = %d, want %d (the last position of the original events)", res.Version, version)
			}
		})
	}
}
