package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// TestMarkedValuesKeepPagesWithinTheirBytes marks values that are large
// in their sum (about 60 KB an event, the sealed events small): a stream
// read and a read-all page with the values in place hold no more than
// MaxPageBytes of data, the next page goes on where it stopped, nothing is
// skipped or repeated; and an event marking more than MaxPIIBytesPerEvent
// of values is refused, naming its pii member. On both stores.
func TestMarkedValuesKeepPagesWithinTheirBytes(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			r := newPIIRig(t, b, b.open(t))
			defer r.store.Close()
			p := withPolicy(t, decryptAll)
			note := strings.Repeat("n", 60000)
			const n = 90
			for first := 0; first < n; first += 10 {
				var evs []eventvault.NewEvent
				for i := first; i < first+10; i++ {
					evs = append(evs, eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"i":%d,"note":%q}`, i, note),
						PII: []eventvault.PIIMark{{Pointer: "/note", Subject: fmt.Sprintf("s-%d", i%3), Class: eventvault.PIIFreeText}}})
				}
				if _, err := r.events.Append(ctx, p, "notes-1", eventvault.ExpectAny, evs); err != nil {
					t.Fatal(err)
				}
			}
			check := func(what string, page []eventvault.Event, next int) {
				t.Helper()
				size := 0
				for k, ev := range page {
					size += len(ev.Data)
					if want := fmt.Sprintf(`{"i":%d,"note":"%s"}`, next+k, note); string(ev.Data) != want {
						t.Fatalf("%s: event %d is not event %d with its note in place", what, k, next+k)
					}
				}
				if size > eventvault.MaxPageBytes {
					t.Fatalf("%s: %d events of %d bytes; the bound is %d", what, len(page), size, eventvault.MaxPageBytes)
				}
			}
			pages := 0
			for next := 0; next < n; pages++ {
				sl, err := r.events.ReadStream(ctx, p, "notes-1", eventvault.ReadOptions{From: int64(next), Limit: 1000})
				if err != nil || len(sl.Events) == 0 {
					t.Fatalf("stream read from %d: %d events, %v", next, len(sl.Events), err)
				}
				check(fmt.Sprintf("stream page from %d", next), sl.Events, next)
				next += len(sl.Events)
			}
			if pages < 2 {
				t.Fatalf("%d events of about 60 KB each came in %d page: the bound did not cut", n, pages)
			}
			for from, seen := int64(0), 0; seen < n; {
				all, err := r.events.ReadAll(ctx, p, from, 1000)
				if err != nil || len(all) == 0 {
					t.Fatalf("read all from %d: %d events, %v", from, len(all), err)
				}
				check(fmt.Sprintf("read-all page from %d", from), all, seen)
				seen += len(all)
				from = all[len(all)-1].GlobalPosition + 1
			}

			big := eventvault.NewEvent{ID: uuid.New(), Type: "Noted", Data: fmt.Appendf(nil, `{"a":%q,"b":%q}`, note, note),
				PII: []eventvault.PIIMark{{Pointer: "/a", Subject: "s-1"}, {Pointer: "/b", Subject: "s-2"}}}
			_, err := r.events.Append(ctx, p, "notes-2", eventvault.ExpectAny, []eventvault.NewEvent{big})
			if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(err.Error(), "64 KiB") {
				t.Fatalf("an event marking 120 KB of values: %v; want EINVALID naming the limit", err)
			}
		})
	}
}
