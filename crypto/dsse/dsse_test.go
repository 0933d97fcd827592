package dsse

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventvault/eventvault/crypto/internal/secrettest"

	"github.com/eventvault/eventvault"
)

func newTestSigningKey(t *testing.T) *SigningKey {
	t.Helper()
	k, err := OpenSigningKey(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const testType = "application/vnd.eventvault.test+json"

func TestSignedEnvelopeVerifiesAndSurvivesJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	k, err := OpenSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	env := k.Sign(testType, []byte(`{"erased":true}`))
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenSigningKey(path) // the same key after a restart
	if err != nil {
		t.Fatal(err)
	}
	payload, err := Verify(again.PublicKey(), testType, parsed)
	if err != nil || string(payload) != `{"erased":true}` {
		t.Fatalf("verify: %q, %v", payload, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file mode %v, want 0600", info.Mode().Perm())
	}
}

// TestTamperedEnvelopeFailsToVerify plays whoever holds a certificate and
// wants it to say something else.
func TestTamperedEnvelopeFailsToVerify(t *testing.T) {
	k, other := newTestSigningKey(t), newTestSigningKey(t)
	good := k.Sign(testType, []byte(`{"streams":3}`))
	cases := map[string]func(e *Envelope){
		"payload altered":   func(e *Envelope) { e.Payload = []byte(`{"streams":4}`) },
		"type altered":      func(e *Envelope) { e.PayloadType = "application/json" },
		"signature flipped": func(e *Envelope) { e.Signatures[0].Sig[5] ^= 1 },
		"no signature":      func(e *Envelope) { e.Signatures = nil },
		"signed by another key": func(e *Envelope) {
			*e = other.Sign(testType, e.Payload)
			e.Signatures[0].KeyID = k.KeyID()
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			env := good
			env.Payload = append([]byte(nil), good.Payload...)
			env.Signatures = []Signature{{KeyID: good.Signatures[0].KeyID, Sig: append([]byte(nil), good.Signatures[0].Sig...)}}
			tamper(&env)
			_, err := Verify(k.PublicKey(), testType, env)
			if !errors.Is(err, ErrBadSignature) || eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Fatalf("tampered envelope: %v, want ErrBadSignature", err)
			}
		})
	}
	if _, err := Parse([]byte("not json")); eventvault.ErrorCode(err) != eventvault.EINVALID {
		t.Fatalf("Parse(garbage) = %v", err)
	}
}

func TestSigningKeyPrintsNoKeyBytes(t *testing.T) {
	k := newTestSigningKey(t)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if strings.Contains(s, fmt.Sprintf("%x", k.priv.Seed())) || strings.Contains(s, string(k.priv.Seed())) {
			t.Fatalf("signing key printed its seed: %s", s)
		}
	}
}

func TestOpenSigningKeyRefusesAnUnsafeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, make([]byte, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSigningKey(path); eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(err.Error(), "signing key") {
		t.Fatalf("short file: %v", err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("k", 32)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSigningKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
}

// TestSigningKeyPrintsNoKeyBytesWithAnyVerb formats the key by pointer and
// by value with every fmt verb and through slog: neither the seed nor the
// private key shows, in any encoding.
func TestSigningKeyPrintsNoKeyBytesWithAnyVerb(t *testing.T) {
	k := newTestSigningKey(t)
	for name, v := range map[string]any{"*SigningKey": k, "SigningKey": *k} {
		t.Run(name, func(t *testing.T) {
			secrettest.CheckPrintsNoSecret(t, v, k.priv.Seed(), k.priv)
		})
	}
}
