package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/eventvault/eventvault"
)

// Failure classifies why a bundle does not verify. The command maps each to
// its own exit code (docs/audit.md).
type Failure int

// The failures, in the order the verifier reports them when several apply:
// an unusable input, a checkpoint not signed by the pinned key, then the
// first bad record in bundle order, then the trusted checkpoint.
const (
	// Unusable: not an audit bundle, or a trusted checkpoint of another
	// log, or one the bundle holds no proof for (exit 1).
	Unusable Failure = iota + 1
	// Tampered: a record edited or inserted, a header that contradicts the
	// checkpoint, a root or a proof that does not check (exit 10).
	Tampered
	// Truncated: records, or the end of the bundle, missing (exit 11).
	Truncated
	// Reordered: every record present but not in index order (exit 12).
	Reordered
	// BadSignature: the checkpoint is not signed by the pinned key (exit 13).
	BadSignature
	// Fork: the log's history differs from the trusted checkpoint's: another
	// root at the same size, or a tree that does not extend it (exit 14).
	Fork
	// Rollback: the trusted checkpoint is newer than the bundle's (exit 15).
	Rollback
)

var failureNames = map[Failure]string{Unusable: "unusable", Tampered: "tampered", Truncated: "truncated",
	Reordered: "reordered", BadSignature: "bad signature", Fork: "fork", Rollback: "rollback"}

func (f Failure) String() string { return failureNames[f] }

// VerifyError is the error of VerifyBundle: what failed and where.
type VerifyError struct {
	Failure Failure
	Line    int   // 1-based line of the bundle at fault; 0 when no one line is
	Index   int64 // index of the first bad record; -1 when no record is named
	Reason  string
}

func (e *VerifyError) Error() string {
	s := e.Failure.String()
	if e.Line > 0 {
		s += fmt.Sprintf(": line %d", e.Line)
	}
	if e.Index >= 0 {
		s += fmt.Sprintf(": record %d", e.Index)
	}
	return s + ": " + e.Reason
}

func fail(f Failure, line int, index int64, format string, args ...any) *VerifyError {
	return &VerifyError{Failure: f, Line: line, Index: index, Reason: fmt.Sprintf(format, args...)}
}

// Verified is what a bundle that verifies proves.
type Verified struct {
	Header     BundleHeader
	Checkpoint Checkpoint
	// Note is the signed checkpoint, to keep as the next trusted checkpoint.
	Note []byte
	// Trusted reports that the bundle's tree was shown to extend (or equal)
	// the trusted checkpoint.
	Trusted bool
}

// maxLine bounds a bundle line; a record is far smaller.
const maxLine = 1 << 20

// VerifyBundle checks an export bundle offline and returns what it proves,
// or a *VerifyError naming the failure class, the bundle line and the record
// index. It trusts only pinned (note.VerifierList of a pinned verifier key,
// or PublicKeyVerifiers of a pinned public key), never a key in the bundle,
// and trusted (nil for none), a checkpoint the auditor holds from before.
//
// It checks: the checkpoint's signature by a pinned key under its origin's
// name; the header against the checkpoint; every record line (strict
// ParseLine, the bundle's tenant); index order and contiguity; for a
// complete export, the recomputed root; otherwise each record's inclusion
// proof (tlog.CheckRecord); the consistency proof, whole (tlog.CheckTree);
// and against trusted: not newer than the bundle (Rollback), no other root
// at its size and a tree that extends it (Fork). It reads the bundle once,
// parsing and hashing on every CPU, and keeps about 76 bytes per record of
// a complete export (index, line number, the tree's stored hashes), or a
// leaf hash and a proof per record of a partial one.
func VerifyBundle(r io.Reader, pinned Pinned, trusted *Checkpoint) (*Verified, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), maxLine)
	lineNo := 0
	next := func() ([]byte, bool) {
		if lineNo == math.MaxInt32 || !sc.Scan() {
			return nil, false
		}
		lineNo++
		return sc.Bytes(), true
	}
	sc.Split(scanLF)

	line, ok := next()
	var h BundleHeader
	if !ok || unmarshalLine(line, &h) != nil || h.Type != "header" || h.Format != BundleFormat {
		if err := sc.Err(); err != nil {
			return nil, scanError(err, lineNo)
		}
		return nil, fail(Unusable, 1, -1, "the first line is not the header of an EventVault audit bundle")
	}
	if h.Version != BundleVersion {
		return nil, fail(Unusable, 1, -1, "bundle version %d; this build reads version %d", h.Version, BundleVersion)
	}
	if h.TreeSize < 0 || h.Count < 0 || h.First < 0 {
		return nil, fail(Tampered, 1, -1, "the header holds a negative size")
	}
	complete := h.Complete()

	set, line, ok := readRecords(func() ([]byte, int, bool) {
		line, ok := next()
		return line, lineNo, ok
	}, h)
	idx, lines, tree := set.idx, set.lines, &set.tree
	if err := sc.Err(); err != nil {
		return nil, scanError(err, lineNo)
	}
	if lineNo == math.MaxInt32 {
		return nil, fail(Unusable, lineNo, -1, "more lines than this verifier counts")
	}

	// The checkpoint, signed by the pinned key.
	if !ok {
		return nil, fail(Truncated, lineNo, -1, "the bundle ends after line %d, before its signed checkpoint", lineNo)
	}
	var cl checkpointLine
	if !bytes.HasPrefix(line, []byte(checkpointPrefix)) || unmarshalLine(line, &cl) != nil || cl.Type != "checkpoint" {
		return nil, fail(Tampered, lineNo, -1, "neither a record nor the checkpoint line")
	}
	cpLine := lineNo
	cp, err := OpenCheckpoint([]byte(cl.Note), pinned)
	switch {
	case errors.Is(err, ErrBadSignature):
		return nil, fail(BadSignature, cpLine, -1, "%v", err)
	case err != nil:
		return nil, fail(Tampered, cpLine, -1, "%v", err)
	}
	if d := headerMismatch(h, cp); d != "" {
		return nil, fail(Tampered, 1, -1, "the header contradicts the signed checkpoint: %s", d)
	}

	// The optional consistency proof, then the end.
	var cons *consistencyLine
	consLine := 0
	if line, ok = next(); ok {
		cons = new(consistencyLine)
		consLine = lineNo
		if !bytes.HasPrefix(line, []byte(consistencyPrefix)) || unmarshalLine(line, cons) != nil || cons.Type != "consistency" {
			return nil, fail(Tampered, lineNo, -1, "not a consistency proof line")
		}
		if _, ok = next(); ok {
			return nil, fail(Tampered, lineNo, -1, "a line after the consistency proof")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanError(err, lineNo)
	}

	// The records, in bundle order.
	if set.first != nil {
		return nil, set.first
	}
	if err := checkOrder(h, idx, lines, cpLine); err != nil {
		return nil, err
	}
	if complete {
		if root, _ := tree.Tree().Root(cp.Size); root != cp.Root {
			return nil, fail(Tampered, 0, -1, "the %d records do not hash to the signed root: a record was edited or inserted (a root cannot tell which%s)", len(idx), narrow(tree, trusted, cp))
		}
	} else {
		for i, proof := range set.proofs {
			if proof == nil {
				return nil, fail(Tampered, int(lines[i]), idx[i], "no inclusion proof, though the bundle is not a complete export")
			}
			if tlog.CheckRecord(proof, cp.Size, cp.Root, idx[i], set.leaves[i]) != nil {
				return nil, fail(Tampered, int(lines[i]), idx[i], "the inclusion proof does not check against the signed root: the record or its proof was altered")
			}
		}
	}
	if cons != nil {
		// The whole proof, every hash of it: not just its two ends.
		if cons.OldSize < 1 || cons.OldSize > cp.Size || tlog.CheckTree(cons.Proof, cp.Size, cp.Root, cons.OldSize, cons.OldRoot) != nil {
			return nil, fail(Tampered, consLine, -1, "the consistency proof from size %d does not check against the signed root", cons.OldSize)
		}
	}

	v := &Verified{Header: h, Checkpoint: cp, Note: []byte(cl.Note)}
	if trusted != nil {
		if err := checkTrusted(*trusted, cp, complete, tree, cons, consLine); err != nil {
			return nil, err
		}
		v.Trusted = true
	}
	return v, nil
}

// errCRLF is what scanLF stops on: a line ending in CR LF.
var errCRLF = errors.New("a line ends in CR LF")

// scanLF is bufio.ScanLines without its tolerance: a bundle's lines end in
// LF alone, and one ending in CR LF (a bundle opened and saved by an editor
// or a tool that rewrote line ends) stops the scan with errCRLF, rather than
// verifying bytes other than the ones the server wrote.
func scanLF(data []byte, atEOF bool) (int, []byte, error) {
	advance, token, err := bufio.ScanLines(data, atEOF)
	if err == nil && advance > 0 && bytes.HasSuffix(bytes.TrimSuffix(data[:advance], []byte("\n")), []byte("\r")) {
		return 0, nil, errCRLF
	}
	return advance, token, err
}

// scanError turns the scanner's error after line lineNo into the
// verifier's: a CR LF line end is an unusable bundle, anything else a read
// error.
func scanError(err error, lineNo int) error {
	if errors.Is(err, errCRLF) {
		return fail(Unusable, lineNo+1, -1, "line %d ends in CR LF; a bundle's lines end in LF alone, as the server wrote them (was it saved by an editor or a tool that rewrote line ends?)", lineNo+1)
	}
	return fmt.Errorf("read audit bundle: line %d: %w", lineNo+1, err)
}

// narrow says which half of a complete export a trusted checkpoint puts
// an edit in.
func narrow(tree *MemoryTree, trusted *Checkpoint, cp Checkpoint) string {
	if trusted == nil || trusted.Origin != cp.Origin || trusted.Size < 1 || trusted.Size >= cp.Size {
		return ""
	}
	if root, err := tree.Tree().Root(trusted.Size); err == nil && root == trusted.Root {
		return fmt.Sprintf("; records 0 to %d match your trusted checkpoint, so it is among records %d to %d", trusted.Size-1, trusted.Size, cp.Size-1)
	}
	return fmt.Sprintf("; records 0 to %d already differ from your trusted checkpoint", trusted.Size-1)
}

// splitRecordLine returns the record bytes of a record line and its proof.
func splitRecordLine(line []byte, complete bool) ([]byte, tlog.RecordProof, error) {
	rest := line[len(recordPrefix):]
	if len(rest) < 2 || rest[len(rest)-1] != '}' {
		return nil, nil, errors.New("the line does not end in '}'")
	}
	rest = rest[:len(rest)-1]
	if complete {
		return rest, nil, nil
	}
	i := bytes.LastIndex(rest, []byte(proofInfix))
	if i < 0 {
		return rest, nil, nil
	}
	list := rest[i+len(proofInfix)-1:]
	var proof tlog.RecordProof
	if len(list) < 2 || list[len(list)-1] != ']' {
		return nil, nil, errors.New("malformed proof")
	}
	if items := list[1 : len(list)-1]; len(items) > 0 {
		for _, item := range bytes.Split(items, []byte(",")) {
			if len(item) < 2 || item[0] != '"' || item[len(item)-1] != '"' {
				return nil, nil, errors.New("malformed proof hash")
			}
			hh, err := tlog.ParseHash(string(item[1 : len(item)-1]))
			if err != nil || hh.String() != string(item[1:len(item)-1]) {
				return nil, nil, errors.New("malformed proof hash")
			}
			proof = append(proof, hh)
		}
	}
	if proof == nil {
		proof = tlog.RecordProof{}
	}
	return rest[:i], proof, nil
}

// checkOrder checks the indexes of the record lines (idx[i] on bundle line
// lines[i]): no duplicate or out-of-tree index (inserted: Tampered),
// ascending (else Reordered), nothing missing from a range or from the
// header's count (else Truncated), nothing more (else Tampered).
func checkOrder(h BundleHeader, idx []int64, lines []int32, cpLine int) error {
	n := len(idx)
	sorted := slices.Clone(idx)
	slices.Sort(sorted)
	for i, x := range idx {
		if x >= h.TreeSize {
			return fail(Tampered, int(lines[i]), x, "index %d is beyond the signed tree of %d records: inserted", x, h.TreeSize)
		}
	}
	for i := 1; i < n; i++ {
		if sorted[i] == sorted[i-1] {
			seen := false
			for j, y := range idx { // name the second line holding it
				if y == sorted[i] {
					if seen {
						return fail(Tampered, int(lines[j]), y, "a second record with index %d: inserted", y)
					}
					seen = true
				}
			}
		}
	}
	for i := range idx {
		if idx[i] != sorted[i] {
			return fail(Reordered, int(lines[i]), idx[i], "record %d comes where record %d belongs", idx[i], sorted[i])
		}
	}
	if h.Filtered && n > 0 && idx[0] != h.First {
		if idx[0] > h.First {
			return fail(Truncated, int(lines[0]), h.First, "record %d, the header's first, is missing", h.First)
		}
		return fail(Tampered, int(lines[0]), idx[0], "record %d comes before the header's first, %d: inserted", idx[0], h.First)
	}
	want := h.Count
	if h.Complete() {
		want = h.TreeSize
	}
	if !h.Filtered {
		for i := range idx {
			if e := h.First + int64(i); idx[i] != e {
				return fail(Truncated, int(lines[i]), e, "record %d is missing (line %d holds record %d)", e, lines[i], idx[i])
			}
		}
	}
	if int64(n) < want {
		e := int64(-1)
		if !h.Filtered {
			e = h.First + int64(n)
		}
		return fail(Truncated, cpLine, e, "%d of %d records: the records end before the checkpoint line", n, want)
	}
	if int64(n) > want {
		return fail(Tampered, int(lines[want]), idx[want], "%d records, the header says %d: inserted", n, want)
	}
	return nil
}

// checkTrusted checks the bundle's checkpoint against the auditor's.
func checkTrusted(t, cp Checkpoint, complete bool, tree *MemoryTree, cons *consistencyLine, consLine int) error {
	switch {
	case t.Origin != cp.Origin:
		return fail(Unusable, 0, -1, "the trusted checkpoint is of log %s, the bundle of %s", t.Origin, cp.Origin)
	case t.Size > cp.Size:
		return fail(Rollback, 0, -1, "the bundle's checkpoint (size %d) is older than the trusted one (size %d): the log was rolled back, or this is an old export", cp.Size, t.Size)
	case t.Size == cp.Size:
		if t.Root != cp.Root {
			return fail(Fork, 0, -1, "two different roots signed for size %d: the log forked", t.Size)
		}
		return nil
	case t.Size == 0:
		return nil
	}
	if complete {
		// The records themselves are the proof.
		if root, _ := tree.Tree().Root(t.Size); root != t.Root {
			return fail(Fork, 0, -1, "records 0 to %d do not hash to the trusted root: the log's history was rewritten", t.Size-1)
		}
		if cons != nil && cons.OldSize == t.Size && cons.OldRoot != t.Root {
			return fail(Tampered, consLine, -1, "the consistency proof starts from a root the records contradict")
		}
		return nil
	}
	if cons == nil || cons.OldSize != t.Size {
		return fail(Unusable, 0, -1, "the bundle holds no consistency proof from size %d: export again giving your checkpoint's size", t.Size)
	}
	if cons.OldRoot != t.Root {
		return fail(Fork, consLine, -1, "the log's root at size %d is not the trusted one: the log forked", t.Size)
	}
	return nil // CheckTree passed for (OldSize, OldRoot) = (t.Size, t.Root)
}

// headerMismatch names each field of the bundle's header that differs
// from the signed checkpoint, with both values ("" when none does), so
// that an auditor sees what was changed, not two summaries to compare.
func headerMismatch(h BundleHeader, cp Checkpoint) string {
	var diffs []string
	if h.Tenant != cp.Tenant() {
		diffs = append(diffs, fmt.Sprintf("tenant %q, signed %q", eventvault.Truncate(h.Tenant, 100), cp.Tenant()))
	}
	if h.Origin != cp.Origin {
		diffs = append(diffs, fmt.Sprintf("origin %q, signed %q", eventvault.Truncate(h.Origin, 200), cp.Origin))
	}
	if h.TreeSize != cp.Size {
		diffs = append(diffs, fmt.Sprintf("tree_size %d, signed %d", h.TreeSize, cp.Size))
	}
	return strings.Join(diffs, "; ")
}
