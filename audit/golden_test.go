package audit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden bundles in testdata")

// TestGoldenBundles pins the bundle format: the writer must give these
// bytes, and the verifier must accept them with the verifier key beside
// them. The key is a test key derived from a label (testKey).
func TestGoldenBundles(t *testing.T) {
	l := newTestLog(t, 3)
	for name, b := range map[string][]byte{
		"complete.jsonl": l.export(nil, "", 0),
		"filtered.jsonl": l.export([]int64{0, 2}, "resource=stream:order-1", 1),
		"acme.vkey":      []byte(l.signer.VerifierKey("acme") + "\n"),
	} {
		path := filepath.Join("testdata", name)
		if *updateGolden {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s changed:\n%s\nwant:\n%s", name, b, want)
		}
	}
	vkey, _ := os.ReadFile("testdata/acme.vkey")
	v, err := note.NewVerifier(string(bytes.TrimSpace(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"complete.jsonl", "filtered.jsonl"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		if _, err := VerifyBundle(bytes.NewReader(b), note.VerifierList(v), nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
