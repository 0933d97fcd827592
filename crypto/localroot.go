package crypto

import (
	"context"
	"crypto/cipher"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/eventvault/eventvault"
	"golang.org/x/crypto/chacha20poly1305"
)

// LocalRootKey is the dev-mode root key: 32 random bytes in a file readable
// by its owner only. It wraps a key as nonce (24 bytes) || XChaCha20-Poly1305
// of the key, with the aad as associated data. Anyone who can read the file
// can read every tenant's data: in production the root key stays in Vault.
type LocalRootKey struct {
	path string
	aead cipher.AEAD
	rand io.Reader
}

// OpenLocalRootKey reads the root key file at path, creating it (mode 0600,
// its directory 0700 if missing) with 32 bytes from crypto/rand when it does
// not exist. It refuses a file that group or others may read or write, and a
// file that is not exactly 32 bytes. It never prints key bytes.
// Errors: EINVALID for a file it refuses; EUNAVAILABLE if the file cannot be
// read or created.
func OpenLocalRootKey(path string) (*LocalRootKey, error) {
	const op = "crypto.OpenLocalRootKey"
	key, err := readRootKeyFile(op, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createRootKeyFile(op, path); err != nil {
			return nil, err
		}
		key, err = readRootKeyFile(op, path)
	}
	if err != nil {
		return nil, err
	}
	defer clear(key)
	k, err := newLocalRootKey(path, key, crand.Reader)
	if err != nil {
		return nil, internalError(op, err, "could not use the root key in %s", path)
	}
	return k, nil
}

// newLocalRootKey returns the root key of key. The caller keeps and zeroes key.
func newLocalRootKey(path string, key []byte, rand io.Reader) (*LocalRootKey, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &LocalRootKey{path: path, aead: aead, rand: rand}, nil
}

func readRootKeyFile(op, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot open the root key file %s", path), Err: err}
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of whatever the path names by now
	if err != nil {
		return nil, &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot stat the root key file %s", path), Err: err}
	}
	if !fi.Mode().IsRegular() {
		return nil, refused(op, "the root key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, refused(op, "the root key file %s has mode %04o, so group or others may read or write it; run chmod 600 %s", path, perm, path)
	}
	if fi.Size() != keySize {
		return nil, refused(op, "the root key file %s is %d bytes long; a root key file holds exactly %d random bytes (raw, not hex or base64)", path, fi.Size(), keySize)
	}
	key := make([]byte, keySize+1) // one more, to notice a file that grew since Stat
	n, err := io.ReadFull(f, key)
	if n != keySize || !errors.Is(err, io.ErrUnexpectedEOF) {
		clear(key)
		return nil, refused(op, "the root key file %s changed while it was read; a root key file holds exactly %d random bytes", path, keySize)
	}
	key = key[:keySize]
	if allZero(key) {
		return nil, refused(op, "the root key file %s holds only zero bytes; remove it to have a random key created", path)
	}
	return key, nil
}

// createRootKeyFile writes a new random key to a temporary file and links it
// into place, so that path never holds a partial key and a concurrent
// creator's key is never overwritten.
func createRootKeyFile(op, path string) error {
	fail := func(err error) error {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot create the root key file %s", path), Err: err}
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
	key := make([]byte, keySize)
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

// refused is a root key file OpenLocalRootKey will not use.
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

// String names the key file; it prints no key bytes.
func (k LocalRootKey) String() string { return fmt.Sprintf("LocalRootKey(%s)", k.path) }

// GoString is String.
func (k LocalRootKey) GoString() string { return k.String() }

// WrapKey returns nonce || XChaCha20-Poly1305(root key, nonce, key, aad).
// Errors: EINTERNAL if the random source fails.
func (k *LocalRootKey) WrapKey(_ context.Context, key, aad []byte) ([]byte, error) {
	out := make([]byte, nonceSize, nonceSize+len(key)+tagSize)
	if _, err := io.ReadFull(k.rand, out); err != nil {
		return nil, internalError("crypto.LocalRootKey.WrapKey", err, "could not read a random nonce")
	}
	return k.aead.Seal(out, out, key, aad), nil
}

// UnwrapKey opens what WrapKey returned for the same aad.
// Errors: EINTERNAL wrapping ErrAuthentication if wrapped or aad was altered
// or wrapped comes from another root key.
func (k *LocalRootKey) UnwrapKey(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	const op = "crypto.LocalRootKey.UnwrapKey"
	if len(wrapped) < nonceSize+tagSize {
		return nil, authError(op, "a key wrapped by the local root key is truncated")
	}
	key, err := k.aead.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, authError(op, "a key wrapped by the local root key failed authentication: it was altered or moved, or another root key wrapped it")
	}
	return key, nil
}
