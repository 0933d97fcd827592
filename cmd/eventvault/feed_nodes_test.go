package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// feedReader reads a feed of a real server: the id and event id of each
// message, in order.
type feedReader struct {
	cancel context.CancelFunc
	msgs   chan feedMsg
}

type feedMsg struct {
	pos int64
	id  string
}

func openNodeFeed(t *testing.T, base, token string, from int64) *feedReader {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/subscribe?from=%d&categories=acct", base, from), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open feed on %s: %v %v", base, err, resp)
	}
	f := &feedReader{cancel: cancel, msgs: make(chan feedMsg, 1024)}
	go func() {
		defer resp.Body.Close()
		defer close(f.msgs)
		sc := bufio.NewScanner(resp.Body)
		var m feedMsg
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				m.pos, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "data: "):
				var ev struct {
					ID string `json:"id"`
				}
				_ = json.Unmarshal([]byte(line[6:]), &ev)
				m.id = ev.ID
			case line == "" && m.id != "":
				f.msgs <- m
				m = feedMsg{}
			}
		}
	}()
	return f
}

func (f *feedReader) next(t *testing.T) feedMsg {
	t.Helper()
	select {
	case m, ok := <-f.msgs:
		if !ok {
			t.Fatal("the feed ended")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no event from the feed within 20 s")
	}
	return feedMsg{}
}

// TestFeedSkipsNothingAcrossTwoNodes: 8 writers on 2 server processes over
// one PostgreSQL, and a subscriber on the feed of one of them that checks
// it sees every committed event exactly once, in global order (positions
// without gap or repeat, and every event id a writer got a 201 for). The
// subscriber acknowledges as it goes, is killed mid-stream, and a new one
// resumes from the consumer's checkpoint on the other node.
func TestFeedSkipsNothingAcrossTwoNodes(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir := t.TempDir()
	const root = "feed-nodes-root"
	nodes := []*node{startNode(t, bin, dbURL, dataDir, root), startNode(t, bin, dbURL, dataDir, root)}
	if code, b := call(t, "PUT", nodes[0].base+"/v1/subscriptions/ledger", root, `{"filter":{"categories":["acct"]}}`); code != 201 {
		t.Fatalf("register consumer: %d %s", code, b)
	}

	const writers, appends = 8, 25
	var mu sync.Mutex
	written := map[string]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		base := nodes[w%2].base
		wg.Go(func() {
			for i := range appends {
				ids := []string{uuid.NewString(), uuid.NewString()}[:1+i%2]
				var evs []string
				for _, id := range ids {
					evs = append(evs, fmt.Sprintf(`{"id":%q,"type":"Posted","data":{"w":%d,"i":%d}}`, id, w, i))
				}
				req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1/streams/acct-%d/events", base, w), strings.NewReader(`{"events":[`+strings.Join(evs, ",")+`]}`))
				req.Header.Set("Authorization", "Bearer "+root)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("writer %d append %d: %d", w, i, resp.StatusCode)
					return
				}
				mu.Lock()
				for _, id := range ids {
					written[id] = true
				}
				mu.Unlock()
			}
		})
	}
	// 8 writers x 25 appends of 1 or 2 events: 8 x (13 + 12 x 2) = 296.
	const total = writers * (appends/2 + 1 + appends/2*2)

	seen := map[string]int64{}
	first := openNodeFeed(t, nodes[1].base, root, 0)
	var pos int64
	var acked int64 = -1
	for ; pos < total/2; pos++ {
		m := first.next(t)
		if m.pos != pos {
			t.Fatalf("the first subscriber got position %d after %d: every committed event once, in global order", m.pos, pos-1)
		}
		seen[m.id] = m.pos
		if pos%10 == 9 {
			if code, b := call(t, "POST", nodes[pos%2].base+"/v1/subscriptions/ledger/ack", root, fmt.Sprintf(`{"position":%d}`, pos)); code != 200 {
				t.Fatalf("ack %d: %d %s", pos, code, b)
			}
			acked = pos
		}
	}
	first.cancel() // killed mid-stream, with writers still writing

	code, b := call(t, "GET", nodes[0].base+"/v1/subscriptions/ledger", root, "")
	var consumer struct {
		Checkpoint int64 `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(b), &consumer); code != 200 || err != nil || consumer.Checkpoint != acked+1 {
		t.Fatalf("consumer after the kill: %d %s; want checkpoint %d", code, b, acked+1)
	}
	second := openNodeFeed(t, nodes[0].base, root, consumer.Checkpoint)
	for pos = consumer.Checkpoint; pos < total; pos++ {
		m := second.next(t)
		if m.pos != pos {
			t.Fatalf("the resumed subscriber got position %d, want %d", m.pos, pos)
		}
		if at, ok := seen[m.id]; ok && at != m.pos {
			t.Fatalf("event %s came at %d and at %d", m.id, at, m.pos)
		}
		seen[m.id] = m.pos
	}
	wg.Wait()
	second.cancel()
	if len(written) != total || len(seen) != total {
		t.Fatalf("%d events written, %d seen; want %d of each", len(written), len(seen), total)
	}
	for id := range written {
		if _, ok := seen[id]; !ok {
			t.Fatalf("event %s was committed and never reached the feed", id)
		}
	}
}
