package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/google/uuid"
)

// benchEvent is an event both sides write: the same id, type and data.
type benchEvent struct {
	ID   uuid.UUID
	Type string
	Data []byte // a JSON object
}

// eventType is the type of every benchmark event.
const eventType = "BenchEvent"

// target is one side of the comparison: EventVault over HTTP, or the plain
// table over pgx. Each call is one request (one commit for an append).
type target interface {
	// append writes events to stream, whose next position is first (the
	// caller is the stream's only writer), and returns their global
	// positions.
	append(ctx context.Context, stream string, first int64, events []benchEvent) ([]int64, error)
	// readStream reads up to limit events of stream from position from and
	// returns how many it got.
	readStream(ctx context.Context, stream string, from int64, limit int) (int, error)
	// readAll reads up to limit events from global position from and
	// returns how many it got and the global position of the last.
	readAll(ctx context.Context, from int64, limit int) (n int, last int64, err error)
}

// op is one request of one worker; it returns the events written or read.
type op func(ctx context.Context) (int, error)

// workload is one of the four.
type workload struct {
	key   string
	title string
	// goal is the least EventVault/raw ratio the issue asks for.
	goal float64
	// clients and perRequest read the Config.
	clients    func(Config) int
	perRequest func(Config) int
	// workers returns one op per client, against t. Workers keep their
	// state (a stream's next position, a reader's place) across slices.
	workers func(t target, c Config, s *prepared) []op
	// goals are the ratios between sides the issue asks for; the first
	// is goal's.
	goals []goal
}

// goal asks that side of's figure over side over's be at least goal (at
// most, for atMost, which compares p99 latencies); goal 0 reports the
// ratio without a goal.
type goal struct {
	of, over string
	goal     float64
	atMost   bool
}

// prepared is what was written before the rounds, per side.
type prepared struct {
	logFirst, logLast int64 // global positions of the log read-all walks
}

// readStreamName is the stream the stream read reads.
const readStreamName = "read-0"

var workloads = []workload{
	{
		key: "append", title: "append, 1 event/request", goal: 1.0,
		goals: []goal{
			{of: sideEventVault, over: sideRaw, goal: 1.0},
			{of: sideEventVault, over: sideMessageDB, goal: 1.5},
			{of: sideEventVault, over: sideRaw, goal: 2.0, atMost: true},
			// Issue 12: auditing costs at most a tenth of the appends.
			{of: sideEventVault, over: sideNoAudit, goal: 0.9},
		},
		clients:    func(c Config) int { return c.AppendClients },
		perRequest: func(Config) int { return 1 },
		workers: func(t target, c Config, _ *prepared) []op {
			return appenders(t, c, "one", c.AppendClients, 1)
		},
	},
	{
		key: "append_batch", title: "append, batch/request", goal: 0,
		goals: []goal{
			{of: sideEventVault, over: sideRaw},
			{of: sideEventVault, over: sideRawCopy, goal: 0.5},
			{of: sideStore, over: sideRawCopy, goal: 0.9},
		},
		clients:    func(c Config) int { return c.BatchClients },
		perRequest: func(c Config) int { return c.BatchSize },
		workers: func(t target, c Config, _ *prepared) []op {
			return appenders(t, c, "batch", c.BatchClients, c.BatchSize)
		},
	},
	{
		key: "read_stream", title: "read a stream from the start", goal: 0.60,
		goals: []goal{
			{of: sideEventVault, over: sideRaw, goal: 0.6},
			{of: sideEventVault, over: sideMessageDB, goal: 1.0},
		},
		clients:    func(c Config) int { return c.StreamReaders },
		perRequest: func(c Config) int { return c.StreamEvents },
		workers: func(t target, c Config, _ *prepared) []op {
			return streamReaders(t, c, readStreamName)
		},
	},
	{
		key: "read_all", title: "read all by global position", goal: 0.60,
		goals: []goal{
			{of: sideEventVault, over: sideRaw, goal: 0.6},
			{of: sideEventVault, over: sideMessageDB, goal: 1.0},
		},
		clients:    func(c Config) int { return c.AllReaders },
		perRequest: func(c Config) int { return c.PageSize },
		workers: func(t target, c Config, s *prepared) []op {
			ops := make([]op, c.AllReaders)
			for i := range ops {
				from := s.logFirst
				ops[i] = func(ctx context.Context) (int, error) {
					n, last, err := t.readAll(ctx, from, c.PageSize)
					if err != nil {
						return 0, err
					}
					if n == 0 || last >= s.logLast {
						from = s.logFirst // walk the log again
					} else {
						from = last + 1
					}
					return n, nil
				}
			}
			return ops
		},
	},
	piiWorkload,
}

func workloadByKey(key string) (workload, bool) {
	i := slices.IndexFunc(workloads, func(w workload) bool { return w.key == key })
	if i < 0 {
		return workload{}, false
	}
	return workloads[i], true
}

// appenders returns n workers, each appending batches of size events to a
// stream of its own (prefix-w<i>) with expected version any.
func appenders(t target, c Config, prefix string, n, size int) []op {
	ops := make([]op, n)
	for i := range ops {
		stream := prefix + "-w" + strconv.Itoa(i)
		data := newData(c.EventSize, uint64(i))
		var next int64
		ops[i] = func(ctx context.Context) (int, error) {
			events := newEvents(size, data)
			if _, err := t.append(ctx, stream, next, events); err != nil {
				return 0, err
			}
			next += int64(size)
			return size, nil
		}
	}
	return ops
}

// newEvents returns n events with fresh ids and the given data.
func newEvents(n int, data []byte) []benchEvent {
	evs := make([]benchEvent, n)
	for i := range evs {
		evs[i] = benchEvent{ID: uuid.New(), Type: eventType, Data: data}
	}
	return evs
}

// minEventSize is the size of the smallest object newData writes.
const minEventSize = len(`{"pad":""}`)

// newData returns a JSON object of exactly size bytes (at least
// minEventSize): {"pad":"<letters>"}, the letters random from seed, so that
// nothing compresses them away.
func newData(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x65766265))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := append(make([]byte, 0, size), `{"pad":"`...)
	for len(b) < size-2 {
		b = append(b, letters[r.IntN(len(letters))])
	}
	return append(b, `"}`...)
}

// streamReaders are c.StreamReaders ops, each reading stream whole from
// its start (c.StreamEvents events) per request.
func streamReaders(t target, c Config, stream string) []op {
	ops := make([]op, c.StreamReaders)
	for i := range ops {
		ops[i] = func(ctx context.Context) (int, error) {
			n, err := t.readStream(ctx, stream, 0, c.StreamEvents)
			if err == nil && n != c.StreamEvents {
				err = fmt.Errorf("read %s: %d events, want %d", stream, n, c.StreamEvents)
			}
			return n, err
		}
	}
	return ops
}
