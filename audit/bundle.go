package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"

	"golang.org/x/mod/sumdb/tlog"
)

// BundleFormat and BundleVersion name the export bundle format in its header.
const (
	BundleFormat  = "eventvault-audit-bundle"
	BundleVersion = 1
)

// BundleHeader is the first line of a bundle. It is not signed: the verifier
// checks it against the signed checkpoint and the records.
type BundleHeader struct {
	Type     string `json:"type"`      // "header"
	Format   string `json:"format"`    // BundleFormat
	Version  int    `json:"version"`   // BundleVersion
	Tenant   string `json:"tenant"`    // the tenant whose log this is
	Origin   string `json:"origin"`    // the checkpoint's origin, Origin(logName, Tenant)
	First    int64  `json:"first"`     // index of the first record (0 when Count is 0)
	Count    int64  `json:"count"`     // number of record lines
	TreeSize int64  `json:"tree_size"` // size of the tree the checkpoint signs
	Filtered bool   `json:"filtered"`  // records are a selection, not a contiguous range
	Filter   string `json:"filter"`    // what selected them (server's words, e.g. "resource=subject:9f2c…"); "" unless Filtered
}

// Complete reports whether the bundle holds every record of the signed
// tree, 0 to TreeSize-1: the verifier then recomputes the root, and record
// lines carry no inclusion proofs. Any other bundle (a range, a selection)
// carries an inclusion proof per record.
func (h BundleHeader) Complete() bool {
	return !h.Filtered && h.First == 0 && h.Count == h.TreeSize
}

// Prefixes of the other lines; every line is compact JSON ending in "\n".
const (
	recordPrefix      = `{"type":"record","record":`
	proofInfix        = `,"proof":[`
	checkpointPrefix  = `{"type":"checkpoint",`
	consistencyPrefix = `{"type":"consistency",`
)

// checkpointLine is the line after the records.
type checkpointLine struct {
	Type string `json:"type"` // "checkpoint"
	Note string `json:"note"` // the signed note, C2SP tlog-checkpoint + signed-note
}

// consistencyLine is the optional last line.
type consistencyLine struct {
	Type    string      `json:"type"`     // "consistency"
	OldSize int64       `json:"old_size"` // the auditor's checkpoint size
	OldRoot tlog.Hash   `json:"old_root"` // the root the log has at OldSize
	Proof   []tlog.Hash `json:"proof"`    // RFC 6962 §2.1.2 consistency proof, OldSize to TreeSize
}

// Export is what WriteBundle writes.
type Export struct {
	// Checkpoint is the signed note (Signer.Sign) of the tree head the bundle
	// proves against; its size is the bundle's TreeSize.
	Checkpoint []byte
	// Hashes reads the tenant tree's stored hashes (see Tree), at least up
	// to the checkpoint's size.
	Hashes tlog.HashReader
	// First and Count give the records: the range [First, First+Count) when
	// Filter is empty, else Count selected records, the first of index First.
	First, Count int64
	// Filter says how records were selected (non-empty makes a filtered
	// export): for example "resource=subject:<pseudonym hex>".
	Filter string
	// Records yields the record lines (exact MarshalLine bytes, no newline)
	// in ascending index order.
	Records iter.Seq2[[]byte, error]
	// OldSize, when above 0, adds a consistency proof from the tree of that
	// size (the auditor's checkpoint) to the checkpoint's.
	OldSize int64
}

// WriteBundle writes an export bundle (see the package doc for the format).
// It checks what it writes: the hashes give the checkpoint's root, every
// record line parses and belongs to the checkpoint's tenant, indexes ascend
// as First, Count and Filter say, and each inclusion proof checks. It makes
// one hash read per record of a range or filtered export, none per record of
// a complete one.
func WriteBundle(w io.Writer, e Export) error {
	cp, err := checkpointOfNote(e.Checkpoint)
	if err != nil {
		return fmt.Errorf("write audit bundle: %w", err)
	}
	tree := Tree{Hashes: e.Hashes}
	root, err := tree.Root(cp.Size)
	if err != nil {
		return fmt.Errorf("write audit bundle: %w", err)
	}
	if root != cp.Root {
		return fmt.Errorf("write audit bundle: the stored hashes give root %s at size %d, the checkpoint %s", root, cp.Size, cp.Root)
	}
	h := BundleHeader{Type: "header", Format: BundleFormat, Version: BundleVersion, Tenant: cp.Tenant(), Origin: cp.Origin,
		First: e.First, Count: e.Count, TreeSize: cp.Size, Filtered: e.Filter != "", Filter: e.Filter}
	if e.First < 0 || e.Count < 0 || !h.Filtered && e.First+e.Count > cp.Size || e.Count == 0 && e.First != 0 {
		return fmt.Errorf("write audit bundle: records [%d, +%d) are not in a tree of %d", e.First, e.Count, cp.Size)
	}
	if e.OldSize < 0 || e.OldSize > cp.Size {
		return fmt.Errorf("write audit bundle: cannot prove consistency from size %d to %d", e.OldSize, cp.Size)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := writeJSONLine(bw, h); err != nil {
		return err
	}
	var n int64
	prev := int64(-1)
	if e.Records != nil {
		for line, err := range e.Records {
			if err != nil {
				return fmt.Errorf("write audit bundle: read record: %w", err)
			}
			index, tenant, err := checkLine(line)
			if err != nil {
				return fmt.Errorf("write audit bundle: record %d of the export: %w", n, err)
			}
			switch {
			case string(tenant) != h.Tenant:
				return fmt.Errorf("write audit bundle: record %d is of tenant %s, not %s", index, tenant, h.Tenant)
			case n >= e.Count:
				return fmt.Errorf("write audit bundle: more than %d records", e.Count)
			case !h.Filtered && index != e.First+n, h.Filtered && (index <= prev || n == 0 && index != e.First), index >= cp.Size:
				return fmt.Errorf("write audit bundle: record %d out of order or outside the export", index)
			}
			bw.WriteString(recordPrefix)
			bw.Write(line)
			if !h.Complete() {
				proof, err := tree.InclusionProof(cp.Size, index)
				if err != nil {
					return fmt.Errorf("write audit bundle: %w", err)
				}
				if err := tlog.CheckRecord(proof, cp.Size, cp.Root, index, tlog.RecordHash(line)); err != nil {
					return fmt.Errorf("write audit bundle: record %d is not the one the stored hashes hold: %w", index, err)
				}
				bw.WriteString(proofInfix[:len(proofInfix)-1])
				bw.Write(hashList(proof))
			}
			bw.WriteString("}\n")
			prev = index
			n++
		}
	}
	if n != e.Count {
		return fmt.Errorf("write audit bundle: %d records, the export says %d", n, e.Count)
	}
	if err := writeJSONLine(bw, checkpointLine{Type: "checkpoint", Note: string(e.Checkpoint)}); err != nil {
		return err
	}
	if e.OldSize > 0 && e.OldSize < cp.Size {
		proof, err := tree.ConsistencyProof(cp.Size, e.OldSize)
		if err != nil {
			return fmt.Errorf("write audit bundle: %w", err)
		}
		oldRoot, err := tree.Root(e.OldSize)
		if err != nil {
			return fmt.Errorf("write audit bundle: %w", err)
		}
		if err := writeJSONLine(bw, consistencyLine{Type: "consistency", OldSize: e.OldSize, OldRoot: oldRoot, Proof: proof}); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write audit bundle: %w", err)
	}
	return nil
}

// hashList encodes hashes as a JSON array of base64 strings.
func hashList(hs []tlog.Hash) []byte {
	b := []byte{'['}
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, h.String()...)
		b = append(b, '"')
	}
	return append(b, ']')
}

func writeJSONLine(w *bufio.Writer, v any) error {
	b, err := marshalLine(v)
	if err != nil {
		return fmt.Errorf("write audit bundle: %w", err)
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// marshalLine is the canonical form of a non-record bundle line:
// encoding/json's compact output of the struct.
func marshalLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// unmarshalLine parses a non-record bundle line strictly: no unknown keys,
// and the bytes must be the canonical form marshalLine writes.
func unmarshalLine(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	again, err := marshalLine(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, line) {
		return fmt.Errorf("not in canonical form")
	}
	return nil
}
