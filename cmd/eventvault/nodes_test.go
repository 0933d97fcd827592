package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// node is a real eventvault server process.
type node struct {
	cmd  *exec.Cmd
	base string
	// metrics is where it serves /metrics (host:port), with -metrics-listen.
	metrics string
}

var (
	listeningRE = regexp.MustCompile(`EventVault listening on (http://\S+)`)
	metricsRE   = regexp.MustCompile(`^  metrics:  http://(\S+)/metrics$`)
)

// buildServer compiles the command once per test.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eventvault")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build eventvault: %v\n%s", err, out)
	}
	return bin
}

// startNode runs `eventvault server -dev` on PostgreSQL, sharing dataDir (and
// so the root key) with the other nodes.
func startNode(t *testing.T, bin, dbURL, dataDir, rootToken string) *node {
	t.Helper()
	return startProcess(t, bin, []string{"EVENTVAULT_DEV_ROOT_TOKEN=" + rootToken},
		"server", "-dev", "-listen", "127.0.0.1:0", "-data-dir", dataDir, "-database-url", dbURL)
}

// startProcess runs bin with args and env added to the test's, and waits
// until it says where it listens.
func startProcess(t *testing.T, bin string, env []string, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stderr = &syncWriter{w: &logs}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait() // the process has stopped writing to logs
		if t.Failed() {
			t.Logf("log of node %s:\n%s", cmd.Path, logs.String())
		}
	})
	// The banner: the listening line, the store's, the root key's and,
	// with -metrics-listen, the metrics line.
	wantMetrics := slices.Contains(args, "-metrics-listen")
	found := make(chan *node, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var n *node
		for sc.Scan() {
			line := sc.Text()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				n = &node{cmd: cmd, base: m[1]}
			}
			if n == nil {
				continue
			}
			if m := metricsRE.FindStringSubmatch(line); m != nil {
				n.metrics = m[1]
				found <- n
			} else if strings.HasPrefix(line, "  root key: ") && !wantMetrics {
				found <- n
			}
		}
	}()
	select {
	case n := <-found:
		return n
	case <-time.After(60 * time.Second):
		t.Fatal("node did not start listening within 60 s")
	}
	return nil
}

// TestShredOnOneNodeIsHonouredByAnotherAtOnce runs two server processes on
// one PostgreSQL. Both have read the stream, so both hold its key in their
// caches; after a shred on the first, the second's very next read must not
// return the data, nor may it take an append.
func TestShredOnOneNodeIsHonouredByAnotherAtOnce(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir := t.TempDir()
	const root = "two-nodes-root"
	first := startNode(t, bin, dbURL, dataDir, root)
	second := startNode(t, bin, dbURL, dataDir, root)

	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{"secret":"s-1"}},{"id":%q,"type":"Noted","data":{"secret":"s-2"}}]}`, uuid.NewString(), uuid.NewString())
	if code, b := call(t, "POST", first.base+"/v1/streams/note-1/events", root, body); code != 201 {
		t.Fatalf("append on the first node: %d %s", code, b)
	}
	for _, n := range []*node{first, second} {
		if code, b := call(t, "GET", n.base+"/v1/streams/note-1/events", root, ""); code != 200 || !strings.Contains(b, "s-2") {
			t.Fatalf("warm read on %s: %d %s", n.base, code, b)
		}
		// Read all twice: the second page is opened with the cipher the
		// first checked at the tenant's key epoch, without the keys.
		for range 2 {
			if code, b := call(t, "GET", n.base+"/v1/events", root, ""); code != 200 || !strings.Contains(b, "s-2") {
				t.Fatalf("warm read-all on %s: %d %s", n.base, code, b)
			}
		}
	}

	if code, b := call(t, "DELETE", first.base+"/v1/streams/note-1", root, ""); code != 200 {
		t.Fatalf("shred on the first node: %d %s", code, b)
	}

	code, b := call(t, "GET", second.base+"/v1/events", root, "")
	if code != 200 || strings.Contains(b, "s-1") || strings.Contains(b, "s-2") {
		t.Fatalf("the second node's first read-all after the shred: %d %s; want the events erased", code, b)
	}
	code, b = call(t, "GET", second.base+"/v1/streams/note-1/events", root, "")
	if code != 410 || strings.Contains(b, "s-1") || !strings.Contains(b, "erased_at") {
		t.Fatalf("the second node's next read after the shred: %d %s; want 410 with erased_at and no data", code, b)
	}
	append2 := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{}}]}`, uuid.NewString())
	if code, b := call(t, "POST", second.base+"/v1/streams/note-1/events", root, append2); code != 409 {
		t.Fatalf("append on the second node after the shred: %d %s; want 409", code, b)
	}
	code, b = call(t, "GET", second.base+"/v1/events", root, "")
	var all struct {
		Events []struct {
			Stream string          `json:"stream"`
			Erased bool            `json:"erased"`
			Data   json.RawMessage `json:"data"`
		} `json:"events"`
	}
	// The two erased envelopes, then the shred's tombstone.
	if err := json.Unmarshal([]byte(b), &all); code != 200 || err != nil || len(all.Events) != 3 || !all.Events[0].Erased || all.Events[1].Data != nil ||
		all.Events[2].Stream != "eventvault-tombstones" {
		t.Fatalf("read-all on the second node: %d %s", code, b)
	}
}
