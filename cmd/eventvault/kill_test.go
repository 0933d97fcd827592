package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// killAppend is one append request of TestKilledServerLosesNoAcknowledgedAppend
// and what became of it.
type killAppend struct {
	stream string
	ids    []string
	// acked is whether the server answered 201; positions are then the
	// stream and global positions it gave, per event.
	acked     bool
	positions [][2]int64
}

// TestKilledServerLosesNoAcknowledgedAppend kills a server process on
// PostgreSQL (SIGKILL, no shutdown) while clients append to it through
// its group commits, single events and batches of 5 and 20, some to streams
// of their own at an exact expected version and some to shared streams at
// "any". Before the kill, the server's own /metrics must show groups that
// carried more than one append, so that the kill lands among grouped
// commits. An append the server answers 503 (too busy to start it) is
// sent again, as a client would. A second server process then reads
// everything back, and:
//
//   - every acknowledged append is there, at the positions it was
//     acknowledged with, with its data;
//   - every append, acknowledged or cut off by the kill, is there whole or
//     not at all;
//   - global positions and every stream's positions have no gap, and no id
//     is there twice;
//   - the tenant's audit log verifies ('audit export', 'audit verify'), and
//     each stream's append records cover its positions exactly: an append
//     written has its record, and no record tells of one that is not;
//   - every stream takes its next append at the version read;
//   - PostgreSQL detected no deadlock among the appends.
func TestKilledServerLosesNoAcknowledgedAppend(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir := t.TempDir()
	const root = "kill-root"
	storeArgs := []string{"-dev", "-data-dir", dataDir, "-database-url", dbURL}
	first := startProcess(t, bin, []string{"EVENTVAULT_DEV_ROOT_TOKEN=" + root},
		append([]string{"server", "-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0"}, storeArgs...)...)
	if first.metrics == "" {
		t.Fatal("the server printed no metrics address with -metrics-listen")
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	post := func(base, stream, body string) (int, []byte, error) {
		req, err := http.NewRequest("POST", base+"/v1/streams/"+stream+"/events", strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+root)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	const writers = 16
	var (
		mu      sync.Mutex
		appends []*killAppend
		acked   int
		wg      sync.WaitGroup
	)
	// busy counts the 503s answered before the kill; past maxBusy, a
	// 503 fails the test.
	var busy atomic.Int64
	const maxBusy = 50
	killed := make(chan struct{})
	for w := range writers {
		stream, expected := fmt.Sprintf("kill-%d", w), "version"
		if w >= 12 {
			stream, expected = fmt.Sprintf("kill-shared-%d", w%2), "any"
		}
		size := []int{1, 1, 5, 20}[w%4]
		wg.Go(func() {
			version := int64(-1) // no_stream; a stream's first event is at 0
			for n := 0; ; n++ {
				a := &killAppend{stream: stream}
				var events []string
				for i := range size {
					id := uuid.NewString()
					a.ids = append(a.ids, id)
					events = append(events, fmt.Sprintf(`{"id":%q,"type":"Noted","data":{"writer":%d,"n":%d,"i":%d}}`, id, w, n, i))
				}
				ev := `"any"`
				if expected == "version" {
					ev = strconv.FormatInt(version, 10)
					if version < 0 {
						ev = `"no_stream"`
					}
				}
				body := `{"expected_version":` + ev + `,"events":[` + strings.Join(events, ",") + `]}`
				mu.Lock()
				appends = append(appends, a)
				mu.Unlock()
				code, b, err := post(first.base, stream, body)
				for code == http.StatusServiceUnavailable && busy.Add(1) <= maxBusy {
					// The server was too busy to start the append (its
					// pool, its admission) and says to retry: the same
					// body again, which replays if it was written.
					time.Sleep(50 * time.Millisecond)
					code, b, err = post(first.base, stream, body)
				}
				if err != nil {
					select {
					case <-killed:
						return // cut off by the kill: outcome unknown
					default:
						t.Errorf("append to %s before the kill: %v", stream, err)
						return
					}
				}
				if code != http.StatusCreated {
					t.Errorf("append to %s: %d %s; want 201", stream, code, b)
					return
				}
				var out struct {
					Version int64 `json:"version"`
					Events  []struct {
						Position       int64 `json:"position"`
						GlobalPosition int64 `json:"global_position"`
					} `json:"events"`
				}
				if err := json.Unmarshal(b, &out); err != nil || len(out.Events) != size {
					t.Errorf("append to %s: %s: %v", stream, b, err)
					return
				}
				mu.Lock()
				a.acked = true
				for _, e := range out.Events {
					a.positions = append(a.positions, [2]int64{e.Position, e.GlobalPosition})
				}
				acked++
				mu.Unlock()
				version = out.Version
			}
		})
	}

	// Kill once groups have carried more than one append and enough
	// appends are acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		groups, grouped := groupCommits(t, first.metrics)
		if n >= 300 && grouped > groups {
			t.Logf("killing the server after %d acknowledged appends (%d answers of 503 sent again); %d group commits carried %d appends", n, busy.Load(), groups, grouped)
			break
		}
		if time.Now().After(deadline) || t.Failed() {
			close(killed)
			_ = first.cmd.Process.Kill()
			wg.Wait()
			t.Fatalf("after 60 s: %d appends acknowledged, %d group commits carrying %d appends; want 300 and groups of more than one", n, groups, grouped)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(killed)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill the server: %v", err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// PostgreSQL broke no deadlock among the appends: one would have
	// stalled every append of the tenant for deadlock_timeout (1 s) and
	// been retried unseen.
	if deadlocks := pgtest.Deadlocks(t, dbURL); deadlocks != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks among the appends; want none", deadlocks)
	}

	second := startNode(t, bin, dbURL, dataDir, root)
	type readEvent struct {
		ID             string          `json:"id"`
		Stream         string          `json:"stream"`
		Position       int64           `json:"position"`
		GlobalPosition int64           `json:"global_position"`
		Data           json.RawMessage `json:"data"`
	}
	var all []readEvent
	for from := int64(0); ; {
		code, b := call(t, "GET", fmt.Sprintf("%s/v1/events?from=%d&limit=1000", second.base, from), root, "")
		var page struct {
			Events []readEvent `json:"events"`
			Next   int64       `json:"next"`
		}
		if err := json.Unmarshal([]byte(b), &page); code != http.StatusOK || err != nil {
			t.Fatalf("read all from %d on the second node: %d %s", from, code, b)
		}
		if len(page.Events) == 0 {
			break
		}
		all = append(all, page.Events...)
		from = page.Next
	}

	byID := make(map[string]readEvent, len(all))
	versions := map[string]int64{} // a stream's version: its last position, from 0
	for i, e := range all {
		if _, dup := byID[e.ID]; dup {
			t.Errorf("event %s is there twice", e.ID)
		}
		byID[e.ID] = e
		if want := int64(i); e.GlobalPosition != want { // the tenant's first event is at 0
			t.Fatalf("global position %d where %d comes next: a gap", e.GlobalPosition, want)
		}
		if v, ok := versions[e.Stream]; (ok && e.Position != v+1) || (!ok && e.Position != 0) {
			t.Fatalf("%s: position %d after %d events: a gap", e.Stream, e.Position, v+1)
		}
		versions[e.Stream] = e.Position
	}
	var lost, whole, none int
	for _, a := range appends {
		present := 0
		for i, id := range a.ids {
			e, ok := byID[id]
			if !ok {
				continue
			}
			present++
			if e.Stream != a.stream || !bytes.Contains(e.Data, []byte(fmt.Sprintf(`"i":%d`, i))) {
				t.Errorf("event %s of an append to %s read as %s with %s", id, a.stream, e.Stream, e.Data)
			}
			if a.acked && (e.Position != a.positions[i][0] || e.GlobalPosition != a.positions[i][1]) {
				t.Errorf("acknowledged event %s at %v read at (%d, %d)", id, a.positions[i], e.Position, e.GlobalPosition)
			}
		}
		switch {
		case a.acked && present != len(a.ids):
			lost++
			t.Errorf("an acknowledged append to %s has %d of its %d events", a.stream, present, len(a.ids))
		case present == len(a.ids):
			whole++
		case present == 0:
			none++
		default:
			t.Errorf("an append to %s cut off by the kill has %d of its %d events: half-written", a.stream, present, len(a.ids))
		}
	}
	if len(all) == 0 || whole == 0 {
		t.Fatalf("nothing read back (%d events)", len(all))
	}
	t.Logf("%d appends: %d acknowledged, %d there whole, %d not there; %d events", len(appends), acked, whole, none, len(all))

	checkAppendRecords(t, storeArgs, versions)

	// Every stream takes its next append at the version read.
	for stream, v := range versions {
		body := fmt.Sprintf(`{"expected_version":%d,"events":[{"id":%q,"type":"Noted","data":{}}]}`, v, uuid.NewString())
		if code, b, err := post(second.base, stream, body); err != nil || code != http.StatusCreated {
			t.Errorf("append to %s at version %d after the restart: %d %s %v", stream, v, code, b, err)
		}
	}
}

// groupCommits scrapes metrics (host:port) for the PostgreSQL store's group
// commits so far and the appends they carried.
func groupCommits(t *testing.T, metrics string) (groups, appends int64) {
	t.Helper()
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", metrics, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "eventvault_append_group_appends_count":
			groups, _ = strconv.ParseInt(value, 10, 64)
		case "eventvault_append_group_appends_sum":
			f, _ := strconv.ParseFloat(value, 64)
			appends = int64(f)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", metrics, err)
	}
	return groups, appends
}

// checkAppendRecords exports the dev tenant's audit log with the operator's
// commands, verifies it, and checks that each stream's append records
// cover positions 0 to its version (versions) exactly once.
func checkAppendRecords(t *testing.T, storeArgs []string, versions map[string]int64) {
	t.Helper()
	bundle := exportAndVerifyAudit(t, string(DevTenant), storeArgs)
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	covered := map[string]int64{} // the last position covered; absent: none
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	records := 0
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte(`"action":"append"`)) {
			continue
		}
		var line struct {
			Type   string `json:"type"`
			Record struct {
				Action   string `json:"action"`
				Resource string `json:"resource"`
				Detail   struct {
					First int64 `json:"first_position"`
					Last  int64 `json:"last_position"`
				} `json:"detail"`
			} `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Type != "record" || line.Record.Action != "append" {
			t.Fatalf("append record %s: %v", sc.Bytes(), err)
		}
		rec := line.Record
		stream := strings.TrimPrefix(rec.Resource, "stream:")
		last, ok := covered[stream]
		if !ok {
			last = -1
		}
		if rec.Detail.First != last+1 || rec.Detail.Last < rec.Detail.First {
			t.Errorf("append record of %s for positions %d-%d after %d", stream, rec.Detail.First, rec.Detail.Last, last)
		}
		covered[stream] = rec.Detail.Last
		records++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for stream, v := range versions {
		if last, ok := covered[stream]; !ok || last != v {
			t.Errorf("%s: append records cover positions up to %d (%v), the stream is at %d", stream, last, ok, v)
		}
	}
	for stream := range covered {
		if _, ok := versions[stream]; !ok {
			t.Errorf("append records for %s, which has no events", stream)
		}
	}
	if records == 0 {
		t.Fatal("no append record in the exported log")
	}
}
