package audit

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// recordSet is what the record lines leave for the checks after the
// checkpoint: about 12 bytes a record, plus the tree's stored hashes (64
// bytes a record) for a complete export or a leaf hash and a proof a record
// for a partial one.
type recordSet struct {
	idx    []int64
	lines  []int32
	leaves []tlog.Hash
	proofs []tlog.RecordProof
	tree   MemoryTree
	first  *VerifyError // the first unreadable record line
}

// recordBatch is a run of record lines checked and hashed by one worker.
type recordBatch struct {
	buf    []byte
	ends   []int // end offset in buf of each line
	line0  int   // bundle line number of the first
	idx    []int64
	leaves []tlog.Hash
	proofs []tlog.RecordProof
	bad    *VerifyError
	done   chan struct{}
}

const batchLines = 4096

// readRecords reads the record lines from next (which returns a line and
// its number) up to the first line that is not one, which it returns. It
// parses and hashes lines on all CPUs and builds the set in bundle order.
func readRecords(next func() ([]byte, int, bool), h BundleHeader) (*recordSet, []byte, bool) {
	complete := h.Complete()
	set := &recordSet{}
	if complete {
		hint := min(h.TreeSize, 1<<20) // the header is not signed: bound what it makes us allocate
		set.idx, set.lines = make([]int64, 0, hint), make([]int32, 0, hint)
		set.tree.hashes = make([]tlog.Hash, 0, tlog.StoredHashCount(hint))
	}
	// Workers start with the second batch: a small bundle is read inline.
	var (
		work, order chan *recordBatch
		wg          sync.WaitGroup
		collected   chan struct{}
		free        = make(chan []byte, 8) // line buffers of collected batches, for reuse
	)
	start := func() {
		workers := max(1, runtime.GOMAXPROCS(0))
		work, order = make(chan *recordBatch, workers), make(chan *recordBatch, 2*workers)
		for range workers {
			wg.Go(func() {
				for b := range work {
					b.check(h.Tenant, complete)
				}
			})
		}
		collected = make(chan struct{})
		go func() {
			defer close(collected)
			for b := range order {
				<-b.done
				set.add(b, complete, h.TreeSize)
				select {
				case free <- b.buf[:0]:
				default:
				}
			}
		}()
	}

	var (
		b    *recordBatch
		line []byte
		no   int
		ok   bool
	)
	for {
		line, no, ok = next()
		if !ok || !bytes.HasPrefix(line, []byte(recordPrefix)) {
			break
		}
		if b == nil {
			b = &recordBatch{line0: no, done: make(chan struct{})}
			select {
			case b.buf = <-free:
			default:
				b.buf = make([]byte, 0, 16<<10)
			}
		}
		b.buf = append(b.buf, line...)
		b.ends = append(b.ends, len(b.buf))
		if len(b.ends) == batchLines {
			if work == nil {
				start()
			}
			order <- b
			work <- b
			b = nil
		}
	}
	switch {
	case work != nil:
		if b != nil {
			order <- b
			work <- b
		}
		close(work)
		close(order)
		wg.Wait()
		<-collected
	case b != nil:
		b.check(h.Tenant, complete)
		set.add(b, complete, h.TreeSize)
	}
	return set, line, ok
}

// check parses and hashes the batch's lines.
func (b *recordBatch) check(tenant string, complete bool) {
	defer close(b.done)
	n := len(b.ends)
	b.idx, b.leaves = make([]int64, n), make([]tlog.Hash, n)
	if !complete {
		b.proofs = make([]tlog.RecordProof, n)
	}
	start := 0
	for i, end := range b.ends {
		line := b.buf[start:end]
		start = end
		rec, proof, err := splitRecordLine(line, complete)
		var index int64
		var t []byte
		if err == nil {
			index, t, err = checkLine(rec)
		}
		if err == nil && string(t) != tenant {
			err = fmt.Errorf("a record of tenant %s", t)
		}
		if err != nil {
			b.idx[i] = -1
			if b.bad == nil {
				b.bad = fail(Tampered, b.line0+i, -1, "not a valid record line: %v", err)
			}
			continue
		}
		b.idx[i], b.leaves[i] = index, tlog.RecordHash(rec)
		if !complete {
			b.proofs[i] = proof
		}
	}
}

// add appends a checked batch to the set.
func (s *recordSet) add(b *recordBatch, complete bool, treeSize int64) {
	if s.first == nil {
		s.first = b.bad
	}
	for i, index := range b.idx {
		if index < 0 {
			continue
		}
		s.idx, s.lines = append(s.idx, index), append(s.lines, int32(b.line0+i))
		if complete {
			if s.tree.Size() <= treeSize {
				s.tree.AppendLeafHash(b.leaves[i])
			}
		} else {
			s.leaves, s.proofs = append(s.leaves, b.leaves[i]), append(s.proofs, b.proofs[i])
		}
	}
}
