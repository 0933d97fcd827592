package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestTenantShredCommand offboards a tenant from the command line, on
// PostgreSQL under a production server: it asks for confirmation (a wrong
// answer destroys nothing), prints the KEK versions it destroyed and the
// tokens it revoked; the server then reads nothing of the tenant and
// refuses its tokens; the other tenant is untouched.
func TestTenantShredCommand(t *testing.T) {
	url := pgtest.URL(t)
	rootFile := filepath.Join(t.TempDir(), "root.key")
	storeFlags := []string{"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootFile}
	for _, cmd := range [][]string{{"migrate", "-database-url", url}, append([]string{"init"}, storeFlags...)} {
		if code, stdout, stderr := runCLI(t, cmd...); code != 0 {
			t.Fatalf("eventvault %s: exit %d\n%s%s", cmd[0], code, stdout, stderr)
		}
	}
	prod := startServer(t, append([]string{"-token-cache-ttl", "0"}, storeFlags...)...)
	tokens := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		code, stdout, stderr := runCLI(t, append([]string{"token", "create", "-tenant", tenant, "-name", "app",
			"-rules", `[{"capabilities":["append","read"],"streams":"*"}]`}, storeFlags...)...)
		if code != 0 {
			t.Fatalf("token create: %d %s", code, stderr)
		}
		tokens[tenant] = strings.TrimSpace(stdout)
		body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{"secret":"s-%s"}}]}`, uuid.NewString(), tenant)
		if code, b := call(t, "POST", prod.base+"/v1/streams/note-1/events", tokens[tenant], body); code != 201 {
			t.Fatalf("append for %s: %d %s", tenant, code, b)
		}
	}

	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("globex\n")
	code, stdout, stderr := runCLI(t, append([]string{"tenant", "shred", "-tenant", "acme"}, storeFlags...)...)
	if code != 1 || !strings.Contains(stderr, "nothing was destroyed") || stdout != "" {
		t.Fatalf("a wrong confirmation: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/note-1/events", tokens["acme"], ""); code != 200 || !strings.Contains(b, "s-acme") {
		t.Fatalf("after a refused shred: %d %s", code, b)
	}

	stdin = strings.NewReader("acme\n")
	code, stdout, stderr = runCLI(t, append([]string{"tenant", "shred", "-tenant", "acme"}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, "tenant acme shredded") || !strings.Contains(stdout, "KEK versions destroyed: 1") || !strings.Contains(stdout, "tokens revoked: 1") {
		t.Fatalf("tenant shred: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/note-1/events", tokens["acme"], ""); code != 401 {
		t.Fatalf("acme's token after the shred: %d %s; want 401", code, b)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/note-1/events", tokens["globex"], ""); code != 200 || !strings.Contains(b, "s-globex") {
		t.Fatalf("globex after acme's shred: %d %s", code, b)
	}
	// No token is issued to acme afterwards.
	code, _, stderr = runCLI(t, append([]string{"token", "create", "-tenant", "acme", "-name", "after", "-rules", `[{"capabilities":["read"],"streams":"*"}]`}, storeFlags...)...)
	if code == 0 || !strings.Contains(stderr, "tenant acme was shredded") {
		t.Fatalf("token create after the shred: exit %d, stderr %s; want refused, saying the tenant was shredded", code, stderr)
	}
	if n := strings.Count(stderr, "was shredded"); n != 1 {
		t.Fatalf("token create after the shred says it %d times: %s; want the reason once", n, stderr)
	}
	// Again, with -yes: revokes again (nothing left), destroys nothing new.
	code, stdout, stderr = runCLI(t, append([]string{"tenant", "shred", "-tenant", "acme", "-yes"}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, "tokens revoked: 0") {
		t.Fatalf("tenant shred again: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}
