package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/eventvault/eventvault"
)

// testPageBytes appends events of a few MiB and checks that ReadStream
// (both ways) and ReadAll stop a page before the event that would take its
// payloads past eventvault.MaxPageBytes, always return at least one event
// (one larger than the bound alone), and that paging on from the last
// event of each page reads every event once, in order, with its payload
// whole. Sizes tried (MiB): 1.5, 1.5, 1.5 (the third does not fit beside
// two), 5 (alone past the bound), then small events that fill a page up
// to the limit.
func testPageBytes(t *testing.T, open opener) {
	h := setup(t, open)
	const mib = 1 << 20
	sizes := []int{3 * mib / 2, 3 * mib / 2, 3 * mib / 2, 5 * mib, 100, 100, 100}
	key := h.streamKey(tenantA, "blob-1")
	payloads := make([][]byte, len(sizes))
	for i, n := range sizes {
		payloads[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
		evs := newEvents(1)
		_, err := h.store.Append(h.ctx, tenantA, eventvault.AppendRequest{
			Stream: "blob-1", Expected: eventvault.ExpectAny, KeyID: key.ID, Events: evs,
			Seal: func(int64) ([][]byte, error) { return [][]byte{payloads[i]}, nil },
		})
		if err != nil {
			t.Fatalf("append event %d of %d bytes: %v", i, n, err)
		}
	}

	// pages is what a store must return reading positions in order with
	// limit: each page greedy up to the bound, one event at least.
	pages := func(order []int, limit int) [][]int64 {
		var out [][]int64
		var page []int64
		size := 0
		for _, i := range order {
			if len(page) == limit || len(page) > 0 && size+sizes[i] > eventvault.MaxPageBytes {
				out, page, size = append(out, page), nil, 0
			}
			page, size = append(page, int64(i)), size+sizes[i]
		}
		return append(out, page)
	}
	forward, backward := []int{0, 1, 2, 3, 4, 5, 6}, []int{6, 5, 4, 3, 2, 1, 0}
	check := func(t *testing.T, got []eventvault.StoredEvent, pos func(eventvault.StoredEvent) int64, want []int64) {
		t.Helper()
		var gotPos []int64
		for _, e := range got {
			gotPos = append(gotPos, pos(e))
			if p := pos(e); !bytes.Equal(e.Payload, payloads[p]) {
				t.Fatalf("event at %d: payload of %d bytes, not the %d appended", p, len(e.Payload), len(payloads[p]))
			}
		}
		if !slices.Equal(gotPos, want) {
			t.Fatalf("page %v, want %v (sizes %v, bound %d)", gotPos, want, sizes, eventvault.MaxPageBytes)
		}
	}
	streamPos := func(e eventvault.StoredEvent) int64 { return e.Position }
	globalPos := func(e eventvault.StoredEvent) int64 { return e.GlobalPosition }

	for _, limit := range []int{100, 2} {
		t.Run(fmt.Sprintf("ReadStream forward limit %d", limit), func(t *testing.T) {
			h := h.sub(t)
			from := int64(0)
			for _, want := range pages(forward, limit) {
				page := h.readStream(tenantA, "blob-1", eventvault.ReadOptions{From: from, Limit: limit})
				check(t, page.Events, streamPos, want)
				from = want[len(want)-1] + 1
			}
			if page := h.readStream(tenantA, "blob-1", eventvault.ReadOptions{From: from, Limit: limit}); len(page.Events) != 0 {
				t.Fatalf("read past the last page: %d events", len(page.Events))
			}
		})
		t.Run(fmt.Sprintf("ReadStream backward limit %d", limit), func(t *testing.T) {
			h := h.sub(t)
			from := int64(-1)
			for _, want := range pages(backward, limit) {
				page := h.readStream(tenantA, "blob-1", eventvault.ReadOptions{From: from, Limit: limit, Backward: true})
				check(t, page.Events, streamPos, want)
				from = want[len(want)-1] - 1
			}
		})
		t.Run(fmt.Sprintf("ReadAll limit %d", limit), func(t *testing.T) {
			h := h.sub(t)
			from := int64(0)
			for _, want := range pages(forward, limit) {
				page := h.readAll(tenantA, from, limit)
				check(t, page.Events, globalPos, want)
				if page.Next != int64(len(sizes)) {
					t.Fatalf("AllPage.Next = %d on a short page, want the tenant's next global position %d", page.Next, len(sizes))
				}
				from = want[len(want)-1] + 1
			}
			if page := h.readAll(tenantA, from, limit); len(page.Events) != 0 {
				t.Fatalf("read past the last page: %d events", len(page.Events))
			}
		})
	}
}
