// Package vaulttest gives tests a real HashiCorp Vault: a server process of
// their own on a free loopback port, initialised and unsealed, with a
// Transit engine at "transit/" and a derived aes256-gcm96 key
// "eventvault-root", stopped when the test ends.
//
// The server keeps its data in files (not `vault server -dev`, whose data
// lives in memory), so Stop and Restart take Vault down and bring it back on
// the same port with every key it had: the way to test an outage.
//
// The binary is $EVENTVAULT_VAULT_BIN, or else the one scripts/vault-bin.sh
// prints (building Vault from source the first time, about 10 minutes).
// `make test` builds it once and sets the variable. Without a binary, tests
// fail with a message saying how to get one: they never skip.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventvault/eventvault/vault"
)

// EnvBin names the Vault binary tests use.
const EnvBin = "EVENTVAULT_VAULT_BIN"

// Mount and Key are the Transit mount and key Start creates.
const (
	Mount = "transit"
	Key   = "eventvault-root"
)

// Server is a running Vault for one test.
type Server struct {
	// Addr is the server's URL, http://127.0.0.1:<port>.
	Addr string
	// RootToken is the root token of this Vault.
	RootToken string
	// CACertFile, ClientCertFile and ClientKeyFile are PEM files of a
	// StartTLS server: the CA, and a client certificate it accepts.
	CACertFile, ClientCertFile, ClientKeyFile string

	t         testing.TB
	bin       string
	dir       string
	unsealKey string
	client    *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a Vault, initialises it with one key share, unseals it,
// enables Transit and creates the key; it stops the server when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with a listener that speaks only TLS and requires a
// client certificate: CACertFile signs the server's certificate (for
// 127.0.0.1) and the client's, ClientCertFile and ClientKeyFile.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := Binary(t)
	dir, err := os.MkdirTemp("", "vaulttest-")
	if err != nil {
		t.Fatalf("vaulttest: temporary folder: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	port := freePort(t)
	s.Addr = "http://127.0.0.1:" + port
	listener := "tls_disable = true"
	if useTLS {
		s.Addr = "https://127.0.0.1:" + port
		s.writeCertificates()
		listener = fmt.Sprintf("tls_cert_file = %q\n  tls_key_file = %q\n  tls_require_and_verify_client_cert = true\n  tls_client_ca_file = %q",
			filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), s.CACertFile)
	}
	config := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address = "127.0.0.1:%s"
  %s
}
disable_mlock      = true
disable_clustering = true
api_addr           = %q
log_level          = "warn"
`, filepath.Join(dir, "storage"), port, listener, s.Addr)
	if err := os.WriteFile(filepath.Join(dir, "vault.hcl"), []byte(config), 0o600); err != nil {
		t.Fatalf("vaulttest: write config: %v", err)
	}
	t.Cleanup(s.Stop)
	s.start()

	var init struct {
		Keys      []string `json:"keys_base64"`
		RootToken string   `json:"root_token"`
	}
	s.call("PUT", "sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init)
	if len(init.Keys) != 1 || init.RootToken == "" {
		t.Fatalf("vaulttest: sys/init returned no unseal key or root token")
	}
	s.unsealKey, s.RootToken = init.Keys[0], init.RootToken
	s.unseal()
	s.Write("sys/mounts/"+Mount, map[string]any{"type": "transit"})
	s.Write(Mount+"/keys/"+Key, map[string]any{"type": "aes256-gcm96", "derived": true})
	return s
}

// Binary returns the path of the Vault binary: $EVENTVAULT_VAULT_BIN, or
// what scripts/vault-bin.sh (found above the working directory) prints.
func Binary(t testing.TB) string {
	t.Helper()
	const how = "make test builds Vault once and sets " + EnvBin + "; or run `bash scripts/vault-bin.sh` (it builds Vault 1.21.0 from source through the Go module proxy, about 10 minutes, and prints the path) and set " + EnvBin + " to it"
	if bin := os.Getenv(EnvBin); bin != "" {
		if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("vaulttest: %s=%s is not an executable file; %s", EnvBin, bin, how)
		}
		return bin
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("vaulttest: %s is not set and %v; %s", EnvBin, err, how)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "vault-bin.sh"))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	bin := strings.TrimSpace(string(out))
	if err != nil || bin == "" {
		t.Fatalf("vaulttest: no Vault binary: scripts/vault-bin.sh failed (%v): %s\n%s", err, strings.TrimSpace(stderr.String()), how)
	}
	return bin
}

// repoRoot is the folder above the working directory that holds
// scripts/vault-bin.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "vault-bin.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no scripts/vault-bin.sh above the working directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("vaulttest: find a free port: %v", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Config is a provider configuration for this Vault with the root token and
// no retries, so that an outage shows at once.
func (s *Server) Config() vault.Config {
	return vault.Config{Address: s.Addr, Token: s.RootToken, Mount: Mount, Key: Key, Timeout: 10 * time.Second,
		CACert: s.CACertFile, ClientCert: s.ClientCertFile, ClientKey: s.ClientKeyFile}
}

// start runs the server and waits until it answers.
func (s *Server) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "vault.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatalf("vaulttest: open log: %v", err)
	}
	cmd := exec.Command(s.bin, "server", "-config="+filepath.Join(s.dir, "vault.hcl"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.Addr)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		s.t.Fatalf("vaulttest: start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		log.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			s.t.Fatalf("vaulttest: vault server exited at start:\n%s", s.Log())
		default:
		}
		resp, err := s.client.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("vaulttest: vault server did not answer within 60s:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unseal unseals the server and waits until it is active.
func (s *Server) unseal() {
	s.t.Helper()
	s.call("PUT", "sys/unseal", "", map[string]any{"key": s.unsealKey}, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := s.client.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("vaulttest: vault did not become active after unseal:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s). Its data stays
// for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart starts the stopped server again on the same port and unseals it:
// it has every mount, key and token it had.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
	s.unseal()
}

// Seal seals the server: it answers, but refuses every operation with 503
// until Unseal.
func (s *Server) Seal() {
	s.t.Helper()
	s.call("PUT", "sys/seal", s.RootToken, nil, nil)
}

// Unseal unseals the server and waits until it is active.
func (s *Server) Unseal() {
	s.t.Helper()
	s.unseal()
}

// Log returns what the server wrote to its log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "vault.log"))
	return string(b)
}

// Write sends body to path (without /v1/) with the root token and returns
// the answer's data; it fails the test on any error.
func (s *Server) Write(path string, body map[string]any) map[string]any {
	s.t.Helper()
	var out struct {
		Data map[string]any `json:"data"`
		Auth map[string]any `json:"auth"`
	}
	s.call("POST", path, s.RootToken, body, &out)
	if out.Data == nil {
		out.Data = map[string]any{}
	}
	if out.Auth != nil {
		out.Data["auth"] = out.Auth
	}
	return out.Data
}

// Read returns the data at path (without /v1/), read with the root token.
func (s *Server) Read(path string) map[string]any {
	s.t.Helper()
	var out struct {
		Data map[string]any `json:"data"`
	}
	s.call("GET", path, s.RootToken, nil, &out)
	return out.Data
}

// Token creates a token with the given policies (and not Vault's default
// policy unless named) and returns it.
func (s *Server) Token(policies ...string) string {
	s.t.Helper()
	auth, _ := s.Write("auth/token/create", map[string]any{"policies": policies, "no_default_policy": !contains(policies, "default"), "ttl": "1h"})["auth"].(map[string]any)
	token, _ := auth["client_token"].(string)
	if token == "" {
		s.t.Fatal("vaulttest: auth/token/create returned no token")
	}
	return token
}

// Policy writes an ACL policy.
func (s *Server) Policy(name, hcl string) {
	s.t.Helper()
	s.Write("sys/policies/acl/"+name, map[string]any{"policy": hcl})
}

func contains(list []string, x string) bool {
	for _, s := range list {
		if s == x {
			return true
		}
	}
	return false
}

func (s *Server) call(method, path, token string, body map[string]any, out any) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatalf("vaulttest: %s %s: %v", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.Addr+"/v1/"+path, r)
	if err != nil {
		s.t.Fatalf("vaulttest: %s %s: %v", method, path, err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("vaulttest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("vaulttest: %s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("vaulttest: %s %s: decode answer: %v", method, path, err)
		}
	}
}

// RandomName returns name with a random suffix, for keys and roles that
// must not collide.
func RandomName(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}
