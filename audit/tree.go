package audit

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Tree is a tenant's Merkle tree (RFC 6962 §2.1; RFC 9162 §2.1) over the
// stored hashes a store keeps for it, read through a tlog.HashReader. A
// store keeps, for each record, the hashes StoredHashes returns, at the
// positions tlog.StoredHashIndex gives (a dense sequence: record n's hashes
// start at tlog.StoredHashIndex(0, n)); about two hashes of 32 bytes per
// record. Every method reads at most O(log n) hashes.
type Tree struct {
	Hashes tlog.HashReader
}

// StoredHashes returns the hashes to store when appending record line (the
// exact MarshalLine bytes) at index, the tree's size before the append, and
// the stored-hash index of the first of them. It reads up to log₂(index)
// earlier hashes.
func (t Tree) StoredHashes(index int64, line []byte) (start int64, hashes []tlog.Hash, err error) {
	hashes, err = tlog.StoredHashes(index, line, t.Hashes)
	if err != nil {
		return 0, nil, fmt.Errorf("audit tree: hashes for record %d: %w", index, err)
	}
	return tlog.StoredHashIndex(0, index), hashes, nil
}

// Root returns the root hash of the tree of the first size records.
func (t Tree) Root(size int64) (tlog.Hash, error) {
	h, err := tlog.TreeHash(size, t.Hashes)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("audit tree: root of size %d: %w", size, err)
	}
	return h, nil
}

// InclusionProof returns the proof (RFC 6962 §2.1.1 audit path) that the
// tree of size contains record index; check it with tlog.CheckRecord.
func (t Tree) InclusionProof(size, index int64) (tlog.RecordProof, error) {
	p, err := tlog.ProveRecord(size, index, t.Hashes)
	if err != nil {
		return nil, fmt.Errorf("audit tree: inclusion of %d in size %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof (RFC 6962 §2.1.2) that the tree of
// size extends the tree of oldSize (0 < oldSize <= size); check it with
// tlog.CheckTree.
func (t Tree) ConsistencyProof(size, oldSize int64) (tlog.TreeProof, error) {
	p, err := tlog.ProveTree(size, oldSize, t.Hashes)
	if err != nil {
		return nil, fmt.Errorf("audit tree: consistency of size %d with %d: %w", size, oldSize, err)
	}
	return p, nil
}

// MemoryTree is a Tree held in memory: for tests, for the bundle verifier,
// and as the reference a store's implementation is compared with. The zero
// value is an empty tree. It is not safe for concurrent use.
type MemoryTree struct {
	hashes []tlog.Hash
	size   int64
}

// Append adds a record line (its exact MarshalLine bytes) as the next leaf
// and returns its index.
func (m *MemoryTree) Append(line []byte) int64 {
	return m.AppendLeafHash(tlog.RecordHash(line))
}

// AppendLeafHash adds a leaf by its hash, tlog.RecordHash(line).
func (m *MemoryTree) AppendLeafHash(h tlog.Hash) int64 {
	hashes, err := tlog.StoredHashesForRecordHash(m.size, h, m)
	if err != nil {
		panic(err) // ReadHashes of earlier hashes cannot fail
	}
	m.hashes = append(m.hashes, hashes...)
	m.size++
	return m.size - 1
}

// Size returns the number of records.
func (m *MemoryTree) Size() int64 { return m.size }

// Tree returns the tree over m's hashes.
func (m *MemoryTree) Tree() Tree { return Tree{Hashes: m} }

// ReadHashes implements tlog.HashReader.
func (m *MemoryTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("audit tree: no stored hash %d in a tree of %d records", x, m.size)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}
