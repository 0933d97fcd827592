package deploykeys

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/internal/secrettest"
	"github.com/eventvault/eventvault/store/bolt"
)

func openStore(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ev.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openRoot(t *testing.T) *evcrypto.LocalRootKey {
	t.Helper()
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// recordingRand is crypto/rand that remembers what it gave, so that tests
// can look for the key bytes.
type recordingRand struct {
	mu  sync.Mutex
	got []byte
}

func (r *recordingRand) Read(p []byte) (int, error) {
	n, err := crand.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

func TestInitCreatesOnceAndLoadReadsWhatInitMade(t *testing.T) {
	ctx := t.Context()
	store, root := openStore(t), openRoot(t)
	_, err := Load(ctx, root, store)
	if eventvault.ErrorCode(err) != eventvault.ENOTFOUND || !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "eventvault init") {
		t.Fatalf("Load before Init: %v; want ENOTFOUND naming eventvault init", err)
	}
	rnd := &recordingRand{}
	res, err := Init(ctx, root, store, nil, rnd)
	if err != nil || len(res) != 3 {
		t.Fatalf("Init: %v, %v", res, err)
	}
	for _, r := range res {
		if r.Outcome != Created || r.Version != 1 {
			t.Fatalf("Init result %+v; want created version 1", r)
		}
	}
	again, err := Init(ctx, root, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Outcome != Present || r.KeyID != res[i].KeyID {
			t.Fatalf("Init again: %+v; want %+v already present", r, res[i])
		}
	}
	k1, err := Load(ctx, root, store)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Load(ctx, root, store)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Signer.KeyID() != k2.Signer.KeyID() || k1.Signer.KeyID() != res[1].KeyID ||
		k1.Pseudonyms.Pseudonym("acme", "alice") != k2.Pseudonyms.Pseudonym("acme", "alice") ||
		k1.TokenVerifier.TokenVerifier("evt_x") != k2.TokenVerifier.TokenVerifier("evt_x") {
		t.Fatal("two loads disagree")
	}
	// No key in clear in the store.
	for _, name := range Names {
		k, err := store.DeploymentKey(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for chunk := range slices.Chunk(rnd.got, Size) {
			if bytes.Contains(k.Wrapped, chunk) {
				t.Fatalf("the stored %s key holds key bytes in clear", name)
			}
		}
	}
	// The whole set prints no key byte.
	for name, v := range map[string]any{"*Keys": k1, "Keys": *k1, "*TokenKey": k1.TokenVerifier, "TokenKey": *k1.TokenVerifier, "results": res} {
		t.Run(name, func(t *testing.T) {
			secrettest.CheckPrintsNoSecret(t, v, rnd.got[:Size], rnd.got[Size:2*Size], rnd.got[2*Size:3*Size])
		})
	}
}

// A wrapped key moved to another name (or version) does not unwrap: the
// associated data binds it.
func TestAWrappedKeyMovedToAnotherNameDoesNotOpen(t *testing.T) {
	ctx := t.Context()
	root := openRoot(t)
	src := openStore(t)
	if _, err := Init(ctx, root, src, nil, nil); err != nil {
		t.Fatal(err)
	}
	sig, err := src.DeploymentKey(ctx, Signing)
	if err != nil {
		t.Fatal(err)
	}
	for _, moved := range []eventvault.DeploymentKey{
		{Name: Pseudonym, Version: 1, Wrapped: sig.Wrapped},
		{Name: Signing, Version: 2, Wrapped: sig.Wrapped},
	} {
		dst := openStore(t)
		if _, err := dst.CreateDeploymentKey(ctx, moved); err != nil {
			t.Fatal(err)
		}
		_, err := Load(ctx, root, dst)
		if !errors.Is(err, evcrypto.ErrAuthentication) {
			t.Fatalf("Load with the signing key moved to %s v%d: %v; want ErrAuthentication", moved.Name, moved.Version, err)
		}
	}
	// Another root does not open them either.
	if _, err := Load(ctx, openRoot(t), src); !errors.Is(err, evcrypto.ErrAuthentication) {
		t.Fatalf("Load under another root: %v; want ErrAuthentication", err)
	}
}

func TestInitRefusesBadImports(t *testing.T) {
	ctx := t.Context()
	store, root := openStore(t), openRoot(t)
	for name, imports := range map[string]map[string][]byte{
		"unknown name": {"root": make([]byte, Size)},
		"short key":    {Pseudonym: make([]byte, Size-1)},
	} {
		if _, err := Init(ctx, root, store, imports, nil); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("%s: %v; want EINVALID", name, err)
		}
	}
	key := make([]byte, Size)
	io.ReadFull(crand.Reader, key)
	res, err := Init(ctx, root, store, map[string][]byte{TokenVerifier: key}, nil)
	if err != nil || res[2].Outcome != Imported {
		t.Fatalf("import: %+v, %v", res, err)
	}
	other := bytes.Clone(key)
	other[0] ^= 1
	if _, err := Init(ctx, root, store, map[string][]byte{TokenVerifier: other}, nil); eventvault.ErrorCode(err) != eventvault.ECONFLICT {
		t.Fatalf("import of another key over a stored one: %v; want ECONFLICT", err)
	}
	if res, err := Init(ctx, root, store, map[string][]byte{TokenVerifier: key}, nil); err != nil || res[2].Outcome != Present {
		t.Fatalf("import of the stored key again: %+v, %v", res, err)
	}
}
