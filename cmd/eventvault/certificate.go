package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
)

const certificateUsage = `usage: eventvault certificate verify -public-key <file> <certificate file>

Checks an erasure certificate offline. The certificate file is the
"certificate" member of GET /v1/erasure-requests/{id} (or that whole
response); the public key file is the response of GET /v1/keys/signing (or
the base64 public key alone).
`

func runCertificate(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, certificateUsage)
		return fmt.Errorf("expected 'certificate verify'")
	}
	fs := flag.NewFlagSet("certificate verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("public-key", "", "file with the signing public key (GET /v1/keys/signing)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *keyFile == "" || fs.NArg() != 1 {
		fmt.Fprint(stderr, certificateUsage)
		return fmt.Errorf("need -public-key and one certificate file")
	}
	pub, err := readPublicKey(*keyFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read certificate: %w", err)
	}
	cert, err := verifyCertificate(pub, raw)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "OK: erasure certificate signed by %s\n", dsse.KeyID(pub))
	fmt.Fprintf(stdout, "  request:           %s\n", cert.RequestID)
	fmt.Fprintf(stdout, "  tenant:            %s\n", cert.Tenant)
	fmt.Fprintf(stdout, "  subject pseudonym: %s\n", cert.SubjectPseudonym)
	fmt.Fprintf(stdout, "  outcome:           %s\n", cert.Outcome())
	fmt.Fprintf(stdout, "  streams erased:    %d (%d keys destroyed)\n", cert.StreamCount, len(cert.DestroyedKeys))
	fmt.Fprintf(stdout, "  received:          %s\n", cert.ReceivedAt.Format("2006-01-02T15:04:05Z07:00"))
	fmt.Fprintf(stdout, "  erased:            %s\n", cert.ErasedAt.Format("2006-01-02T15:04:05Z07:00"))
	fmt.Fprintf(stdout, "  requested by:      %s\n", cert.ErasedBy)
	if cert.Statement != "" {
		fmt.Fprintf(stdout, "  statement:         %s\n", cert.Statement)
	}
	return nil
}

// verifyCertificate checks the envelope in raw (alone, or as the
// "certificate" member of an erasure request) and returns its certificate.
func verifyCertificate(pub ed25519.PublicKey, raw []byte) (eventvault.ErasureCertificate, error) {
	var wrapper struct {
		Certificate json.RawMessage `json:"certificate"`
	}
	if json.Unmarshal(raw, &wrapper) == nil && len(wrapper.Certificate) > 0 {
		raw = wrapper.Certificate
	}
	env, err := dsse.Parse(raw)
	if err != nil {
		return eventvault.ErasureCertificate{}, fmt.Errorf("certificate: %s", eventvault.ErrorMessage(err))
	}
	payload, err := dsse.Verify(pub, eventvault.ErasureCertificateType, env)
	if err != nil {
		return eventvault.ErasureCertificate{}, fmt.Errorf("certificate does not verify: %s", eventvault.ErrorMessage(err))
	}
	var cert eventvault.ErasureCertificate
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cert); err != nil || cert.Version != 1 {
		return eventvault.ErasureCertificate{}, fmt.Errorf("certificate is signed but not a version 1 erasure certificate")
	}
	return cert, nil
}

func readPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	var published struct {
		PublicKey string `json:"public_key"`
	}
	text := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &published) == nil && published.PublicKey != "" {
		text = published.PublicKey
	}
	pub, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key file %s holds neither the JSON of GET /v1/keys/signing nor a base64 Ed25519 public key", path)
	}
	return ed25519.PublicKey(pub), nil
}
