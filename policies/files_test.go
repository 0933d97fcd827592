package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadDirLeavesNoDocumentOut: ReadDir reads every document laid out
// as <dir>/<tenant>/<name>.cedar, a tenant's folder reached through a
// symbolic link included; skips what a repository holds besides; and
// refuses, naming the file and the layout, a document anywhere else, so
// that none is silently left out.
func TestReadDirLeavesNoDocumentOut(t *testing.T) {
	const doc = `permit (principal, action == Action::"read", resource);`
	cases := []struct {
		name  string
		files []string // relative paths, each holding doc
		links map[string]string
		docs  []string // the documents read, as <tenant>/<name>
		err   string   // the error, when one is wanted
	}{
		{name: "documents in tenant folders", files: []string{"acme/app.cedar", "globex/app.cedar"}, docs: []string{"acme/app", "globex/app"}},
		{name: "what a repository holds besides", files: []string{"acme/app.cedar", "README.md", "schema.cedarschema", "go.go", "app.cedar~", ".git/acme.cedar", ".hidden/x.cedar", "acme/.gitkeep", "acme/app.cedar~"}, docs: []string{"acme/app"}},
		{name: "no document at all", files: []string{"README.md", "policies.go"}},
		{name: "a symbolic link to a tenant's folder", files: []string{"..data/acme/app.cedar"}, links: map[string]string{"acme": "..data/acme"}, docs: []string{"acme/app"}},
		{name: "a symbolic link to a file at the top", files: []string{"..data/README.md"}, links: map[string]string{"README.md": "..data/README.md"}},
		{name: "a document at the top", files: []string{"acme/app.cedar", "app.cedar"}, err: "app.cedar: a policy document goes in its tenant's folder, as " + filepath.Join("<dir>", "<tenant>", "<name>.cedar")},
		{name: "a document at the top in capitals", files: []string{"APP.CEDAR"}, err: "APP.CEDAR: a policy document goes in its tenant's folder"},
		{name: "a symbolic link to a document at the top", files: []string{"..data/app.cedar"}, links: map[string]string{"app.cedar": "..data/app.cedar"}, err: "app.cedar: a policy document goes in its tenant's folder"},
		{name: "a document a folder too deep", files: []string{"acme/old/app.cedar"}, err: "old: a policy folder holds only <name>.cedar files"},
		{name: "a misnamed document", files: []string{"acme/app.cedr"}, err: "app.cedr: a policy folder holds only <name>.cedar files"},
		{name: "a misnamed extension's case", files: []string{"acme/app.CEDAR"}, err: "app.CEDAR: a policy folder holds only <name>.cedar files"},
		{name: "a folder that is no tenant", files: []string{"Not A Tenant/app.cedar"}, err: "folder Not A Tenant"},
		{name: "a dangling link", links: map[string]string{"acme": "missing"}, err: "read policy folder"},
		{name: "a dangling link to a document", links: map[string]string{"app.cedar": "missing"}, err: "read policy folder"},
		{name: "a dangling or looping link named as neither", files: []string{"acme/app.cedar"}, links: map[string]string{"README.md": "missing", "loop.d": "loop.d"}, docs: []string{"acme/app"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.files {
				path := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for link, target := range c.links {
				if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
					t.Fatal(err)
				}
			}
			docs, err := ReadDir(dir)
			if c.err != "" {
				want := strings.ReplaceAll(c.err, "<dir>", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("ReadDir = %d documents, %v; want an error saying %q", len(docs), err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadDir: %v", err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, string(d.Tenant)+"/"+d.Name)
			}
			if strings.Join(got, " ") != strings.Join(c.docs, " ") {
				t.Fatalf("ReadDir read %v; want %v", got, c.docs)
			}
		})
	}
}
