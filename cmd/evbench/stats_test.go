package main

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		// 100 down to 1, so the input is not sorted.
		hundred[i] = time.Duration(100-i) * time.Millisecond
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
		{"p99 of ten values is the maximum", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"a tiny p is the minimum", ms(9, 8, 7), 0.001, 7 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	in := []time.Duration{3, 1, 2}
	percentile(in, 50)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("percentile reordered its input: %v", in)
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		a, b, want float64
	}{
		{700, 1000, 0.7},
		{1500, 1000, 1.5},
		{0, 1000, 0},
		{1000, 0, 0},  // no baseline: no ratio, not +Inf
		{1000, -1, 0}, // nonsense baseline likewise
	}
	for _, tt := range tests {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSampleAddRateAndCPU(t *testing.T) {
	var s sample
	s.add(sample{events: 100, requests: 1, elapsed: time.Second, cpu: 10 * time.Millisecond, latencies: []time.Duration{time.Second}})
	s.add(sample{events: 300, requests: 3, elapsed: time.Second, cpu: 30 * time.Millisecond, latencies: []time.Duration{1, 2, 3}})
	if s.events != 400 || s.requests != 4 || len(s.latencies) != 4 {
		t.Fatalf("after two slices: %d events, %d requests, %d latencies; want 400, 4, 4", s.events, s.requests, len(s.latencies))
	}
	if got := s.rate(); got != 200 {
		t.Errorf("rate = %v events/s, want 200 (400 events in 2 s)", got)
	}
	if got := s.cpuPerEvent(); got != 100*time.Microsecond {
		t.Errorf("cpuPerEvent = %v, want 100µs (40 ms over 400 events)", got)
	}
	var empty sample
	if empty.rate() != 0 || empty.cpuPerEvent() != 0 {
		t.Errorf("an empty sample has rate %v and CPU/event %v, want 0 and 0", empty.rate(), empty.cpuPerEvent())
	}
}

func TestWaitSharesAndBusySessions(t *testing.T) {
	var s sample
	s.add(sample{polls: 2, waits: map[string]int{"CPU": 2, "IO:WALSync": 1}})
	s.add(sample{polls: 2, waits: map[string]int{"Lock:transactionid": 3, "IO:WALSync": 2}})
	if got := s.busySessions(); got != 2 {
		t.Errorf("busySessions = %v, want 2 (8 busy sightings over 4 polls)", got)
	}
	got := waitShares(s.waits)
	want := []waitShare{{"IO:WALSync", 3.0 / 8}, {"Lock:transactionid", 3.0 / 8}, {"CPU", 2.0 / 8}}
	if len(got) != len(want) {
		t.Fatalf("waitShares = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("waitShares[%d] = %v, want %v (by falling share, ties by name)", i, got[i], want[i])
		}
	}
	var none sample
	if none.busySessions() != 0 || len(waitShares(none.waits)) != 0 {
		t.Errorf("an empty sample has busy sessions %v and waits %v", none.busySessions(), waitShares(none.waits))
	}
}
