package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault/audit"
)

// auditFixture is a tenant log of n records, its signing key, and files an
// auditor would hold.
type auditFixture struct {
	t      *testing.T
	dir    string
	lines  [][]byte
	tree   audit.MemoryTree
	key    ed25519.PrivateKey
	signer *audit.Signer
}

func newAuditFixture(t *testing.T, n int, resource func(i int) string) *auditFixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newAuditFixtureWithKey(t, key, n, resource)
}

func newAuditFixtureWithKey(t *testing.T, key ed25519.PrivateKey, n int, resource func(i int) string) *auditFixture {
	t.Helper()
	s, err := audit.NewSigner(audit.DefaultLogName, key)
	if err != nil {
		t.Fatal(err)
	}
	f := &auditFixture{t: t, dir: t.TempDir(), key: key, signer: s}
	for i := range n {
		r := audit.Record{Tenant: "acme", Index: int64(i), Time: time.Date(2026, 11, 30, 8, 0, i, 0, time.UTC), Actor: "tok_app",
			Action: audit.ActionAppend, Resource: resource(i), Outcome: audit.OutcomeOK, RequestID: fmt.Sprint("req-", i), Detail: map[string]any{"count": 1}}
		line, err := r.MarshalLine()
		if err != nil {
			t.Fatal(err)
		}
		f.lines = append(f.lines, line)
		f.tree.Append(line)
	}
	return f
}

func orders(int) string { return "stream:order-1" }

// signedNote signs the head at size.
func (f *auditFixture) signedNote(size int64) []byte {
	f.t.Helper()
	root, err := f.tree.Tree().Root(size)
	if err != nil {
		f.t.Fatal(err)
	}
	msg, err := f.signer.Sign(audit.Checkpoint{Origin: f.signer.Origin("acme"), Size: size, Root: root})
	if err != nil {
		f.t.Fatal(err)
	}
	return msg
}

// bundle writes a complete export, changed by edit, to a file.
func (f *auditFixture) bundle(name string, edit func(lines []string) []string) string {
	f.t.Helper()
	var buf bytes.Buffer
	err := audit.WriteBundle(&buf, audit.Export{Checkpoint: f.signedNote(f.tree.Size()), Hashes: &f.tree, Count: f.tree.Size(),
		Records: func(yield func([]byte, error) bool) {
			for _, l := range f.lines {
				if !yield(l, nil) {
					return
				}
			}
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if edit != nil {
		lines = edit(lines)
	}
	return f.write(name, strings.Join(lines, "\n")+"\n")
}

func (f *auditFixture) write(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func TestAuditVerify(t *testing.T) {
	f := newAuditFixture(t, 12, orders)
	vkeyFile := f.write("acme.vkey", f.signer.VerifierKey("acme")+"\n")
	// The deployment key as GET /v1/keys/signing publishes it, and bare.
	pub := base64.StdEncoding.EncodeToString(f.key.Public().(ed25519.PublicKey))
	published, _ := json.Marshal(map[string]string{"key_id": "k1", "algorithm": "Ed25519", "public_key": pub})
	jsonKeyFile, b64KeyFile := f.write("signing.json", string(published)), f.write("signing.b64", pub)
	good := f.bundle("good.jsonl", nil)
	old := f.write("old.checkpoint", string(f.signedNote(5)))

	// Another key signs a copy of the same log; a forked log shares the key.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	impostor := newAuditFixtureWithKey(t, otherKey, 12, orders)
	forked := newAuditFixtureWithKey(t, f.signerKey(), 12, func(i int) string {
		if i == 3 {
			return "stream:order-9"
		}
		return "stream:order-1"
	})
	longer := newAuditFixtureWithKey(t, f.signerKey(), 20, orders)
	newer := f.write("newer.checkpoint", string(longer.signedNote(20)))
	sameSizeOther := f.write("forked.checkpoint", string(forked.signedNote(12)))

	record := func(i int) int { return i + 1 } // index of record i's line in the slice
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"verified", []string{good, "-public-key", vkeyFile}, 0, "OK: audit bundle verified"},
		{"verified with the deployment key's JSON", []string{good, "-public-key", jsonKeyFile}, 0, "OK: audit bundle verified"},
		{"verified with the deployment key in base64", []string{good, "-public-key", b64KeyFile}, 0, "OK: audit bundle verified"},
		{"verified against a trusted checkpoint", []string{"-public-key", vkeyFile, "-trusted-checkpoint", old, good}, 0, "size 5, extended by this one"},
		{"record edited", []string{f.bundle("edited.jsonl", func(ls []string) []string {
			ls[record(4)] = strings.Replace(ls[record(4)], `"actor":"tok_app"`, `"actor":"tok_evil"`, 1)
			return ls
		}), "-public-key", vkeyFile}, 10, "TAMPERED (exit 10)"},
		{"record deleted", []string{f.bundle("deleted.jsonl", func(ls []string) []string {
			return append(ls[:record(4)], ls[record(4)+1:]...)
		}), "-public-key", vkeyFile}, 11, "TRUNCATED (exit 11): line 6, record 4"},
		{"last record deleted", []string{f.bundle("cut.jsonl", func(ls []string) []string {
			return append(ls[:record(11)], ls[record(11)+1:]...)
		}), "-public-key", vkeyFile}, 11, "record 11"},
		{"records reordered", []string{f.bundle("reordered.jsonl", func(ls []string) []string {
			ls[record(4)], ls[record(5)] = ls[record(5)], ls[record(4)]
			return ls
		}), "-public-key", vkeyFile}, 12, "REORDERED (exit 12): line 6, record 5"},
		{"record inserted", []string{f.bundle("inserted.jsonl", func(ls []string) []string {
			extra := strings.Replace(ls[record(4)], `"actor":"tok_app"`, `"actor":"tok_evil"`, 1)
			return append(ls[:record(5)], append([]string{extra}, ls[record(5):]...)...)
		}), "-public-key", vkeyFile}, 10, "line 7, record 4"},
		{"signed by another key", []string{impostor.bundle("impostor.jsonl", nil), "-public-key", vkeyFile}, 13, "BAD SIGNATURE (exit 13)"},
		{"signed by another key names both key ids", []string{impostor.bundle("impostor.jsonl", nil), "-public-key", vkeyFile}, 13,
			"the checkpoint of log eventvault/audit/acme is signed with key id " + keyIDOf(impostor.signer.VerifierKey("acme")) +
				", but the pinned verifier key has key id " + keyIDOf(f.signer.VerifierKey("acme"))},
		{"signed by another key, the public key pinned", []string{impostor.bundle("impostor.jsonl", nil), "-public-key", b64KeyFile}, 13,
			"the checkpoint of log eventvault/audit/acme is signed with key id " + keyIDOf(impostor.signer.VerifierKey("acme")) +
				", but the pinned public key signs that log with key id " + keyIDOf(f.signer.VerifierKey("acme"))},
		{"another tenant's verifier key", []string{good, "-public-key", f.write("globex.vkey", f.signer.VerifierKey("globex")+"\n")}, 13,
			"the pinned verifier key is for log eventvault/audit/globex, but this bundle's checkpoint is of log eventvault/audit/acme"},
		{"fork", []string{forked.bundle("forked.jsonl", nil), "-public-key", vkeyFile, "-trusted-checkpoint", old}, 14, "FORK (exit 14)"},
		{"fork at the same size", []string{good, "-public-key", vkeyFile, "-trusted-checkpoint", sameSizeOther}, 14, "FORK (exit 14)"},
		{"rollback", []string{good, "-public-key", vkeyFile, "-trusted-checkpoint", newer}, 15, "ROLLBACK (exit 15)"},
		{"trusted checkpoint signed by another key", []string{good, "-public-key", vkeyFile, "-trusted-checkpoint", f.write("imp.checkpoint", string(impostor.signedNote(5)))}, 13, "trusted checkpoint"},
		{"no key", []string{good}, 1, "need -public-key"},
		{"no such bundle", []string{filepath.Join(f.dir, "missing"), "-public-key", vkeyFile}, 1, "read bundle"},
		{"not a key", []string{good, "-public-key", good}, 1, "holds neither a verifier key"},
		{"not a bundle", []string{vkeyFile, "-public-key", vkeyFile}, 1, "UNUSABLE (exit 1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), append([]string{"audit", "verify"}, c.args...), &out, &errOut)
			if code != c.code || !strings.Contains(out.String()+errOut.String(), c.want) {
				t.Fatalf("exit %d, want %d mentioning %q\nstdout:\n%s\nstderr:\n%s", code, c.code, c.want, out.String(), errOut.String())
			}
		})
	}
}

func (f *auditFixture) signerKey() ed25519.PrivateKey { return f.key }

// keyIDOf is the key id of a verifier key, <name>+<key id>+<key>.
func keyIDOf(vkey string) string { return strings.Split(vkey, "+")[1] }

// TestAuditVerifySavesTheCheckpointForNextTime: the checkpoint one
// verification saves is the trusted checkpoint of the next.
func TestAuditVerifySavesTheCheckpointForNextTime(t *testing.T) {
	f := newAuditFixture(t, 6, orders)
	vkeyFile := f.write("acme.vkey", f.signer.VerifierKey("acme"))
	saved := filepath.Join(f.dir, "kept.checkpoint")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "-public-key", vkeyFile, "-save-checkpoint", saved, f.bundle("first.jsonl", nil)}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	later := newAuditFixtureWithKey(t, f.key, 9, orders) // the same log, three records later
	if code := run(context.Background(), []string{"audit", "verify", "-public-key", vkeyFile, "-trusted-checkpoint", saved, later.bundle("later.jsonl", nil)}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "size 6, extended by this one") {
		t.Fatalf("output:\n%s", out.String())
	}
	// A bare checkpoint body is accepted as the auditor's own word.
	body, _ := os.ReadFile(saved)
	bare := f.write("bare.checkpoint", string(body[:bytes.Index(body, []byte("\n\n"))+1]))
	if code := run(context.Background(), []string{"audit", "verify", "-public-key", vkeyFile, "-trusted-checkpoint", bare, later.bundle("later.jsonl", nil)}, &out, &errOut); code != 0 {
		t.Fatalf("bare checkpoint: exit %d: %s", code, errOut.String())
	}
}

// TestAuditVerifySaysWhetherTheLogGrew: against a trusted checkpoint of
// the same size, the summary says the log is the same, not that it was
// extended; against a smaller one, that it was extended, by how many.
func TestAuditVerifySaysWhetherTheLogGrew(t *testing.T) {
	f := newAuditFixture(t, 16, orders)
	vkeyFile := f.write("acme.vkey", f.signer.VerifierKey("acme"))
	bundle := f.bundle("export.jsonl", nil)
	for _, c := range []struct {
		name, trusted, want, notWant string
	}{
		{"the same size", f.write("same.checkpoint", string(f.signedNote(16))),
			"trusted checkpoint: size 16, the same size and root as this one (nothing added since; no rollback, no fork)", "extended"},
		{"a smaller size", f.write("older.checkpoint", string(f.signedNote(10))),
			"trusted checkpoint: size 10, extended by this one (6 records added; no rollback, no fork)", "the same size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), []string{"audit", "verify", "-public-key", vkeyFile, "-trusted-checkpoint", c.trusted, bundle}, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if !strings.Contains(out.String(), c.want) || strings.Contains(out.String(), c.notWant) {
				t.Fatalf("output:\n%s\nwant %q and no %q", out.String(), c.want, c.notWant)
			}
		})
	}
}

func TestAuditUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "audit verify") {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if code := run(context.Background(), []string{"audit", "frobnicate"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `unknown audit command "frobnicate"`) {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}
