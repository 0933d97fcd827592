package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/engine"
)

// feedResult is what the feed measures (issue 14): how long a committed
// event takes to reach an SSE client, through the node that committed it
// and through another node, and what idle subscribers cost.
type feedResult struct {
	Samples int `json:"samples"`
	// SameNode: appended and subscribed on one node (woken in-process).
	SameNode latency `json:"same_node"`
	// OtherNode: appended on the second node, subscribed on the first
	// (found by the shared reader's poll, engine.DefaultFeedPoll).
	OtherNode latency `json:"other_node"`
	// IdleSubscribers SSE connections held open on one node.
	IdleSubscribers int `json:"idle_subscribers"`
	// HeapBytesPerSubscriber is this process's live heap growth per idle
	// subscriber, after a GC: the server's side of the connection and the
	// client's, both in this process, so an upper bound of the server's.
	HeapBytesPerSubscriber float64 `json:"heap_bytes_per_subscriber"`
	// GoroutinesPerSubscriber likewise counts both sides.
	GoroutinesPerSubscriber float64 `json:"goroutines_per_subscriber"`
	// FanoutAppends events appended one by one while IdleSubscribers
	// listened; Delivered messages reached them; StoreReads is how many
	// read-all queries the node's shared reader made meanwhile (one
	// reader, not one per subscriber per event).
	FanoutAppends int   `json:"fanout_appends"`
	Delivered     int64 `json:"delivered"`
	StoreReads    int64 `json:"store_reads"`
}

// latency is from the append request's start to the SSE client holding
// the event (EndToEnd, commit included), and from the append's 201 (the
// commit acknowledged) to the same moment (AfterCommit, 0 when the event
// arrived first).
type latency struct {
	EndToEndP50Ms    float64 `json:"end_to_end_p50_ms"`
	EndToEndP99Ms    float64 `json:"end_to_end_p99_ms"`
	AfterCommitP50Ms float64 `json:"after_commit_p50_ms"`
	AfterCommitP99Ms float64 `json:"after_commit_p99_ms"`
}

// sseArrivals reads an SSE body and reports each event id's arrival time.
func sseArrivals(body io.Reader, arrived func(id string, at time.Time)) {
	// A small first buffer: the client's share of the per-subscriber
	// memory the bench reports.
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 1<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") {
			at := time.Now()
			// The event id is the first field of the event's JSON.
			if i := strings.Index(line, `"id":"`); i >= 0 && len(line) >= i+6+36 {
				arrived(line[i+6:i+6+36], at)
			}
		}
	}
}

func openSSE(ctx context.Context, client *http.Client, base, token, query string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/subscribe"+query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("subscribe: %s", resp.Status)
	}
	return resp, nil
}

func appendOneEvent(ctx context.Context, client *http.Client, base, token, stream, id string) error {
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Ticked","data":{"n":1}}]}`, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/streams/"+stream+"/events", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("append: %s", resp.Status)
	}
	return nil
}

// measureLatency appends samples events one at a time on appendBase and
// times their arrival at one SSE client on subBase.
func measureLatency(ctx context.Context, client *http.Client, subBase, appendBase, token, category string, samples int) (latency, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := openSSE(sctx, client, subBase, token, "?from=end&categories="+category)
	if err != nil {
		return latency{}, err
	}
	defer resp.Body.Close()
	arrivals := make(chan time.Time, 1)
	var want atomic.Value
	go sseArrivals(resp.Body, func(id string, at time.Time) {
		if w, _ := want.Load().(string); w == id {
			arrivals <- at
		}
	})
	var e2e, after []time.Duration
	for i := range samples {
		id := uuid.NewString()
		want.Store(id)
		start := time.Now()
		if err := appendOneEvent(ctx, client, appendBase, token, fmt.Sprintf("%s-%d", category, i%10), id); err != nil {
			return latency{}, err
		}
		committed := time.Now()
		select {
		case at := <-arrivals:
			e2e = append(e2e, at.Sub(start))
			after = append(after, max(0, at.Sub(committed)))
		case <-time.After(10 * time.Second):
			return latency{}, fmt.Errorf("event %d did not reach the SSE client within 10 s", i)
		}
		time.Sleep(2 * time.Millisecond) // the feed idle again
	}
	return latency{EndToEndP50Ms: ms(percentile(e2e, 50)), EndToEndP99Ms: ms(percentile(e2e, 99)),
		AfterCommitP50Ms: ms(percentile(after, 50)), AfterCommitP99Ms: ms(percentile(after, 99))}, nil
}

// benchFeed measures the feed on ev (and quiet, a second node on the
// same database).
func benchFeed(ctx context.Context, ev, quiet *evServer, feed *engine.Feed, token string, samples, idle int, say func(string, ...any)) (feedResult, error) {
	client := newHTTPClient(idle + 16)
	client.Timeout = 0 // streams
	defer client.CloseIdleConnections()
	res := feedResult{Samples: samples, IdleSubscribers: idle}
	var err error
	if res.SameNode, err = measureLatency(ctx, client, ev.baseURL(), ev.baseURL(), token, "feedsame", samples); err != nil {
		return res, fmt.Errorf("feed latency on one node: %w", err)
	}
	if res.OtherNode, err = measureLatency(ctx, client, ev.baseURL(), quiet.baseURL(), token, "feedother", samples/3); err != nil {
		return res, fmt.Errorf("feed latency across nodes: %w", err)
	}
	say("feed: delivery p50/p99 %.2f/%.2f ms on one node, %.1f/%.1f ms across nodes; opening %d idle subscribers",
		res.SameNode.EndToEndP50Ms, res.SameNode.EndToEndP99Ms, res.OtherNode.EndToEndP50Ms, res.OtherNode.EndToEndP99Ms, idle)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range idle {
		resp, err := openSSE(sctx, client, ev.baseURL(), token, "?from=end&categories=fanout&heartbeat=60")
		if err != nil {
			return res, fmt.Errorf("idle subscriber: %w", err)
		}
		wg.Go(func() {
			defer resp.Body.Close()
			sseArrivals(resp.Body, func(string, time.Time) { delivered.Add(1) })
		})
	}
	time.Sleep(time.Second)
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	res.HeapBytesPerSubscriber = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(idle)
	res.GoroutinesPerSubscriber = float64(runtime.NumGoroutine()-g0) / float64(idle)

	res.FanoutAppends = 20
	reads := feed.SharedReads()
	for range res.FanoutAppends {
		if err := appendOneEvent(ctx, client, ev.baseURL(), token, "fanout-1", uuid.NewString()); err != nil {
			return res, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for delivered.Load() < int64(idle*res.FanoutAppends) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	res.Delivered = delivered.Load()
	res.StoreReads = feed.SharedReads() - reads
	say("feed: %d idle subscribers, %.0f heap bytes and %.1f goroutines each; %d appends delivered %d times with %d store reads",
		idle, res.HeapBytesPerSubscriber, res.GoroutinesPerSubscriber, res.FanoutAppends, res.Delivered, res.StoreReads)
	return res, nil
}
