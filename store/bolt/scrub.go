package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bbolt "go.etcd.io/bbolt"
)

// keyScrub in the meta bucket marks a file that holds the pages of a shred
// not yet scrubbed. The shred's transaction writes it; scrub removes it.
var keyScrub = []byte("scrub")

// markScrub records, in the shred's transaction, that the file must be
// scrubbed, so that a crash before the scrub is caught up on at Open.
func (db *DB) markScrub(tx *bbolt.Tx) error {
	if err := tx.Bucket(bucketMeta).Put(keyScrub, []byte{1}); err != nil {
		return fmt.Errorf("mark the file for scrubbing: %w", err)
	}
	tx.OnCommit(func() { db.scrubPending.Store(true) })
	return nil
}

// scrub rewrites the file with its live data only, if a shred is pending,
// so that no free page still holds a destroyed key or a purged event: bbolt
// copies a page on every change and leaves the old copy in the file. It
// compacts into a new file next to it (bbolt.Compact), closes the store's
// handle, renames the new file over the old and opens it. Transactions wait
// meanwhile. The old file's blocks go back to the file system, which may
// keep their bytes until it reuses them; an encrypted disk covers that.
//
// If the new file cannot be put in place, the old one is opened again and
// the scrub stays pending: the next shred, or the next Open, tries again.
func (db *DB) scrub() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !db.scrubPending.Load() {
		return nil
	}
	tmp := db.path + ".scrub"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("scrub: remove a leftover %s: %w", tmp, err)
	}
	if err := compactInto(tmp, db.bolt, db.opts); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("scrub: %w", err)
	}
	if err := db.bolt.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("scrub: close %s: %w", db.path, err)
	}
	renameErr := os.Rename(tmp, db.path)
	if renameErr == nil {
		renameErr = syncDir(filepath.Dir(db.path))
	}
	reopened, err := bbolt.Open(db.path, 0o600, &db.opts)
	if err != nil {
		// db.bolt stays closed: every call answers EUNAVAILABLE.
		return fmt.Errorf("scrub: reopen %s: %w", db.path, errors.Join(renameErr, err))
	}
	db.bolt = reopened
	db.scrubs++
	if renameErr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("scrub: put the scrubbed file in place: %w", renameErr)
	}
	db.scrubPending.Store(false)
	return nil
}

// compactTxSize bounds the data one transaction of a compaction copies, so
// that a large file is not copied in memory at once. Pages an intermediate
// commit frees hold live data only.
const compactTxSize = 16 << 20

// compactInto copies the live data of src into a new file at path, without
// the scrub mark. The mark is deleted after the copy; the pages that frees
// hold the meta bucket and bucket headers, never a key or an event.
func compactInto(path string, src *bbolt.DB, opts bbolt.Options) error {
	dst, err := bbolt.Open(path, 0o600, &opts)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := bbolt.Compact(dst, src, compactTxSize); err != nil {
		dst.Close()
		return fmt.Errorf("compact into %s: %w", path, err)
	}
	err = dst.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyScrub) })
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("finish %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
