package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testKey derives a fixed Ed25519 key from a label (tests only: keys of the
// product come from crypto/rand).
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("audit test key " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testLog is a tenant's log of n records, in memory.
type testLog struct {
	t      testing.TB
	lines  [][]byte
	tree   MemoryTree
	signer *Signer
}

func newTestLog(t testing.TB, n int) *testLog {
	t.Helper()
	s, err := NewSigner(DefaultLogName, testKey("deployment"))
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, signer: s}
	for range n {
		l.append("stream:order-1")
	}
	return l
}

func (l *testLog) append(resource string) {
	i := int64(len(l.lines))
	r := Record{Tenant: "acme", Index: i, Time: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Actor: "tok_app", Action: ActionAppend, Resource: resource, Outcome: OutcomeOK, RequestID: fmt.Sprintf("req-%d", i),
		Detail: map[string]any{"count": 1, "position": i}}
	line, err := r.MarshalLine()
	if err != nil {
		l.t.Fatal(err)
	}
	l.lines = append(l.lines, line)
	l.tree.Append(line)
}

// checkpoint signs the tree head at size with signer s.
func (l *testLog) checkpoint(s *Signer, size int64) (Checkpoint, []byte) {
	l.t.Helper()
	root, err := l.tree.Tree().Root(size)
	if err != nil {
		l.t.Fatal(err)
	}
	c := Checkpoint{Origin: s.Origin("acme"), Size: size, Root: root}
	msg, err := s.Sign(c)
	if err != nil {
		l.t.Fatal(err)
	}
	return c, msg
}

// export writes a bundle of the records at indexes (all when nil) against
// the head of the whole log.
func (l *testLog) export(indexes []int64, filter string, oldSize int64) []byte {
	l.t.Helper()
	_, msg := l.checkpoint(l.signer, l.tree.Size())
	e := Export{Checkpoint: msg, Hashes: &l.tree, Filter: filter, OldSize: oldSize}
	if indexes == nil {
		e.Count = int64(len(l.lines))
		e.Records = l.records(0, int64(len(l.lines)))
	} else {
		e.First, e.Count = indexes[0], int64(len(indexes))
		e.Records = func(yield func([]byte, error) bool) {
			for _, i := range indexes {
				if !yield(l.lines[i], nil) {
					return
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, e); err != nil {
		l.t.Fatal(err)
	}
	return buf.Bytes()
}

func (l *testLog) records(from, to int64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for _, line := range l.lines[from:to] {
			if !yield(line, nil) {
				return
			}
		}
	}
}

func (l *testLog) pinned() note.Verifiers {
	l.t.Helper()
	v, err := note.NewVerifier(l.signer.VerifierKey("acme"))
	if err != nil {
		l.t.Fatal(err)
	}
	return note.VerifierList(v)
}

// bundleLines splits a bundle into its lines (without newlines), and join
// puts them back.
func bundleLines(b []byte) [][]byte {
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

func join(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

func TestBundleFormat(t *testing.T) {
	l := newTestLog(t, 3)
	lines := bundleLines(l.export(nil, "", 0))
	if len(lines) != 5 {
		t.Fatalf("%d lines, want header, 3 records, checkpoint", len(lines))
	}
	wantHeader := `{"type":"header","format":"eventvault-audit-bundle","version":1,"tenant":"acme","origin":"eventvault/audit/acme","first":0,"count":3,"tree_size":3,"filtered":false,"filter":""}`
	if string(lines[0]) != wantHeader {
		t.Errorf("header\n%s\nwant\n%s", lines[0], wantHeader)
	}
	if want := `{"type":"record","record":` + string(l.lines[1]) + `}`; string(lines[2]) != want {
		t.Errorf("record line\n%s\nwant\n%s", lines[2], want)
	}
	c, msg := l.checkpoint(l.signer, 3)
	wantCP, _ := marshalLine(checkpointLine{Type: "checkpoint", Note: string(msg)})
	if !bytes.Equal(lines[4], wantCP) || !strings.HasPrefix(string(msg), "eventvault/audit/acme\n3\n"+c.Root.String()+"\n\n— eventvault/audit/acme ") {
		t.Errorf("checkpoint line %s", lines[4])
	}

	// A filtered export carries an inclusion proof per record and a
	// consistency proof when asked.
	lines = bundleLines(l.export([]int64{0, 2}, "resource=stream:order-1", 1))
	if len(lines) != 5 || !strings.Contains(string(lines[2]), `,"proof":["`) || !strings.HasPrefix(string(lines[4]), `{"type":"consistency","old_size":1,"old_root":"`) {
		t.Fatalf("filtered bundle:\n%s", bytes.Join(lines, []byte("\n")))
	}
}

func TestWriteBundleRefusesHashesThatDoNotMatchTheCheckpoint(t *testing.T) {
	l := newTestLog(t, 4)
	_, msg := l.checkpoint(l.signer, 4)
	other := newTestLog(t, 0)
	for range 5 {
		other.append("stream:order-2")
	}
	err := WriteBundle(new(bytes.Buffer), Export{Checkpoint: msg, Hashes: &other.tree, Count: 4, Records: l.records(0, 4)})
	if err == nil || !strings.Contains(err.Error(), "stored hashes give root") {
		t.Fatalf("WriteBundle = %v", err)
	}
	// A record line that is not the one the hashes hold.
	err = WriteBundle(new(bytes.Buffer), Export{Checkpoint: msg, Hashes: &l.tree, First: 1, Count: 1, Records: other.records(2, 3)})
	if err == nil {
		t.Fatal("WriteBundle wrote a record the tree does not hold")
	}
}

func TestTreeOverStoredHashesMatchesMemoryTree(t *testing.T) {
	l := newTestLog(t, 37)
	// A store: a map of stored hashes filled only through Tree.StoredHashes.
	stored := map[int64]tlog.Hash{}
	store := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := stored[x]
			if !ok {
				return nil, fmt.Errorf("no hash %d", x)
			}
			out[i] = h
		}
		return out, nil
	})
	tree := Tree{Hashes: store}
	for i, line := range l.lines {
		start, hs, err := tree.StoredHashes(int64(i), line)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hs {
			stored[start+int64(j)] = h
		}
	}
	if int64(len(stored)) != tlog.StoredHashCount(37) {
		t.Fatalf("%d stored hashes, want %d", len(stored), tlog.StoredHashCount(37))
	}
	for size := int64(1); size <= 37; size++ {
		got, err := tree.Root(size)
		want, _ := l.tree.Tree().Root(size)
		if err != nil || got != want {
			t.Fatalf("root of %d: %v, %v", size, got, err)
		}
		p, err := tree.InclusionProof(37, size-1)
		if err != nil || tlog.CheckRecord(p, 37, mustRoot(t, tree, 37), size-1, tlog.RecordHash(l.lines[size-1])) != nil {
			t.Fatalf("inclusion of %d: %v", size-1, err)
		}
		c, err := tree.ConsistencyProof(37, size)
		if err != nil || tlog.CheckTree(c, 37, mustRoot(t, tree, 37), size, got) != nil {
			t.Fatalf("consistency from %d: %v", size, err)
		}
	}
}

func mustRoot(t *testing.T, tree Tree, size int64) tlog.Hash {
	t.Helper()
	h, err := tree.Root(size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheckpointSignature(t *testing.T) {
	l := newTestLog(t, 2)
	c, msg := l.checkpoint(l.signer, 2)
	vkey := l.signer.VerifierKey("acme")
	if parts := strings.SplitN(vkey, "+", 3); parts[0] != "eventvault/audit/acme" || len(parts[1]) != 8 || len(parts[2]) != 44 {
		t.Fatalf("verifier key %q", vkey)
	}
	if got, err := OpenCheckpoint(msg, l.pinned()); err != nil || got != c {
		t.Fatalf("OpenCheckpoint = %v, %v", got, err)
	}
	pub := testKey("deployment").Public().(ed25519.PublicKey)
	if got, err := OpenCheckpoint(msg, PublicKeyVerifiers(pub)); err != nil || got != c {
		t.Fatalf("OpenCheckpoint with the public key = %v, %v", got, err)
	}
	if got, err := ParseCheckpoint(c.Text()); err != nil || got != c {
		t.Fatalf("ParseCheckpoint = %v, %v", got, err)
	}
	other := testKey("attacker").Public().(ed25519.PublicKey)
	otherVkey, _ := VerifierKey("eventvault/audit/acme", other)
	ov, _ := note.NewVerifier(otherVkey)
	globex, _ := note.NewVerifier(l.signer.VerifierKey("globex"))
	for name, pinned := range map[string]note.Verifiers{
		"another key's verifier key":    note.VerifierList(ov),
		"another key":                   PublicKeyVerifiers(other),
		"another tenant's verifier key": note.VerifierList(globex),
		"no key":                        nil,
	} {
		if _, err := OpenCheckpoint(msg, pinned); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: OpenCheckpoint = %v, want ErrBadSignature", name, err)
		}
	}
	// A refusal names the key id the checkpoint is signed with and the one
	// pinned, never the log's origin as if it were the signer: another
	// tenant's log, another key of the same log, pinned by verifier key or
	// by public key, or nothing pinned.
	keyID := func(vkey string) string {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%08x", v.KeyHash())
	}
	signedID, otherID := keyID(vkey), keyID(otherVkey)
	pin := func(vkey string) Pinned {
		p, err := PinVerifierKey(vkey)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The same text signed under another key name, by the pinned key.
	globexName := "eventvault/audit/globex"
	misnamed, err := note.Sign(&note.Note{Text: string(c.Text())}, noteSigner{globexName, globex.KeyHash(), testKey("deployment")})
	if err != nil {
		t.Fatal(err)
	}
	// A signed text that is not a checkpoint: no log to name.
	acme, _ := note.NewVerifier(vkey)
	garbled, err := note.Sign(&note.Note{Text: "not a checkpoint\n"}, noteSigner{"eventvault/audit/acme", acme.KeyHash(), testKey("deployment")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		msg    []byte
		pinned Pinned
		want   string
	}{
		{"a text that is not a checkpoint", garbled, pin(l.signer.VerifierKey("globex")),
			"the checkpoint's text is not a checkpoint (C2SP tlog-checkpoint: origin, size, root hash), and no pinned key verifies it"},
		{"another tenant's verifier key", msg, pin(l.signer.VerifierKey("globex")),
			"the pinned verifier key is for log eventvault/audit/globex, but this bundle's checkpoint is of log eventvault/audit/acme (signed with key id " + signedID + ")"},
		{"another key of the log", msg, pin(otherVkey),
			"the checkpoint of log eventvault/audit/acme is signed with key id " + signedID + ", but the pinned verifier key has key id " + otherID + " (eventvault/audit/acme+" + otherID + "): another deployment's key, or the log was re-signed"},
		{"another public key", msg, PublicKeyVerifiers(other),
			"the checkpoint of log eventvault/audit/acme is signed with key id " + signedID + ", but the pinned public key signs that log with key id " + otherID + " (eventvault/audit/acme+" + otherID + ")"},
		{"no key", msg, nil,
			"the checkpoint of log eventvault/audit/acme is signed with key id " + signedID + ", and no pinned key verifies it"},
		{"a signature under another key name", misnamed, pin(vkey),
			"the checkpoint of log eventvault/audit/acme is signed with key id " + fmt.Sprintf("%08x", globex.KeyHash()) + " (named " + globexName + "), but the pinned verifier key has key id " + signedID},
		{"an altered text", bytes.Replace(msg, []byte("\n2\n"), []byte("\n3\n"), 1), pin(vkey),
			"the signature with the pinned key (key id " + signedID + ", named eventvault/audit/acme) does not verify: the checkpoint was changed after it was signed"},
	} {
		_, err := OpenCheckpoint(c.msg, c.pinned)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: OpenCheckpoint = %v; want ErrBadSignature saying %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "signed by eventvault/audit/") {
			t.Errorf("%s: %v names the log's origin as the signer", c.name, err)
		}
	}
	// An altered body fails the pinned key.
	forged := bytes.Replace(msg, []byte("\n2\n"), []byte("\n3\n"), 1)
	if _, err := OpenCheckpoint(forged, l.pinned()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered size: %v", err)
	}
	if s := fmt.Sprint(l.signer); strings.Contains(s, "PRIVATE") || s != "audit.Signer(eventvault/audit)" {
		t.Errorf("signer prints %q", s)
	}
}
