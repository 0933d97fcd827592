package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePolicy(t *testing.T, dir, tenant, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, tenant), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tenant, name+".cedar"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyExplainNamesTheStatementThatDecided runs the offline commands
// as a policy author would: validate a folder, then explain requests.
func TestPolicyExplainNamesTheStatementThatDecided(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "acme", "app", `@id("orders")
permit (principal, action in [Action::"append", Action::"read"], resource is Stream)
when { resource.category == "order" };

@id("no-refunds")
forbid (principal, action == Action::"append", resource)
when { context.event_type == "RefundIssued" };
`)
	writePolicy(t, dir, "acme", "analyst", `permit (principal, action == Action::"read", resource);`)
	writePolicy(t, dir, "acme", "desk", `@id("phones")
permit (principal, action == Action::"read_pii", resource is Stream) when { context.class == "phone" };`)
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"validate", []string{"policy", "validate", "-dir", dir}, 0, []string{"3 documents valid", "policy app, 2 statements"}},
		{"a personal field", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-policies", "desk", "-action", "read_pii", "-stream", "order-1", "-pointer", "/customer/phone", "-class", "phone"}, 0, []string{"decision: ALLOW", "desk#phones"}},
		{"another personal field", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-policies", "desk", "-action", "read_pii", "-stream", "order-1", "-pointer", "/customer/email", "-class", "email"}, exitDenied, []string{"decision: DENY"}},
		{"permit", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-policies", "app", "-action", "append", "-stream", "order-1", "-event-type", "OrderPlaced"}, 0, []string{"decision: ALLOW", "app#orders (permit, app.cedar line 1)"}},
		{"forbid wins", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-action", "append", "-stream", "order-1", "-event-type", "RefundIssued"}, exitDenied, []string{"decision: DENY", "app#no-refunds (forbid, app.cedar line 5)"}},
		{"deny by default", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-policies", "analyst", "-action", "read_all"}, exitDenied, []string{"decision: DENY", "deny by default"}},
		{"another tenant's folder grants nothing", []string{"policy", "explain", "-dir", dir, "-tenant", "globex", "-action", "read", "-stream", "order-1"}, exitDenied, []string{"decision: DENY"}},
		{"inline rules", []string{"policy", "explain", "-tenant", "acme", "-rules", `[{"capabilities":["read"],"streams":"*"}]`, "-action", "read_all"}, 0, []string{"decision: ALLOW", "token-rules#rule-0-tenant"}},
		{"rules alone, without -policies, hold no document", []string{"policy", "explain", "-dir", dir, "-tenant", "acme", "-rules", `[{"capabilities":["append"],"streams":"order-*"}]`, "-action", "read", "-stream", "order-1"}, exitDenied, []string{"documents: token-rules\n", "decision: DENY"}},
		{"from rules", []string{"policy", "from-rules", "-rules", `[{"capabilities":["append"],"streams":"order-*"}]`}, 0, []string{`resource.name like "order-*"`, `Action::"append"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, c.code, out.String(), errb.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestPolicyCommandsRefuseBadInput: each input tried exits 1 with a
// message that says what to fix.
func TestPolicyCommandsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "acme", "app", "permit (principal, action, resource)\nwhen { resource.nme == \"x\" };")
	bad := t.TempDir()
	writePolicy(t, bad, "Not A Tenant", "app", `permit (principal, action, resource);`)
	good := t.TempDir()
	writePolicy(t, good, "acme", "app", `permit (principal, action, resource);`)
	// What a repository holds besides documents is skipped.
	for _, clutter := range []string{".git/HEAD", "README.md", "acme/.gitkeep", "acme/app.cedar~"} {
		path := filepath.Join(good, clutter)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("not a policy"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"policy", "validate", "-dir", good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "1 documents valid") {
		t.Fatalf("a folder with .git, README.md, .gitkeep and a backup: exit %d, %s %s", code, out.String(), errb.String())
	}
	stray := t.TempDir()
	writePolicy(t, stray, "acme", "app", `permit (principal, action, resource);`)
	if err := os.WriteFile(filepath.Join(stray, "acme", "app.cedr"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder with no document where the loader looks: empty, a Go
	// package (docs/access.md once said -dir policies/), and one document
	// at the top with no tenant's folder.
	empty := t.TempDir()
	goPackage := t.TempDir()
	for _, name := range []string{"files.go", "schema.cedarschema", "README.md"} {
		if err := os.WriteFile(filepath.Join(goPackage, name), []byte("package policies"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	top := t.TempDir()
	if err := os.WriteFile(filepath.Join(top, "app.cedar"), []byte(`permit (principal, action, resource);`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"empty folder", []string{"policy", "validate", "-dir", empty}, "holds no policy document: documents are read from " + filepath.Join(empty, "<tenant>", "<name>.cedar")},
		{"a Go package", []string{"policy", "validate", "-dir", goPackage}, "holds no policy document: documents are read from " + filepath.Join(goPackage, "<tenant>", "<name>.cedar")},
		{"a document with no tenant folder", []string{"policy", "validate", "-dir", top}, filepath.Join(top, "app.cedar") + ": a policy document goes in its tenant's folder, as " + filepath.Join(top, "<tenant>", "<name>.cedar")},
		{"explain over a folder with no document", []string{"policy", "explain", "-dir", goPackage, "-tenant", "acme", "-action", "read_all"}, "holds no policy document"},
		{"explain over a document with no tenant folder", []string{"policy", "explain", "-dir", top, "-tenant", "acme", "-action", "read_all"}, "goes in its tenant's folder"},
		{"invalid document names file and line", []string{"policy", "validate", "-dir", dir}, "app.cedar: policy app, line 1"},
		{"bad tenant folder", []string{"policy", "validate", "-dir", bad}, "folder Not A Tenant"},
		{"misnamed file", []string{"policy", "validate", "-dir", stray}, "app.cedr: a policy folder holds only <name>.cedar files"},
		{"no folder", []string{"policy", "validate"}, "-dir is required"},
		{"unknown action", []string{"policy", "explain", "-tenant", "acme", "-action", "fly"}, `unknown -action "fly"`},
		{"stream action without a stream", []string{"policy", "explain", "-tenant", "acme", "-action", "read"}, "-stream"},
		{"tenant action with a stream", []string{"policy", "explain", "-tenant", "acme", "-action", "read_all", "-stream", "order-1"}, "takes no -stream"},
		{"event type on read", []string{"policy", "explain", "-tenant", "acme", "-action", "read", "-stream", "order-1", "-event-type", "X"}, "for -action append and the personal data actions only"},
		{"missing document", []string{"policy", "explain", "-dir", good, "-tenant", "acme", "-policies", "nope", "-action", "read_all"}, "names nope"},
		{"bad rules", []string{"policy", "explain", "-tenant", "acme", "-rules", `[{"capabilities":["fly"],"streams":"*"}]`, "-action", "read_all"}, "unknown capability"},
		{"no subcommand", []string{"policy"}, "say what to do"},
		{"append without an event type", []string{"policy", "explain", "-tenant", "acme", "-rules", `[{"capabilities":["append"],"streams":"*"}]`, "-action", "append", "-stream", "order-1"}, "-event-type is required"},
		{"stream action without -stream", []string{"policy", "explain", "-tenant", "acme", "-action", "shred"}, "-stream is required"},
		{"empty rules", []string{"policy", "from-rules", "-rules", "[]"}, "empty list"},
		{"unknown rule field", []string{"policy", "from-rules", "-rules", `[{"capabilities":["read"],"streams":"*","extra":1}]`}, "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(t.Context(), c.args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr lacks %q: %s", c.want, errb.String())
			}
		})
	}
}

// TestServerPolicyDirLeavesNoDocumentOut: -policy-dir reads as 'policy
// validate' does: a document outside a tenant's folder stops the start,
// naming the file and the layout; a folder with no document starts, with
// a warning that names the layout, since a wrong path reads the same.
func TestServerPolicyDirLeavesNoDocumentOut(t *testing.T) {
	top := t.TempDir()
	if err := os.WriteFile(filepath.Join(top, "app.cedar"), []byte(`permit (principal, action, resource);`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openServer(t, "-dev", "-policy-dir", top); err == nil || !strings.Contains(err.Error(), filepath.Join(top, "app.cedar")+": a policy document goes in its tenant's folder") {
		t.Fatalf("a server with a document at the top of -policy-dir: %v; want a refusal naming the file", err)
	}
	empty := t.TempDir()
	s := startServer(t, "-dev", "-policy-dir", empty)
	s.stop()
	if log := s.log.String(); !strings.Contains(log, "the policy folder holds no document: documents are read from "+filepath.Join(empty, "<tenant>", "<name>.cedar")) {
		t.Fatalf("a server with an empty -policy-dir logged:\n%s\nwant a warning naming the layout", log)
	}
}
