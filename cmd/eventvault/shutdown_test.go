package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownEndsFeedsAndLongPolls: a server with an open feed and a
// waiting long poll shuts down cleanly (Serve returns no error, where
// before it waited out its 10 s deadline and failed with "context deadline
// exceeded"): the feed's stream ends, and the long poll answers its empty
// page, at once.
func TestShutdownEndsFeedsAndLongPolls(t *testing.T) {
	s := startServer(t, "-dev")
	token := rootTokenRE.FindStringSubmatch(s.banner)[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	get := func(path string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return res
	}
	feed := get("/v1/subscribe?from=0&heartbeat=60")
	defer feed.Body.Close()
	if feed.StatusCode != http.StatusOK {
		t.Fatalf("feed: %d", feed.StatusCode)
	}
	lines := bufio.NewReader(feed.Body)
	if first, err := lines.ReadString('\n'); err != nil || !strings.HasPrefix(first, "retry:") {
		t.Fatalf("the feed's first line: %q, %v", first, err)
	}
	poll := make(chan *http.Response, 1)
	go func() { poll <- get("/v1/events?from=0&wait=30") }()
	time.Sleep(200 * time.Millisecond) // let the long poll start waiting

	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }() // stop reports an error of Serve
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not shut down")
	}
	rest, err := io.ReadAll(lines)
	if err != nil || strings.Contains(string(rest), "event: error") {
		t.Fatalf("the feed did not end cleanly: %q, %v", rest, err)
	}
	res := <-poll
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"events":[]`) {
		t.Fatalf("the long poll at shutdown: %d %s; want 200 with an empty page", res.StatusCode, body)
	}
}
