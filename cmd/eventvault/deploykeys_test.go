package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// TestTwoProductionNodesShareTheDeploymentKeys runs `eventvault init` and
// two production server processes (no -dev) that share nothing but
// PostgreSQL and Vault: separate data folders, no key files. A node
// refuses to start before init, naming it. Then an erasure through either
// node erases what was appended through the other, each node's
// certificate verifies against the key the other publishes, and a token
// row written straight into the database with the SHA-256 of a chosen
// token authenticates on neither.
func TestTwoProductionNodesShareTheDeploymentKeys(t *testing.T) {
	v := vaulttest.Start(t)
	pg := pgtest.URL(t)
	bin := buildServer(t)
	common := append([]string{"-database-url", pg}, vaultArgs(t, v)...)
	serverArgs := func(dataDir string) []string {
		return append([]string{"server", "-listen", "127.0.0.1:0", "-data-dir", dataDir}, common...)
	}

	if code, stdout, stderr := runCLI(t, "migrate", "-database-url", pg); code != 0 {
		t.Fatalf("eventvault migrate: exit %d\n%s%s", code, stdout, stderr)
	}
	// Before init: a production node refuses to start and makes no key.
	early := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, serverArgs(early)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "eventvault init") || !strings.Contains(string(out), "pseudonym, signing, token-verifier") {
		t.Fatalf("a production node before init: %v\n%s\nwant a refusal naming 'eventvault init' and the missing keys", err, out)
	}
	store, transit := openDeployment(t, pg, v)
	for _, name := range deploykeys.Names {
		if _, err := store.DeploymentKey(t.Context(), name); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("after the refused start, deployment key %s: %v; want none", name, err)
		}
	}

	code, stdout, stderr := runCLI(t, append([]string{"init"}, common...)...)
	if code != 0 {
		t.Fatalf("eventvault init: %d\n%s%s", code, stdout, stderr)
	}
	for _, name := range deploykeys.Names {
		if !strings.Contains(stdout, name) {
			t.Errorf("init does not report the %s key:\n%s", name, stdout)
		}
	}
	if n := strings.Count(stdout, ": created"); n != 3 {
		t.Fatalf("init created %d keys, want 3:\n%s", n, stdout)
	}
	code, again, stderr := runCLI(t, append([]string{"init"}, common...)...)
	if code != 0 || strings.Count(again, "already present") != 3 || strings.Contains(again, "created") {
		t.Fatalf("init run again: %d\n%s%s\nwant every key already present", code, again, stderr)
	}
	if strings.Contains(stdout+again+stderr, v.RootToken) {
		t.Fatal("init printed the Vault token")
	}

	// The first token comes from a Tokens bound to the deployment's
	// token-verifier key, as a server's are.
	keys, err := deploykeys.Load(t.Context(), transit, store)
	if err != nil {
		t.Fatalf("load the deployment keys: %v", err)
	}
	tokens := &auth.Tokens{Store: store, Key: keys.TokenVerifier}
	rules := []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead, eventvault.CapErase}, Streams: "*"}}
	token, _, err := tokens.Issue(t.Context(), eventvault.Principal{Root: true}, auth.NewTokenRequest{Tenant: "acme", Name: "two-nodes", Rules: rules})
	if err != nil {
		t.Fatalf("issue a token: %v", err)
	}

	dirA, dirB := t.TempDir(), t.TempDir()
	a := startProcess(t, bin, nil, serverArgs(dirA)...)
	b := startProcess(t, bin, nil, serverArgs(dirB)...)
	for _, dir := range []string{early, dirA, dirB} {
		for _, f := range []string{"pseudonym.key", "signing.key"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				t.Errorf("a production node created %s in its data folder", f)
			}
		}
	}

	published := map[string]string{}
	for name, n := range map[string]*node{"A": a, "B": b} {
		code, body := call(t, "GET", n.base+"/v1/keys/signing", "", "")
		if code != 200 {
			t.Fatalf("GET /v1/keys/signing on %s: %d %s", name, code, body)
		}
		published[name] = body
	}
	if published["A"] != published["B"] {
		t.Fatalf("the nodes publish different signing keys:\nA %s\nB %s", published["A"], published["B"])
	}

	// Appended through one node, erased through the other, both ways.
	for _, tc := range []struct{ via, eraseVia, other string }{{"A", "B", "B"}, {"B", "A", "A"}} {
		nodes := map[string]*node{"A": a, "B": b}
		appendNode, eraseNode := nodes[tc.via], nodes[tc.eraseVia]
		subject := "customer-of-" + tc.via
		stream := "order-via-" + tc.via
		body := fmt.Sprintf(`{"subject":%q,"events":[{"id":%q,"type":"OrderPlaced","data":{"secret":"s-%s"}}]}`, subject, uuid.NewString(), tc.via)
		if code, b := call(t, "POST", appendNode.base+"/v1/streams/"+stream+"/events", token, body); code != 201 {
			t.Fatalf("append through %s: %d %s", tc.via, code, b)
		}
		code, cert := call(t, "POST", eraseNode.base+"/v1/erasure-requests", token, fmt.Sprintf(`{"subject":%q}`, subject))
		if code != 201 || !strings.Contains(cert, `"completed"`) {
			t.Fatalf("erasure through %s of what %s took: %d %s", tc.eraseVia, tc.via, code, cert)
		}
		for name, n := range nodes {
			if code, b := call(t, "GET", n.base+"/v1/streams/"+stream+"/events", token, ""); code != 410 || strings.Contains(b, "s-"+tc.via) {
				t.Fatalf("read on %s after the erasure through %s: %d %s; want 410", name, tc.eraseVia, code, b)
			}
		}
		// The certificate verifies against the key the other node publishes.
		dir := t.TempDir()
		keyFile, certFile := filepath.Join(dir, "key.json"), filepath.Join(dir, "certificate.json")
		otherName := tc.via // the node that did not sign
		if err := os.WriteFile(keyFile, []byte(published[otherName]), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, []byte(cert), 0o600); err != nil {
			t.Fatal(err)
		}
		code, verified, stderr := runCLI(t, "certificate", "verify", "-public-key", keyFile, certFile)
		if code != 0 || !strings.Contains(verified, "streams erased:    1") {
			t.Fatalf("certificate of %s against the key %s publishes: %d\n%s%s; want OK with 1 stream erased", tc.eraseVia, otherName, code, verified, stderr)
		}
	}

	// Rows written straight into the database, as an attacker with write
	// access would, with the SHA-256 of a chosen token, or its HMAC under
	// another key: nothing.
	forged := "evt_chosen-by-the-attacker"
	sum := sha256.Sum256([]byte(forged))
	wrong := hmac.New(sha256.New, []byte("a key the attacker chose, not the deployment's"))
	wrong.Write([]byte(forged))
	verifiers := [][]byte{sum[:], wrong.Sum(nil)}
	conn, err := pgx.Connect(t.Context(), pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i, row := range []struct {
		tenant string
		root   bool
	}{{"", true}, {"acme", false}} {
		_, err := conn.Exec(t.Context(), `INSERT INTO api_tokens (id, token_hash, tenant_id, name, root, rules, created_at)
			VALUES ($1, $2, $3, 'forged', $4, '[{"capabilities":["admin","read","append","erase"],"streams":"*"}]', now())`,
			fmt.Sprintf("tok_forged%d", i), verifiers[i], row.tenant, row.root)
		if err != nil {
			t.Fatalf("forge a token row: %v", err)
		}
	}
	for name, n := range map[string]*node{"A": a, "B": b} {
		if code, body := call(t, "GET", n.base+"/v1/events", forged, ""); code != 401 {
			t.Fatalf("a forged SHA-256 row on %s: %d %s; want 401", name, code, body)
		}
		if code, body := call(t, "GET", n.base+"/v1/events", token, ""); code != 200 {
			t.Fatalf("the issued token on %s: %d %s; want 200", name, code, body)
		}
	}
}

// openDeployment opens the deployment's store and Vault root as a test.
func openDeployment(t *testing.T, pg string, v *vaulttest.Server) (*postgres.DB, *vault.Transit) {
	t.Helper()
	if err := postgres.Migrate(t.Context(), pg); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(t.Context(), pg, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	transit, err := vault.New(t.Context(), v.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return store, transit
}

// TestInitImportsKeyFilesAndNeverReplacesAKey: the key files of a server
// from before deployment keys are imported once, so pseudonyms and
// published signatures stay; an import that differs from a stored key is
// refused; a file that is not a key is refused with its reason.
func TestInitImportsKeyFilesAndNeverReplacesAKey(t *testing.T) {
	dir := t.TempDir()
	pseudFile, signFile, otherFile := filepath.Join(dir, "pseudonym.key"), filepath.Join(dir, "signing.key"), filepath.Join(dir, "other.key")
	for _, f := range []string{pseudFile, signFile, otherFile} {
		if _, err := deploykeys.ReadKeyFile("test", f); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("ReadKeyFile of a missing file: %v", err)
		}
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(len(f) + i + 1)
		}
		if f == otherFile {
			b[0] ^= 0xff
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	dev := []string{"-dev", "-data-dir", data}
	code, out, errOut := runCLI(t, append([]string{"init", "-import-pseudonym-key-file", pseudFile, "-import-signing-key-file", signFile}, dev...)...)
	if code != 0 || strings.Count(out, ": imported") != 2 || strings.Count(out, ": created") != 1 {
		t.Fatalf("init with imports: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"init", "-import-pseudonym-key-file", pseudFile}, dev...)...)
	if code != 0 || strings.Count(out, "already present") != 3 {
		t.Fatalf("init importing the same file again: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"init", "-import-pseudonym-key-file", otherFile}, dev...)...)
	if code == 0 || !strings.Contains(errOut, "differs from the one to import") {
		t.Fatalf("init importing another pseudonym key: %d\n%s%s; want a refusal", code, out, errOut)
	}
	if err := os.Chmod(otherFile, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, append([]string{"init", "-import-signing-key-file", otherFile}, dev...)...)
	if code == 0 || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("init importing a group-readable file: %d %s; want a refusal naming chmod 600", code, errOut)
	}

	// The dev server serves the imported keys: it publishes the imported
	// seed's public key, and pseudonyms are the imported key's.
	s := startServer(t, dev...)
	m := rootTokenRE.FindStringSubmatch(s.banner)
	if m == nil {
		t.Fatalf("banner has no root token:\n%s", s.banner)
	}
	seed, err := deploykeys.ReadKeyFile("signing", signFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dsse.NewSigningKey("test", seed)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, "GET", s.base+"/v1/keys/signing", "", ""); code != 200 || !strings.Contains(body, signer.KeyID()) {
		t.Fatalf("published signing key: %d %s; want key id %s", code, body, signer.KeyID())
	}
	raw, err := deploykeys.ReadKeyFile("pseudonym", pseudFile)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := pseudonym.NewKey("test", raw)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"subject":"alice","events":[{"id":%q,"type":"Noted","data":{}}]}`, uuid.NewString())
	if code, b := call(t, "POST", s.base+"/v1/streams/note-1/events", m[1], body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	code, cert := call(t, "POST", s.base+"/v1/erasure-requests", m[1], `{"subject":"alice"}`)
	if want := string(pk.Pseudonym(DevTenant, "alice")); code != 201 || !strings.Contains(string(decodePayload(t, cert)), want) {
		t.Fatalf("erasure: %d %s; want the certificate to name pseudonym %s", code, cert, want)
	}
}

// decodePayload returns the payload of the certificate in an erasure
// request's body.
func decodePayload(t *testing.T, body string) []byte {
	t.Helper()
	var r struct {
		Certificate dsse.Envelope `json:"certificate"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("erasure request body: %v: %s", err, body)
	}
	return r.Certificate.Payload
}

// TestRetiringARootVersionWaitsForTheDeploymentKeys: a deployment key still
// wrapped under an old root version stops the retirement of that version
// (or no node could start), and a re-wrap lets it through.
func TestRetiringARootVersionWaitsForTheDeploymentKeys(t *testing.T) {
	_, _, store, transit, keys, _ := seedOverVault(t)
	ctx := t.Context()
	if _, err := deploykeys.Init(ctx, transit, store, nil, nil); err != nil {
		t.Fatal(err)
	}
	old, err := store.DeploymentKey(ctx, deploykeys.Pseudonym)
	if err != nil {
		t.Fatal(err)
	}
	km := evcrypto.NewKeyManager(keys)
	v, err := km.RotateRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := km.RewrapRootWrapped(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Put back the pseudonym key as wrapped under version 1, as a node
	// whose re-wrap was interrupted would leave it.
	cur, err := store.DeploymentKey(ctx, deploykeys.Pseudonym)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RewrapDeploymentKey(ctx, cur, old.Wrapped); err != nil {
		t.Fatal(err)
	}
	err = km.RetireRootVersionsBefore(ctx, v)
	var e *eventvault.Error
	if !errors.As(err, &e) || e.Code != eventvault.ECONFLICT || e.Fields["remaining_deployment_keys"] != 1 {
		t.Fatalf("retire with a deployment key under version 1: %v; want ECONFLICT with remaining_deployment_keys 1", err)
	}
	if _, err := km.RewrapRootWrapped(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := km.RetireRootVersionsBefore(ctx, v); err != nil {
		t.Fatalf("retire after the re-wrap: %v", err)
	}
	if _, err := deploykeys.Load(ctx, transit, store); err != nil {
		t.Fatalf("load after the retirement: %v", err)
	}
}

// TestServerRefusesKeyFilesNotImported: a dev data folder of an earlier
// EventVault holds pseudonym.key and signing.key; a new server does not
// silently make other keys, it names the import, and starts once the files
// are imported.
func TestServerRefusesKeyFilesNotImported(t *testing.T) {
	data := t.TempDir()
	for i, f := range []string{"pseudonym.key", "signing.key"} {
		b := make([]byte, 32)
		for j := range b {
			b[j] = byte(i*32 + j + 1)
		}
		if err := os.WriteFile(filepath.Join(data, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := openServer(t, "-dev", "-data-dir", data); err == nil || !strings.Contains(err.Error(), "eventvault init -import-pseudonym-key-file") {
		t.Fatalf("dev server over unimported key files: %v; want a refusal naming the import", err)
	}
	code, out, errOut := runCLI(t, "init", "-dev", "-data-dir", data,
		"-import-pseudonym-key-file", filepath.Join(data, "pseudonym.key"), "-import-signing-key-file", filepath.Join(data, "signing.key"))
	if code != 0 || strings.Count(out, ": imported") != 2 {
		t.Fatalf("init with the imports: %d\n%s%s", code, out, errOut)
	}
	startServer(t, "-dev", "-data-dir", data)
}
