package audit

import (
	"bytes"
	"fmt"
	"iter"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// millionLines yields n realistic record lines of tenant acme.
func benchLines(b *testing.B, n int64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		for i := range n {
			r := Record{Tenant: "acme", Index: i, Time: t0.Add(time.Duration(i) * time.Millisecond),
				Actor: "tok_01HZX3K9Q2M7", Action: ActionAppend, Resource: fmt.Sprintf("stream:order-%d", i%5000), Outcome: OutcomeOK,
				RequestID: fmt.Sprintf("01HZX3KA%018d", i), Detail: map[string]any{"count": 3, "first": i % 977, "last": i%977 + 2}}
			line, err := r.MarshalLine()
			if err != nil {
				b.Fatal(err)
			}
			if !yield(line, nil) {
				return
			}
		}
	}
}

// BenchmarkVerifyMillionRecords verifies a complete export of 10^6 records
// against a trusted checkpoint at half its size (goal: 3 s an operation).
func BenchmarkVerifyMillionRecords(b *testing.B) {
	const n = 1_000_000
	var tree MemoryTree
	for line := range benchLines(b, n) {
		tree.Append(line)
	}
	l := &testLog{t: b, tree: tree}
	l.signer, _ = NewSigner(DefaultLogName, testKey("deployment"))
	_, msg := l.checkpoint(l.signer, n)
	trusted, _ := l.checkpoint(l.signer, n/2)
	var buf bytes.Buffer
	if err := WriteBundle(&buf, Export{Checkpoint: msg, Hashes: &l.tree, Count: n, Records: benchLines(b, n), OldSize: n / 2}); err != nil {
		b.Fatal(err)
	}
	bundle := buf.Bytes()
	pinned := l.pinned()
	b.SetBytes(int64(len(bundle)))
	runtime.GC()
	before := cpuTime()
	for b.Loop() {
		v, err := VerifyBundle(bytes.NewReader(bundle), pinned, &trusted)
		if err != nil || !v.Trusted || v.Checkpoint.Size != n {
			b.Fatalf("VerifyBundle = %v, %v", v, err)
		}
	}
	// CPU seconds (user and system, all threads) beside the wall time: on a
	// machine shared with other work, the wall time also counts the waits.
	b.ReportMetric((cpuTime()-before).Seconds()/float64(b.N), "cpu-s/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
