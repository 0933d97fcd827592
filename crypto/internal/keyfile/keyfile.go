// Package keyfile reads and creates the key files of one deployment: the
// local root key (dev), the signing key's seed and the pseudonym key. A key
// file holds exactly Size random bytes, raw, and is readable by its owner
// only; it is created with crypto/rand when missing, and never holds a
// partial key. The bytes it returns are the caller's to use and zero.
package keyfile

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/eventvault/eventvault"
)

// Size is the length of every key file: one 256-bit key.
const Size = 32

// Open reads the key file at path, creating it with random bytes first
// when it does not exist. op names the caller in errors and what names the
// file's purpose in messages ("root key", "signing key").
// Errors: EINVALID for a file it refuses (not a regular file, group or
// others may read or write it, not Size bytes, all zero); EUNAVAILABLE if
// the file cannot be read or created.
func Open(op, what, path string) ([]byte, error) {
	key, err := readKeyFile(op, what, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(op, path); err != nil {
			return nil, err
		}
		key, err = readKeyFile(op, what, path)
	}
	return key, err
}

// Read reads the key file at path under the rules of Open, and never
// creates it. Errors: EINVALID for a file it refuses; ENOTFOUND if there is
// no such file; EUNAVAILABLE if it cannot be read.
func Read(op, what, path string) ([]byte, error) {
	key, err := readKeyFile(op, what, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &eventvault.Error{Code: eventvault.ENOTFOUND, Op: op, Message: fmt.Sprintf("there is no %s file %s", what, path), Err: err}
	}
	return key, err
}

func readKeyFile(op, what, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot open the %s file %s", what, path), Err: err}
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of whatever the path names by now
	if err != nil {
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot stat the %s file %s", what, path), Err: err}
	}
	if !fi.Mode().IsRegular() {
		return nil, refused(op, "the %s file %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, refused(op, "the %s file %s has mode %04o, so group or others may read or write it; run chmod 600 %s", what, path, perm, path)
	}
	if fi.Size() != Size {
		return nil, refused(op, "the %s file %s is %d bytes long; it must hold exactly %d random bytes (raw, not hex or base64)", what, path, fi.Size(), Size)
	}
	key := make([]byte, Size+1) // one more, to notice a file that grew since Stat
	n, err := io.ReadFull(f, key)
	if n != Size || !errors.Is(err, io.ErrUnexpectedEOF) {
		clear(key)
		return nil, refused(op, "the %s file %s changed while it was read; it must hold exactly %d random bytes", what, path, Size)
	}
	key = key[:Size]
	if allZero(key) {
		return nil, refused(op, "the %s file %s holds only zero bytes; remove it to have a random key created", what, path)
	}
	return key, nil
}

// createKeyFile writes a new random key to a temporary file and links it
// into place, so that path never holds a partial key and a concurrent
// creator's key is never overwritten.
func createKeyFile(op, path string) error {
	fail := func(err error) error {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot create the key file %s", path), Err: err}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp(dir, ".rootkey-*") // mode 0600
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, Size)
	defer clear(key)
	if _, err := io.ReadFull(crand.Reader, key); err != nil {
		tmp.Close()
		return fail(err)
	}
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fail(err)
	}
	return nil
}

// refused is a key file that will not be used.
func refused(op, format string, args ...any) *eventvault.Error {
	return &eventvault.Error{Code: eventvault.EINVALID, Op: op, Message: fmt.Sprintf(format, args...)}
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}
