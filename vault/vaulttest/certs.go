package vaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// writeCertificates makes a CA, a server certificate for 127.0.0.1 and a
// client certificate, writes them as PEM files in the server's folder, and
// makes the helper's own HTTP client use them.
func (s *Server) writeCertificates() {
	s.t.Helper()
	ca, caKey := s.certificate(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "vaulttest CA"},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}, "ca")
	s.certificate(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, "server")
	s.certificate(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "eventvault"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, "client")
	s.CACertFile = filepath.Join(s.dir, "ca.pem")
	s.ClientCertFile = filepath.Join(s.dir, "client.pem")
	s.ClientKeyFile = filepath.Join(s.dir, "client-key.pem")

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	pair, err := tls.LoadX509KeyPair(s.ClientCertFile, s.ClientKeyFile)
	if err != nil {
		s.t.Fatalf("vaulttest: client certificate: %v", err)
	}
	s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
}

// certificate signs tmpl with parent (itself when nil), writes
// <name>.pem and <name>-key.pem, and returns the certificate and its key.
func (s *Server) certificate(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	s.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatalf("vaulttest: key: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		s.t.Fatalf("vaulttest: certificate %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		s.t.Fatalf("vaulttest: certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		s.t.Fatalf("vaulttest: key %s: %v", name, err)
	}
	write := func(file, kind string, b []byte) {
		if err := os.WriteFile(filepath.Join(s.dir, file), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: b}), 0o600); err != nil {
			s.t.Fatalf("vaulttest: write %s: %v", file, err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	return cert, key
}
