package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
)

// signedCertificate returns a certificate file and the matching public key
// file, as a client would save them from the API.
func signedCertificate(t *testing.T, dir string, key *dsse.SigningKey) (certFile, keyFile string, env dsse.Envelope) {
	t.Helper()
	cert := eventvault.ErasureCertificate{
		Version: 1, RequestID: uuid.NewString(), Tenant: "acme", SubjectPseudonym: "ab12",
		DestroyedKeys: []eventvault.DestroyedKey{{Kind: "stream", KeyID: uuid.New()}}, StreamCount: 1,
		ReceivedAt: time.Now().UTC(), ErasedAt: time.Now().UTC(), ErasedBy: "tok_1", Issuer: key.KeyID(),
	}
	payload, _ := json.Marshal(cert)
	env = key.Sign(eventvault.ErasureCertificateType, payload)
	response, _ := json.Marshal(map[string]any{"id": cert.RequestID, "state": "completed", "certificate": env})
	certFile, keyFile = filepath.Join(dir, "cert.json"), filepath.Join(dir, "key.json")
	published, _ := json.Marshal(map[string]string{"key_id": key.KeyID(), "algorithm": "Ed25519", "public_key": base64.StdEncoding.EncodeToString(key.PublicKey())})
	if err := os.WriteFile(certFile, response, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, published, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, env
}

func TestCertificateVerify(t *testing.T) {
	dir := t.TempDir()
	key, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := dsse.OpenSigningKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, env := signedCertificate(t, dir, key)

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"certificate", "verify", "-public-key", keyFile, certFile}, &out, &errOut); code != 0 {
		t.Fatalf("verify a good certificate: exit %d, %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "OK: erasure certificate") || !strings.Contains(out.String(), "streams erased:    1") || !strings.Contains(out.String(), "outcome:           erased") {
		t.Fatalf("output:\n%s", out.String())
	}

	// The bare envelope verifies too, and the base64 key alone.
	bare := filepath.Join(dir, "bare.json")
	b, _ := json.Marshal(env)
	os.WriteFile(bare, b, 0o600)
	bareKey := filepath.Join(dir, "key.b64")
	os.WriteFile(bareKey, []byte(base64.StdEncoding.EncodeToString(key.PublicKey())+"\n"), 0o600)
	if code := run(context.Background(), []string{"certificate", "verify", "-public-key", bareKey, bare}, &out, &errOut); code != 0 {
		t.Fatalf("bare envelope: exit %d, %s", code, errOut.String())
	}

	// An attacker edits the certificate to claim more was destroyed.
	tampered := env
	tampered.Payload = bytes.Replace(env.Payload, []byte(`"stream_count":1`), []byte(`"stream_count":9`), 1)
	if bytes.Equal(tampered.Payload, env.Payload) {
		t.Fatal("test did not alter the payload")
	}
	b, _ = json.Marshal(tampered)
	forged := filepath.Join(dir, "forged.json")
	os.WriteFile(forged, b, 0o600)

	otherKey := filepath.Join(dir, "other.b64")
	os.WriteFile(otherKey, []byte(base64.StdEncoding.EncodeToString(other.PublicKey())), 0o600)
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)

	cases := []struct {
		name, key, cert, want string
	}{
		{"altered payload", keyFile, forged, "does not verify"},
		{"another key", otherKey, certFile, "does not verify"},
		{"not a certificate", keyFile, garbage, "not a signed envelope"},
		{"not a key", garbage, certFile, "neither"},
	}
	for _, c := range cases {
		errOut.Reset()
		if code := run(context.Background(), []string{"certificate", "verify", "-public-key", c.key, c.cert}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%s: exit %d, %q; want exit 1 mentioning %q", c.name, code, errOut.String(), c.want)
		}
	}
}

// TestCertificateVerifySaysNothingWasHeld: a certificate of an erasure
// that found nothing under the subject prints outcome nothing_held and its
// statement.
func TestCertificateVerifySaysNothingWasHeld(t *testing.T) {
	dir := t.TempDir()
	key, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	cert := eventvault.ErasureCertificate{
		Version: 1, RequestID: uuid.NewString(), Tenant: "acme", SubjectPseudonym: "ab12", DestroyedKeys: []eventvault.DestroyedKey{},
		ReceivedAt: time.Now().UTC(), ErasedAt: time.Now().UTC(), ErasedBy: "tok_1", Issuer: key.KeyID(),
		HeldNothing: true, Statement: "No data was held under this subject pseudonym",
	}
	payload, _ := json.Marshal(cert)
	b, _ := json.Marshal(key.Sign(eventvault.ErasureCertificateType, payload))
	certFile, keyFile := filepath.Join(dir, "cert.json"), filepath.Join(dir, "key.b64")
	os.WriteFile(certFile, b, 0o600)
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key.PublicKey())), 0o600)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"certificate", "verify", "-public-key", keyFile, certFile}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "outcome:           nothing_held") || !strings.Contains(out.String(), "No data was held") {
		t.Fatalf("output:\n%s", out.String())
	}
}
