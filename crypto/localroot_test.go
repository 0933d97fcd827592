package crypto_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/cryptotest"
)

func openRootKey(t *testing.T, path string) *evcrypto.LocalRootKey {
	t.Helper()
	k, err := evcrypto.OpenLocalRootKey(path)
	if err != nil {
		t.Fatalf("OpenLocalRootKey: %v", err)
	}
	return k
}

func TestLocalRootKeyPassesTheProviderSuite(t *testing.T) {
	cryptotest.RunRootKeyProvider(t, openRootKey(t, filepath.Join(t.TempDir(), "root.key")))
}

func TestOpenLocalRootKeyCreatesAnOwnerOnlyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "root.key")
	openRootKey(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file has mode %04o and %d bytes; want 0600 and 32", fi.Mode().Perm(), fi.Size())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("created directory has mode %04o; want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("the directory holds %d entries; want only the key file", len(entries))
	}
}

func TestOpenLocalRootKeyReopensTheSameKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	first := openRootKey(t, path)
	second := openRootKey(t, path)
	key, aad := bytes.Repeat([]byte{7}, 32), []byte("aad")
	wrapped, err := first.WrapKey(t.Context(), key, aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := second.UnwrapKey(t.Context(), wrapped, aad)
	if err != nil {
		t.Fatalf("the reopened key does not unwrap: %v", err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("the reopened key unwrapped another key")
	}
}

func TestLocalRootKeyOfAnotherFileFailsToUnwrap(t *testing.T) {
	a := openRootKey(t, filepath.Join(t.TempDir(), "a.key"))
	b := openRootKey(t, filepath.Join(t.TempDir(), "b.key"))
	wrapped, err := a.WrapKey(t.Context(), bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UnwrapKey(t.Context(), wrapped, nil); !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("unwrap with another root key: %v; want ErrAuthentication", err)
	}
}

func TestOpenLocalRootKeyRefusesAnUnsafeFile(t *testing.T) {
	random := bytes.Repeat([]byte{0x5a}, 32)
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    []string // in the message; "PATH" stands for the file's path
	}{
		{"worldReadable", random, 0o644, []string{"PATH", "mode 0644", "chmod 600 PATH"}},
		{"groupReadable", random, 0o640, []string{"PATH", "chmod 600 PATH"}},
		{"groupWritable", random, 0o620, []string{"PATH", "chmod 600 PATH"}},
		{"othersWritable", random, 0o602, []string{"PATH", "chmod 600 PATH"}},
		{"empty", nil, 0o600, []string{"PATH", "0 bytes", "exactly 32"}},
		{"short", random[:31], 0o600, []string{"PATH", "31 bytes", "exactly 32"}},
		{"long", append(random, 0), 0o600, []string{"PATH", "33 bytes"}},
		{"hex", []byte(hex.EncodeToString(random)), 0o600, []string{"PATH", "64 bytes", "not hex"}},
		{"allZero", make([]byte, 32), 0o600, []string{"PATH", "zero bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root.key")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := evcrypto.OpenLocalRootKey(path)
			if code := eventvault.ErrorCode(err); code != eventvault.EINVALID {
				t.Fatalf("error %v has code %q; want %q", err, code, eventvault.EINVALID)
			}
			msg := eventvault.ErrorMessage(err)
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, hex.EncodeToString(random[:8])) || strings.Contains(msg, string(random[:8])) {
				t.Fatalf("message %q holds key bytes", msg)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tc.content) {
				t.Fatal("a refused key file was changed")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		path := t.TempDir()
		_, err := evcrypto.OpenLocalRootKey(path)
		if code := eventvault.ErrorCode(err); code != eventvault.EINVALID {
			t.Fatalf("error %v has code %q; want %q", err, code, eventvault.EINVALID)
		}
	})
}

func TestLocalRootKeyPrintsNoKeyBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.key")
	k := openRootKey(t, path)
	key, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, v := range []any{k, *k} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, string(key[:8])) || strings.Contains(strings.ToLower(out), hex.EncodeToString(key[:8])) ||
				strings.Contains(out, strings.Trim(fmt.Sprintf("%d", key[:8]), "[]")) {
				t.Fatalf("%s prints key bytes: %s", verb, out)
			}
		}
	}
}
