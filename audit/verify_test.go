package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// mutate returns a copy of the bundle with its lines changed by f (line 1
// is lines[0]).
func mutate(b []byte, f func(lines [][]byte) [][]byte) []byte {
	lines := bundleLines(bytes.Clone(b))
	for i := range lines {
		lines[i] = bytes.Clone(lines[i])
	}
	return join(f(lines))
}

func replaceIn(line []byte, old, new string) []byte {
	out := bytes.Replace(line, []byte(old), []byte(new), 1)
	if bytes.Equal(out, line) {
		panic("replaceIn: " + old + " not found")
	}
	return out
}

// resign replaces the checkpoint line with one signed by s over the
// records' own tree head: what an attacker who rewrote records would do.
func resign(l *testLog, s *Signer) func([][]byte) [][]byte {
	return func(lines [][]byte) [][]byte {
		_, msg := l.checkpoint(s, l.tree.Size())
		cl, _ := marshalLine(checkpointLine{Type: "checkpoint", Note: string(msg)})
		lines[len(lines)-1] = cl
		return lines
	}
}

type verifyCase struct {
	name    string
	bundle  []byte
	pinned  note.Verifiers
	trusted *Checkpoint
	want    Failure
	line    int   // 0: not checked
	index   int64 // checked unless it and line are 0
	reason  string
}

func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := VerifyBundle(bytes.NewReader(c.bundle), c.pinned, c.trusted)
			if c.want == 0 {
				if err != nil {
					t.Fatalf("VerifyBundle = %v, want success", err)
				}
				if c.trusted != nil && !v.Trusted {
					t.Fatal("the trusted checkpoint was not checked")
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("VerifyBundle = %v, %v; want a %s VerifyError", v, err, c.want)
			}
			if ve.Failure != c.want || c.line != 0 && ve.Line != c.line || (c.index != 0 || c.line != 0) && ve.Index != c.index || !strings.Contains(ve.Reason, c.reason) {
				t.Fatalf("VerifyBundle = %q (failure %s, line %d, record %d); want failure %s, line %d, record %d", ve, ve.Failure, ve.Line, ve.Index, c.want, c.line, c.index)
			}
		})
	}
}

// TestVerifyCompleteExport: bundle lines are 1 header, 2..17 records 0..15,
// 18 the checkpoint.
func TestVerifyCompleteExport(t *testing.T) {
	l := newTestLog(t, 16)
	good := l.export(nil, "", 0)
	attacker, _ := NewSigner(DefaultLogName, testKey("attacker"))
	line := func(index int) int { return index + 2 }
	forged := func(lines [][]byte) [][]byte { // record 5 again, another actor
		return slices.Insert(lines, line(5), replaceIn(lines[line(5)-1], `"actor":"tok_app"`, `"actor":"tok_evil"`))
	}
	runVerifyCases(t, []verifyCase{
		{name: "intact", bundle: good, pinned: l.pinned()},
		{name: "intact, pinned by public key", bundle: good, pinned: PublicKeyVerifiers(testKey("deployment").Public().(ed25519.PublicKey))},
		{name: "record edited", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[line(5)-1] = replaceIn(ls[line(5)-1], `"actor":"tok_app"`, `"actor":"tok_evil"`)
			return ls
		}), pinned: l.pinned(), want: Tampered, index: -1},
		{name: "record edited to break its encoding", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[line(5)-1] = replaceIn(ls[line(5)-1], `"index":5`, `"index": 5`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: line(5), index: -1},
		{name: "record deleted in the middle", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, line(5)-1, line(5))
		}), pinned: l.pinned(), want: Truncated, line: line(5), index: 5},
		{name: "last record deleted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, line(15)-1, line(15))
		}), pinned: l.pinned(), want: Truncated, line: line(15), index: 15},
		{name: "first record deleted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, line(0)-1, line(0))
		}), pinned: l.pinned(), want: Truncated, line: line(0), index: 0},
		{name: "records reordered", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[line(5)-1], ls[line(6)-1] = ls[line(6)-1], ls[line(5)-1]
			return ls
		}), pinned: l.pinned(), want: Reordered, line: line(5), index: 6},
		{name: "record inserted", bundle: mutate(good, forged), pinned: l.pinned(), want: Tampered, line: line(6), index: 5},
		{name: "record inserted with a new index", bundle: mutate(good, func(ls [][]byte) [][]byte {
			extra := replaceIn(ls[line(15)-1], `"index":15`, `"index":16`)
			return slices.Insert(ls, line(16)-1, extra)
		}), pinned: l.pinned(), want: Tampered, line: line(16), index: 16},
		{name: "bundle cut before its checkpoint", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return ls[:len(ls)-1]
		}), pinned: l.pinned(), want: Truncated},
		{name: "header claims another tree size", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[0] = replaceIn(ls[0], `"tree_size":16`, `"tree_size":15`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 1, index: -1, reason: "the header contradicts the signed checkpoint: tree_size 15, signed 16"},
		// The reason names the field that differs, not two summaries.
		{name: "header claims another tenant", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[0] = replaceIn(ls[0], `"tenant":"acme"`, `"tenant":"acmf"`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 1, index: -1, reason: `the header contradicts the signed checkpoint: tenant "acmf", signed "acme"`},
		{name: "header claims another origin", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[0] = replaceIn(ls[0], `/audit/acme"`, `/audit/acmf"`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 1, index: -1, reason: `origin "eventvault/audit/acmf", signed "eventvault/audit/acme"`},
		{name: "signed by another key", bundle: mutate(good, resign(l, attacker)), pinned: l.pinned(), want: BadSignature, line: 18, index: -1},
		{name: "rewritten and signed by another key", bundle: mutate(mutate(good, forged), resign(l, attacker)), pinned: l.pinned(), want: BadSignature, line: 19, index: -1},
		{name: "signed by another key, pinned by public key", bundle: mutate(good, resign(l, attacker)), pinned: PublicKeyVerifiers(testKey("deployment").Public().(ed25519.PublicKey)), want: BadSignature},
		{name: "not a bundle", bundle: []byte("hello\n"), pinned: l.pinned(), want: Unusable},
		{name: "every line end rewritten to CR LF", bundle: bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")), pinned: l.pinned(), want: Unusable, line: 1, index: -1, reason: "CR LF"},
		{name: "one record's line end rewritten to CR LF", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[line(5)-1] = append(ls[line(5)-1], '\r')
			return ls
		}), pinned: l.pinned(), want: Unusable, line: line(5), index: -1, reason: "CR LF"},
		{name: "a CR before the final line end", bundle: append(bytes.TrimSuffix(bytes.Clone(good), []byte("\n")), '\r'), pinned: l.pinned(), want: Unusable, line: 18, index: -1, reason: "CR LF"},
	})
}

// TestVerifyFilteredExport: records 1, 4, 5, 9, 12 of 16 on lines 2..6,
// each with an inclusion proof; the checkpoint on line 7.
func TestVerifyFilteredExport(t *testing.T) {
	l := newTestLog(t, 16)
	good := l.export([]int64{1, 4, 5, 9, 12}, "resource=stream:order-1", 0)
	proofOf := func(line []byte) []byte { return line[bytes.LastIndex(line, []byte(proofInfix)):] }
	runVerifyCases(t, []verifyCase{
		{name: "intact", bundle: good, pinned: l.pinned()},
		{name: "range from 3", bundle: l.export([]int64{3, 4, 5, 6}, "", 0), pinned: l.pinned()},
		{name: "record edited", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[3] = replaceIn(ls[3], `"actor":"tok_app"`, `"actor":"tok_evil"`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 4, index: 5},
		{name: "inclusion proof for the wrong index", bundle: mutate(good, func(ls [][]byte) [][]byte {
			// Record 4 carries record 5's proof.
			ls[2] = append(ls[2][:bytes.LastIndex(ls[2], []byte(proofInfix))], proofOf(ls[3])...)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 3, index: 4},
		{name: "record renumbered", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[3] = replaceIn(ls[3], `"index":5`, `"index":6`)
			return ls
		}), pinned: l.pinned(), want: Tampered, line: 4, index: 6},
		{name: "record deleted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, 3, 4)
		}), pinned: l.pinned(), want: Truncated},
		{name: "first record deleted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, 1, 2)
		}), pinned: l.pinned(), want: Truncated, line: 2, index: 1},
		{name: "last record deleted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			return slices.Delete(ls, 5, 6)
		}), pinned: l.pinned(), want: Truncated, line: 6, index: -1},
		{name: "records reordered", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[2], ls[3] = ls[3], ls[2]
			return ls
		}), pinned: l.pinned(), want: Reordered, line: 3, index: 5},
		{name: "record of another tree inserted", bundle: mutate(good, func(ls [][]byte) [][]byte {
			ls[0] = replaceIn(ls[0], `"count":5`, `"count":6`)
			extra := replaceIn(ls[5], `"actor":"tok_app"`, `"actor":"tok_evil"`)
			extra = replaceIn(extra, `"index":12`, `"index":13`)
			return slices.Insert(ls, 6, extra)
		}), pinned: l.pinned(), want: Tampered, line: 7, index: 13},
		{name: "range with a record deleted", bundle: mutate(l.export([]int64{3, 4, 5, 6}, "", 0), func(ls [][]byte) [][]byte {
			return slices.Delete(ls, 2, 3)
		}), pinned: l.pinned(), want: Truncated, line: 3, index: 4},
	})
}

// TestVerifyAgainstATrustedCheckpoint: rollback, forks, and consistency.
func TestVerifyAgainstATrustedCheckpoint(t *testing.T) {
	l := newTestLog(t, 16)
	old, _ := l.checkpoint(l.signer, 8)
	grown := newTestLog(t, 20) // the same log, four records later
	newer, _ := grown.checkpoint(grown.signer, 20)
	// A forked log: same signer, same size, record 3 differs.
	forked := newTestLog(t, 0)
	for i := range 16 {
		if i == 3 {
			forked.append("stream:order-9")
		} else {
			forked.append("stream:order-1")
		}
	}
	same, _ := l.checkpoint(l.signer, 16)
	other := newTestLog(t, 16)
	otherTenant := Checkpoint{Origin: other.signer.Origin("globex"), Size: 8, Root: old.Root}
	filtered := []int64{1, 4, 5, 9, 12}
	runVerifyCases(t, []verifyCase{
		{name: "complete, extends the trusted checkpoint", bundle: l.export(nil, "", 0), pinned: l.pinned(), trusted: &old},
		{name: "complete, with a consistency proof", bundle: l.export(nil, "", 8), pinned: l.pinned(), trusted: &old},
		{name: "complete, same checkpoint", bundle: l.export(nil, "", 0), pinned: l.pinned(), trusted: &same},
		{name: "filtered, with a consistency proof", bundle: l.export(filtered, "resource=stream:order-1", 8), pinned: l.pinned(), trusted: &old},
		{name: "filtered, without a consistency proof", bundle: l.export(filtered, "resource=stream:order-1", 0), pinned: l.pinned(), trusted: &old, want: Unusable},
		{name: "checkpoint rolled back", bundle: l.export(nil, "", 0), pinned: l.pinned(), trusted: &newer, want: Rollback},
		{name: "filtered, checkpoint rolled back", bundle: l.export(filtered, "resource=stream:order-1", 0), pinned: l.pinned(), trusted: &newer, want: Rollback},
		{name: "record edited after the trusted checkpoint", bundle: mutate(l.export(nil, "", 0), func(ls [][]byte) [][]byte {
			ls[12] = replaceIn(ls[12], `"actor":"tok_app"`, `"actor":"tok_evil"`)
			return ls
		}), pinned: l.pinned(), trusted: &old, want: Tampered, index: -1, reason: "among records 8 to 15"},
		{name: "fork: another root at the same size", bundle: forked.export(nil, "", 0), pinned: l.pinned(), trusted: &same, want: Fork},
		{name: "fork: complete tree that does not extend the trusted one", bundle: forked.export(nil, "", 0), pinned: l.pinned(), trusted: &old, want: Fork},
		{name: "fork: filtered, proof from another root", bundle: forked.export(filtered, "resource=stream:order-1", 8), pinned: l.pinned(), trusted: &old, want: Fork},
		{name: "trusted checkpoint of another tenant", bundle: l.export(nil, "", 0), pinned: l.pinned(), trusted: &otherTenant, want: Unusable},
	})
}

// TestVerifyChecksEveryHashOfAConsistencyProof is the mistake of
// GHSA-672p-m5jq-mrh8: a consistency proof whose two ends are right (it
// claims to go from the trusted size and root to the signed size and root)
// but whose middle hash is altered must fail. VerifyBundle runs the whole
// proof through tlog.CheckTree, so every altered hash is caught.
func TestVerifyChecksEveryHashOfAConsistencyProof(t *testing.T) {
	l := newTestLog(t, 16)
	old, _ := l.checkpoint(l.signer, 5)
	for _, b := range [][]byte{l.export(nil, "", 5), l.export([]int64{1, 4, 5, 9, 12}, "resource=stream:order-1", 5)} {
		lines := bundleLines(b)
		last := len(lines)
		var cons consistencyLine
		if err := unmarshalLine(lines[last-1], &cons); err != nil {
			t.Fatal(err)
		}
		if len(cons.Proof) < 3 {
			t.Fatalf("a proof of %d hashes has no middle", len(cons.Proof))
		}
		for i := range cons.Proof {
			bad := cons
			bad.Proof = slices.Clone(cons.Proof)
			bad.Proof[i][0] ^= 1
			// The two ends a careless checker looks at are unchanged.
			if bad.OldSize != old.Size || bad.OldRoot != old.Root {
				t.Fatal("the ends changed")
			}
			badLine, _ := marshalLine(bad)
			tampered := mutate(b, func(ls [][]byte) [][]byte { ls[last-1] = badLine; return ls })
			_, err := VerifyBundle(bytes.NewReader(tampered), l.pinned(), &old)
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Failure != Tampered || ve.Line != last {
				t.Errorf("proof hash %d of %d altered: VerifyBundle = %v, want tampered at line %d", i, len(cons.Proof), err, last)
			}
			if tlog.CheckTree(bad.Proof, 16, mustRoot(t, l.tree.Tree(), 16), 5, old.Root) == nil {
				t.Errorf("tlog.CheckTree accepts hash %d altered", i)
			}
		}
	}
}

// FuzzVerifyBundle: no input makes the verifier panic, and whatever it
// accepts under the pinned key proves the tree head that key signed.
func FuzzVerifyBundle(f *testing.F) {
	l := newTestLog(f, 5)
	f.Add(l.export(nil, "", 0))
	f.Add(l.export([]int64{1, 3}, "resource=stream:order-1", 2))
	f.Add(l.export([]int64{2, 3}, "", 1))
	pinned := l.pinned()
	head, _ := l.checkpoint(l.signer, 5)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := VerifyBundle(bytes.NewReader(b), pinned, nil)
		if err == nil && v.Checkpoint != head {
			t.Fatalf("accepted a checkpoint the key never signed: %+v", v.Checkpoint)
		}
	})
}
