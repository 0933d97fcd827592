package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestPolicyChangeReachesTheOtherNodeWithinTheCacheBound runs two server
// processes on one PostgreSQL with -policy-cache-ttl 2s, both started with
// the same -policy-dir. The folder makes one version, not two. A token
// holding the document reads on both nodes (so both hold the document);
// a forbid written through the first takes effect there at once and on
// the second within the bound; deleting the document through the second
// leaves the first with nothing that permits, within the bound too.
func TestPolicyChangeReachesTheOtherNodeWithinTheCacheBound(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir, policyDir := t.TempDir(), t.TempDir()
	writePolicy(t, policyDir, "acme", "reader", `permit (principal, action in [Action::"append", Action::"read"], resource is Stream);`)
	const root = "two-nodes-root"
	const bound = 2 * time.Second
	t.Setenv("EVENTVAULT_POLICY_CACHE_TTL", bound.String())
	start := func() *node {
		return startProcess(t, bin, []string{"EVENTVAULT_DEV_ROOT_TOKEN=" + root},
			"server", "-dev", "-listen", "127.0.0.1:0", "-data-dir", dataDir, "-database-url", dbURL, "-policy-dir", policyDir)
	}
	first, second := start(), start()

	var doc struct{ Version int64 }
	code, b := call(t, "GET", second.base+"/v1/policies/reader?tenant=acme", root, "")
	if code != 200 || json.Unmarshal([]byte(b), &doc) != nil || doc.Version != 1 {
		t.Fatalf("the folder loaded by two nodes: %d %s; want version 1 only", code, b)
	}
	var tok struct{ Token string }
	code, b = call(t, "POST", first.base+"/v1/tokens", root, `{"tenant":"acme","name":"reader","policies":["reader"]}`)
	if code != 201 || json.Unmarshal([]byte(b), &tok) != nil {
		t.Fatalf("issue a token with the policy: %d %s", code, b)
	}
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{}}]}`, uuid.NewString())
	if code, b := call(t, "POST", first.base+"/v1/streams/note-1/events", tok.Token, body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	for _, n := range []*node{first, second} {
		if code, b := call(t, "GET", n.base+"/v1/streams/note-1/events", tok.Token, ""); code != 200 {
			t.Fatalf("warm read on %s: %d %s", n.base, code, b)
		}
	}

	forbid := `{"policy":"permit (principal, action in [Action::\"append\", Action::\"read\"], resource is Stream);\n@id(\"frozen\")\nforbid (principal, action == Action::\"read\", resource) when { resource.category == \"note\" };"}`
	changed := time.Now()
	if code, b := call(t, "PUT", first.base+"/v1/policies/reader?tenant=acme", root, forbid); code != 200 || !strings.Contains(b, `"version":2`) {
		t.Fatalf("change on the first node: %d %s", code, b)
	}
	if code, b := call(t, "GET", first.base+"/v1/streams/note-1/events", tok.Token, ""); code != 403 || !strings.Contains(b, "reader#frozen") {
		t.Fatalf("the first node right after the change: %d %s; want 403 naming reader#frozen", code, b)
	}
	took := waitForStatus(t, second.base+"/v1/streams/note-1/events", tok.Token, 403, bound+time.Second)
	t.Logf("the second node applied the change %s after it was made (bound %s)", took.Round(time.Millisecond), bound)
	if since := time.Since(changed); since > bound+time.Second {
		t.Fatalf("the change took %s to reach the second node; the bound is %s", since, bound)
	}

	if code, b := call(t, "DELETE", second.base+"/v1/policies/reader?tenant=acme", root, ""); code != 204 {
		t.Fatalf("delete on the second node: %d %s", code, b)
	}
	// The first node holds version 2 (the forbid) until the bound; then
	// the deletion leaves nothing that permits: deny by default.
	deleted := time.Now()
	for {
		code, b := call(t, "GET", first.base+"/v1/streams/note-1/events", tok.Token, "")
		if code == 403 && strings.Contains(b, "deny by default") {
			break
		}
		if code != 403 || time.Since(deleted) > bound+time.Second {
			t.Fatalf("the first node %s after the deletion: %d %s; want 403, deny by default", time.Since(deleted), code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForStatus polls GET url until it answers want, failing after within.
func waitForStatus(t *testing.T, url, token string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		code, b := call(t, "GET", url, token, "")
		if code == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("GET %s still answers %d %s after %s; want %d", url, code, b, time.Since(start), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
