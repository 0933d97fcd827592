package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
)

// BenchmarkReadStreamPII reads a 1,000-event stream whose events mark 5
// personal values each, against the same events unmarked (issue 13's
// make bench workload, without HTTP), on bbolt. Reports ns per event.
func BenchmarkReadStreamPII(b *testing.B) {
	for _, marked := range []bool{false, true} {
		name := "unmarked"
		if marked {
			name = "marked"
		}
		b.Run(name, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "eventvault.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			r := newPIIRig(b, backend{}, db)
			p := withPolicy(b, decryptAll)
			ctx := context.Background()
			const n = 1000
			for first := 0; first < n; first += 100 {
				var evs []eventvault.NewEvent
				for i := first; i < first+100; i++ {
					ev := eventvault.NewEvent{ID: uuid.New(), Type: "Registered", Data: benchPIIData(i, 500)}
					if marked {
						for _, f := range []struct{ name, class string }{{"email", "email"}, {"phone", "phone"}, {"street", "address"}, {"name", ""}, {"note", "free_text"}} {
							ev.PII = append(ev.PII, eventvault.PIIMark{Pointer: "/" + f.name, Subject: fmt.Sprintf("subject-%d", i%50), Class: eventvault.PIIClass(f.class)})
						}
					}
					evs = append(evs, ev)
				}
				if _, err := r.events.Append(ctx, p, "s-1", eventvault.ExpectAny, evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				out, err := r.events.ReadStream(ctx, p, "s-1", eventvault.ReadOptions{Limit: n})
				if err != nil || len(out.Events) != n {
					b.Fatalf("read: %d events, %v", len(out.Events), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

func benchPIIData(i, size int) []byte {
	b := fmt.Appendf(nil, `{"email":"person%d@example.com","phone":"+44 20 7946 %04d","street":"%d Acacia Avenue","name":"Person Number %d","note":"called about order %d"`, i, i%10000, i, i, i)
	b = append(b, `,"pad":"`...)
	for range max(0, size-len(b)-2) {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}
