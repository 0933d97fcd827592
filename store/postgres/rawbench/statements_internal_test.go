package rawbench

import (
	"testing"
	"time"
)

// TestSinceCountsEachEntrysGrowth: between two readings, an entry of both
// counts its growth, a new one (or one evicted and back, with fewer calls
// than before) counts in full, one evicted and not back counts nothing, and
// a reset of pg_stat_statements in between leaves no figures.
func TestSinceCountsEachEntrysGrowth(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	k := func(q int64) statementKey { return statementKey{user: 10, queryID: q} }
	before := StatementCounts{reset: at, entries: map[statementKey]StatementTotals{
		k(1): {Calls: 10, ExecMs: 5, WALBytes: 100}, // grows
		k(2): {Calls: 50, ExecMs: 20, WALBytes: 64}, // evicted, and back
		k(3): {Calls: 7, ExecMs: 1, WALBytes: 8},    // evicted
	}}
	after := StatementCounts{reset: at, entries: map[statementKey]StatementTotals{
		k(1): {Calls: 14, ExecMs: 7, WALBytes: 180},
		k(2): {Calls: 3, ExecMs: 0.5},
		k(4): {Calls: 2, ExecMs: 0.25, WALBytes: 40}, // new
	}}
	got, ok := after.Since(before)
	want := StatementTotals{Calls: 4 + 3 + 2, ExecMs: 2 + 0.5 + 0.25, WALBytes: 80 + 40}
	if !ok || got != want {
		t.Errorf("Since = %+v, %v; want %+v, true", got, ok, want)
	}
	after.reset = at.Add(time.Second)
	if got, ok := after.Since(before); ok {
		t.Errorf("Since across a reset = %+v, true; want no figures", got)
	}
}
