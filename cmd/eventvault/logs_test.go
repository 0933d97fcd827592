package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestJSONLogsAreJSONOnly runs 'eventvault server -log-format json' over
// TLS, makes a TLS handshake fail, and parses every line of stderr as
// JSON: the start banner and the HTTP server's own errors are records.
func TestJSONLogsAreJSONOnly(t *testing.T) {
	cert, key := selfSignedCert(t)
	var stdout, stderr bytes.Buffer
	outW, errW := &syncWriter{w: &stdout}, &syncWriter{w: &stderr}
	read := func() string { errW.mu.Lock(); defer errW.mu.Unlock(); return stderr.String() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"server", "-dev", "-data-dir", t.TempDir(), "-listen", "127.0.0.1:0",
			"-log-format", "json", "-tls-cert", cert, "-tls-key", key}, outW, errW)
	}()
	defer func() { cancel(); <-done }()

	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if strings.Contains(read(), what) {
				return
			}
		}
		t.Fatalf("stderr never showed %q:\n%s", what, read())
	}
	waitFor("EventVault listening")
	var addr string
	for _, line := range strings.Split(read(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "EventVault listening" {
			addr, _ = rec["addr"].(string)
		}
	}
	if !strings.HasPrefix(addr, "https://127.0.0.1:") {
		t.Fatalf("banner record has addr %q", addr)
	}
	// Plain HTTP to the TLS port: the server's handshake error.
	conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	io.ReadAll(conn)
	conn.Close()
	waitFor("TLS handshake error")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	done <- 0 // for the deferred receive

	sc := bufio.NewScanner(strings.NewReader(read()))
	n := 0
	for sc.Scan() {
		n++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line %d is not JSON: %q", n, sc.Text())
			continue
		}
		if rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("stderr line %d is not a log record: %q", n, sc.Text())
		}
	}
	if n < 3 {
		t.Errorf("stderr has %d lines; want the banner, the dev warning and the handshake error:\n%s", n, read())
	}
	// stdout holds the dev root token alone; the log never does.
	outW.mu.Lock()
	out := stdout.String()
	outW.mu.Unlock()
	m := rootTokenRE.FindStringSubmatch(out)
	if m == nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q; want the root token line alone", out)
	}
	if strings.Contains(read(), m[1]) {
		t.Fatalf("the log holds the root token")
	}
}
