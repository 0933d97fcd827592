package main

import (
	"math"
	"slices"
	"strings"
	"time"
)

// sample is what one side did in one workload over every slice of the run.
type sample struct {
	events    int64
	requests  int64
	elapsed   time.Duration // wall time of the slices, summed
	cpu       time.Duration // CPU time of this process during the slices, summed
	latencies []time.Duration
	// waits counts what PostgreSQL's busy sessions were seen waiting on,
	// over polls looks.
	waits map[string]int
	polls int
	// groups and groupAppends are the group commits of the side's server
	// during the slices and the appends they carried (zero for a side
	// without one).
	groups, groupAppends int64
	// pgExecMs and pgWALBytes are the execution time and WAL of the
	// statements the database ran during the slices that have them
	// (pg_stat_statements), pgSlices how many slices those are and
	// pgEvents their events.
	pgExecMs, pgWALBytes float64
	pgEvents             int64
	pgSlices             int
}

// add folds one slice into s.
func (s *sample) add(o sample) {
	s.events += o.events
	s.requests += o.requests
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.latencies = append(s.latencies, o.latencies...)
	s.polls += o.polls
	s.groups += o.groups
	s.groupAppends += o.groupAppends
	s.pgExecMs += o.pgExecMs
	s.pgWALBytes += o.pgWALBytes
	s.pgEvents += o.pgEvents
	s.pgSlices += o.pgSlices
	for w, n := range o.waits {
		if s.waits == nil {
			s.waits = map[string]int{}
		}
		s.waits[w] += n
	}
}

// busySessions is the mean number of PostgreSQL sessions seen busy.
func (s *sample) busySessions() float64 {
	if s.polls == 0 {
		return 0
	}
	n := 0
	for _, c := range s.waits {
		n += c
	}
	return float64(n) / float64(s.polls)
}

// waitShare is one wait and its share of all wait samples.
type waitShare struct {
	Wait  string  `json:"wait"`
	Share float64 `json:"share"`
}

// waitShares returns the waits by falling share, ties by name.
func waitShares(waits map[string]int) []waitShare {
	total := 0
	for _, n := range waits {
		total += n
	}
	out := make([]waitShare, 0, len(waits))
	for w, n := range waits {
		out = append(out, waitShare{Wait: w, Share: float64(n) / float64(total)})
	}
	slices.SortFunc(out, func(a, b waitShare) int {
		if a.Share != b.Share {
			if a.Share > b.Share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Wait, b.Wait)
	})
	return out
}

// rate is events per second of wall time, 0 without time.
func (s *sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.events) / s.elapsed.Seconds()
}

// cpuPerEvent is the process's CPU time per event, 0 without events.
func (s *sample) cpuPerEvent() time.Duration {
	if s.events <= 0 {
		return 0
	}
	return s.cpu / time.Duration(s.events)
}

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value that at least p% of the values
// are at or below. It returns 0 for no values. ds need not be sorted; it is
// not modified.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// ratio is a/b, or 0 when b is not positive (no baseline to compare with).
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
