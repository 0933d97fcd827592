package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/store/postgres"
	"github.com/eventvault/eventvault/store/postgres/pgtest"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// sealedEvent is one event sealed in a stream before a rotation.
type sealedEvent struct {
	ref     evcrypto.EventRef
	data    []byte
	payload []byte
}

// seedStreams makes n streams of tenant with one sealed event each.
func seedStreams(t *testing.T, keys *evcrypto.Keyring, tenant eventvault.TenantID, n int) map[eventvault.StreamName]sealedEvent {
	t.Helper()
	out := map[eventvault.StreamName]sealedEvent{}
	for i := range n {
		stream := eventvault.StreamName(fmt.Sprintf("order-%d", i))
		c, err := keys.StreamCipher(t.Context(), tenant, stream)
		if err != nil {
			t.Fatalf("StreamCipher: %v", err)
		}
		ref := evcrypto.EventRef{Tenant: tenant, Stream: stream, ID: uuid.New(), Type: "Noted"}
		data := fmt.Appendf(nil, `{"n":%d}`, i)
		payload, err := c.SealEvent(ref, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[stream] = sealedEvent{ref: ref, data: data, payload: payload}
	}
	return out
}

// checkStreams opens every sealed event through a cold keyring and checks
// every stream key is under KEK version kek.
func checkStreams(t *testing.T, root evcrypto.RootKeyProvider, store eventvault.Store, tenant eventvault.TenantID, events map[eventvault.StreamName]sealedEvent, kek uint32) {
	t.Helper()
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	for stream, ev := range events {
		wk, err := store.StreamKey(t.Context(), tenant, stream)
		if err != nil {
			t.Fatal(err)
		}
		if wk.KEKVersion != kek {
			t.Fatalf("%s/%s: key under KEK version %d, want %d", tenant, stream, wk.KEKVersion, kek)
		}
		c, err := keys.OpenStreamCipher(t.Context(), tenant, stream, wk)
		if err != nil {
			t.Fatalf("open the key of %s/%s: %v", tenant, stream, err)
		}
		data, _, err := c.OpenEvent(ev.ref, ev.payload)
		if err != nil || !bytes.Equal(data, ev.data) {
			t.Fatalf("open the event of %s/%s: %q, %v", tenant, stream, data, err)
		}
	}
}

func openDevStore(t *testing.T, dir string) (*bolt.DB, *evcrypto.LocalRootKey) {
	t.Helper()
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	return store, root
}

func TestRotateTenantCommandReWrapsEveryStreamKey(t *testing.T) {
	dir := t.TempDir()
	store, root := openDevStore(t, dir)
	events := seedStreams(t, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), "acme", 5)
	store.Close() // the embedded store has one writer: the command opens it

	code, stdout, stderr := runCLI(t, "rotate", "tenant", "-tenant", "acme", "-dev", "-data-dir", dir, "-progress-every", "2")
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	for _, want := range []string{"tenant acme: added KEK version 2", "tenant acme: 5 stream keys re-wrapped; every stream key is under KEK version 2"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if n := strings.Count(stderr, "re-wrapped "); n != 2 || !strings.Contains(stderr, "re-wrapped 2 stream keys") || !strings.Contains(stderr, "re-wrapped 4 stream keys") {
		t.Fatalf("progress on stderr every 2 keys of 5: want 2 lines, got:\n%s", stderr)
	}

	store, _ = openDevStore(t, dir)
	defer store.Close()
	checkStreams(t, root, store, "acme", events, 2)
}

func TestRotateTenantResumeFinishesAnInterruptedRun(t *testing.T) {
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rootFile := filepath.Join(t.TempDir(), "root.key")
	root, err := evcrypto.OpenLocalRootKey(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	const n, stopAt = 40, 15
	events := seedStreams(t, keys, "acme", n)
	// A run that stopped half-way: the new version is there, 15 keys moved.
	if _, err := evcrypto.NewKeyManager(keys).RotateTenantKEK(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done, _ := evcrypto.NewKeyManager(keys).RewrapStreamKeys(ctx, "acme", func(d int) {
		if d == stopAt {
			cancel()
		}
	})
	if done != stopAt {
		t.Fatalf("the interrupted run re-wrapped %d keys, want %d", done, stopAt)
	}

	code, stdout, stderr := runCLI(t, "rotate", "tenant", "-tenant", "acme", "-resume",
		"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootFile)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	want := fmt.Sprintf("tenant acme: %d stream keys re-wrapped; every stream key is under KEK version 2", n-stopAt)
	if !strings.Contains(stdout, want) || strings.Contains(stdout, "added KEK version") {
		t.Fatalf("stdout: %q; want %q and no new version", stdout, want)
	}
	checkStreams(t, root, store, "acme", events, 2)

	// Running again finds nothing left.
	code, stdout, _ = runCLI(t, "rotate", "tenant", "-tenant", "acme", "-resume",
		"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootFile)
	if code != 0 || !strings.Contains(stdout, "0 stream keys re-wrapped") {
		t.Fatalf("a second -resume: exit %d, stdout %q", code, stdout)
	}
}

func TestRotateCommandRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	store, root := openDevStore(t, dir)
	seedStreams(t, evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{}), "acme", 1)
	store.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing to rotate", []string{"rotate"}, "say what to rotate"},
		{"an unknown kind", []string{"rotate", "keys"}, "say what to rotate"},
		{"no tenant", []string{"rotate", "tenant", "-dev", "-data-dir", dir}, "-tenant is required"},
		{"a malformed tenant", []string{"rotate", "tenant", "-tenant", "ACME", "-dev", "-data-dir", dir}, "invalid tenant"},
		{"no progress", []string{"rotate", "tenant", "-tenant", "acme", "-progress-every", "0", "-dev", "-data-dir", dir}, "-progress-every"},
		{"a stray argument", []string{"rotate", "root", "-dev", "-data-dir", dir, "now"}, "unexpected argument"},
		{"a tenant without a key", []string{"rotate", "tenant", "-tenant", "nobody", "-dev", "-data-dir", dir}, "nothing to rotate"},
		{"the local root key", []string{"rotate", "root", "-dev", "-data-dir", dir}, "use Vault Transit"},
		{"production without a store", []string{"rotate", "root", "-vault-addr", "http://127.0.0.1:1"}, "-database-url"},
		{"production without Vault", []string{"rotate", "root", "-database-url", "postgres://127.0.0.1:1/x"}, "needs Vault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d; stderr %q; want a failure saying %q", code, stderr, tc.want)
			}
		})
	}
	store, _ = openDevStore(t, dir)
	defer store.Close()
	if wk, _ := store.TenantKey(t.Context(), "acme"); wk.Version != 1 {
		t.Fatalf("a refused command moved the KEK to version %d", wk.Version)
	}
}

func TestRotateRootCommandOverVault(t *testing.T) {
	v, url, store, transit, keys, events := seedOverVault(t)
	if _, err := evcrypto.NewKeyManager(keys).RotateTenantKEK(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}

	t.Setenv("EVENTVAULT_VAULT_TOKEN", v.RootToken)
	code, stdout, stderr := runCLI(t, "rotate", "root", "-retire", "-progress-every", "1",
		"-database-url", url, "-vault-addr", v.Addr)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	for _, want := range []string{
		"added root key version 2",
		"3 tenant KEK versions and the deployment keys re-wrapped under root key version 2",
		"retired root key versions before 2",
	} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "re-wrapped 3 tenant KEK versions") {
		t.Fatalf("stderr lacks the progress lines:\n%s", stderr)
	}
	// A command logs warnings and errors only: the Vault check's
	// information line is the server's, not every command's.
	if strings.Contains(stderr, "root key ready") || strings.Contains(stderr, "level=INFO") {
		t.Fatalf("stderr holds information log lines:\n%s", stderr)
	}
	if got := v.Read("transit/keys/" + vaulttest.Key)["min_decryption_version"]; fmt.Sprint(got) != "2" {
		t.Fatalf("Vault's min_decryption_version is %v, want 2", got)
	}
	// Root rotation moves no stream key: all stay under KEK version 1 (acme's
	// version 2 wraps none yet), and open through a cold cache.
	for tenant, evs := range events {
		checkStreams(t, transit, store, tenant, evs, 1)
	}

	// -resume -retire again: nothing new, nothing breaks.
	code, stdout, stderr = runCLI(t, "rotate", "root", "-resume", "-retire", "-database-url", url, "-vault-addr", v.Addr)
	if code != 0 || strings.Contains(stdout, "added root key version") || !strings.Contains(stdout, "retired root key versions before 2") {
		t.Fatalf("rotate root -resume -retire: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}

func TestServerServesTheKeyRotationEndpoints(t *testing.T) {
	base, banner, stop := startDev(t, t.TempDir())
	defer stop()
	m := rootTokenRE.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no root token:\n%s", banner)
	}
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"OrderPlaced","data":{"total":42}}]}`, uuid.NewString())
	if code, b := call(t, "POST", base+"/v1/streams/order-42/events", m[1], body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	code, b := call(t, "POST", base+"/v1/admin/tenants/"+string(DevTenant)+"/kek/rotate", m[1], "")
	if code != 200 || !strings.Contains(b, `"version":2`) || !strings.Contains(b, `"rewrapped_streams":1`) {
		t.Fatalf("rotate the dev tenant's KEK: %d %s", code, b)
	}
	if code, b := call(t, "GET", base+"/v1/streams/order-42/events", m[1], ""); code != 200 || !strings.Contains(b, `"total":42`) {
		t.Fatalf("read after the rotation: %d %s", code, b)
	}
	if code, b := call(t, "POST", base+"/v1/admin/root/rotate", m[1], ""); code != 400 || !strings.Contains(b, "use Vault Transit") {
		t.Fatalf("rotate a local root key: %d %s", code, b)
	}
}

// seedOverVault starts a real Vault and a fresh PostgreSQL database, and
// seeds three streams in each of two tenants through a keyring over them.
func seedOverVault(t *testing.T) (*vaulttest.Server, string, *postgres.DB, *vault.Transit, *evcrypto.Keyring, map[eventvault.TenantID]map[eventvault.StreamName]sealedEvent) {
	t.Helper()
	v := vaulttest.Start(t)
	url := pgtest.URL(t)
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	transit, err := vault.New(t.Context(), v.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := evcrypto.NewKeyring(transit, store, evcrypto.KeyringOptions{})
	events := map[eventvault.TenantID]map[eventvault.StreamName]sealedEvent{}
	for _, tenant := range []eventvault.TenantID{"acme", "globex"} {
		events[tenant] = seedStreams(t, keys, tenant, 3)
	}
	return v, url, store, transit, keys, events
}

// TestRotateCycleCommandEndsACryptoPeriod runs 'eventvault rotate cycle'
// over two tenants and checks what it leaves: every stream key under a new
// KEK version, only that version left, the root rotated and older root
// versions retired, every stream still readable through a cold cache.
func TestRotateCycleCommandEndsACryptoPeriod(t *testing.T) {
	v, url, store, transit, _, events := seedOverVault(t)
	if _, err := deploykeys.Init(t.Context(), transit, store, nil, nil); err != nil {
		t.Fatalf("create the deployment keys: %v", err)
	}
	before, err := deploykeys.Load(t.Context(), transit, store)
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("EVENTVAULT_VAULT_TOKEN", v.RootToken)
	code, stdout, stderr := runCLI(t, "rotate", "cycle", "-database-url", url, "-vault-addr", v.Addr)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr)
	}
	want := "2 tenants rotated (0 skipped), 6 stream keys re-wrapped, 2 old KEK versions destroyed, root key version 2"
	if !strings.Contains(stdout, want) {
		t.Fatalf("stdout lacks %q:\n%s", want, stdout)
	}
	if got := v.Read("transit/keys/" + vaulttest.Key)["min_decryption_version"]; fmt.Sprint(got) != "2" {
		t.Fatalf("Vault's min_decryption_version is %v, want 2", got)
	}
	for tenant, evs := range events {
		if _, err := store.TenantKeyVersion(t.Context(), tenant, 1); eventvault.ErrorCode(err) != eventvault.ENOTFOUND {
			t.Fatalf("KEK version 1 of %s survived the cycle: %v", tenant, err)
		}
		checkStreams(t, transit, store, tenant, evs, 2)
	}
	// The deployment keys were re-wrapped under the new root version, so
	// that nodes still start once version 1 is retired, and are the same.
	dks, err := store.DeploymentKeys(t.Context())
	if err != nil || len(dks) != len(deploykeys.Names) {
		t.Fatalf("deployment keys after the cycle: %v, %v", dks, err)
	}
	for _, k := range dks {
		if v, err := transit.RootVersionOf(k.Wrapped); err != nil || v != 2 {
			t.Fatalf("deployment key %s is wrapped under root version %d (%v), want 2", k.Name, v, err)
		}
	}
	after, err := deploykeys.Load(t.Context(), transit, store)
	if err != nil {
		t.Fatalf("load the deployment keys after the cycle: %v", err)
	}
	if after.Signer.KeyID() != before.Signer.KeyID() || after.Pseudonyms.Pseudonym("acme", "alice") != before.Pseudonyms.Pseudonym("acme", "alice") ||
		after.TokenVerifier.TokenVerifier("evt_x") != before.TokenVerifier.TokenVerifier("evt_x") {
		t.Fatal("the cycle changed a deployment key")
	}
	// With the local root key, the cycle is refused: it cannot rotate.
	t.Setenv("EVENTVAULT_VAULT_TOKEN", "")
	code, _, stderr = runCLI(t, "rotate", "cycle", "-database-url", url, "-insecure-local-root-key", "-root-key-file", filepath.Join(t.TempDir(), "root.key"))
	if code == 0 || !strings.Contains(stderr, "cannot rotate") {
		t.Fatalf("cycle with the local root key: exit %d, %s", code, stderr)
	}
}

// serverPolicyHCL is the eventvault policy of docs/operations.md: what the
// server needs, without the eventvault-rotate policy.
const serverPolicyHCL = `
path "transit/encrypt/eventvault-root" { capabilities = ["update"] }
path "transit/decrypt/eventvault-root" { capabilities = ["update"] }
path "transit/rewrap/eventvault-root"  { capabilities = ["update"] }
path "transit/keys/eventvault-root"    { capabilities = ["read"] }
`

// TestRotateWithoutTheRotatePolicyChangesNothing runs the rotations with a
// token that has the server's policy but not eventvault-rotate: each fails
// before its first step, naming the policy and the path, not as an outage,
// and every KEK version and the root key are as before.
func TestRotateWithoutTheRotatePolicyChangesNothing(t *testing.T) {
	v, url, store, transit, _, events := seedOverVault(t)
	v.Policy("eventvault", serverPolicyHCL)
	t.Setenv("EVENTVAULT_VAULT_TOKEN", v.Token("default", "eventvault"))

	for _, args := range [][]string{
		{"rotate", "cycle"},
		{"rotate", "root"},
		{"rotate", "root", "-resume", "-retire"},
	} {
		code, stdout, stderr := runCLI(t, append(args, "-database-url", url, "-vault-addr", v.Addr)...)
		if code == 0 {
			t.Fatalf("%q: exit 0 without the rotate policy; stdout %s", args, stdout)
		}
		t.Logf("%q: %s", args, stderr)
		for _, want := range []string{"eventvault-rotate", "transit/keys/eventvault-root/"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%q: error does not name %q:\n%s", args, want, stderr)
			}
		}
		if strings.Contains(stderr, "retry later") {
			t.Errorf("%q: a permission problem reads as an outage:\n%s", args, stderr)
		}
	}
	for tenant, evs := range events {
		if wk, err := store.TenantKey(t.Context(), tenant); err != nil || wk.Version != 1 {
			t.Fatalf("%s: newest KEK version %d (%v); want 1, untouched", tenant, wk.Version, err)
		}
		if _, err := store.TenantKeyVersion(t.Context(), tenant, 1); err != nil {
			t.Fatalf("KEK version 1 of %s was destroyed: %v", tenant, err)
		}
		checkStreams(t, transit, store, tenant, evs, 1)
	}
	k := v.Read("transit/keys/" + vaulttest.Key)
	if fmt.Sprint(k["latest_version"]) != "1" || fmt.Sprint(k["min_decryption_version"]) != "1" {
		t.Fatalf("root key: latest_version %v, min_decryption_version %v; want 1, 1", k["latest_version"], k["min_decryption_version"])
	}

	// With the rotate policy too, the cycle runs.
	v.Policy("eventvault-rotate", `
path "transit/keys/eventvault-root/rotate" { capabilities = ["update"] }
path "transit/keys/eventvault-root/config" { capabilities = ["update"] }
`)
	t.Setenv("EVENTVAULT_VAULT_TOKEN", v.Token("default", "eventvault", "eventvault-rotate"))
	if code, _, stderr := runCLI(t, "rotate", "cycle", "-database-url", url, "-vault-addr", v.Addr); code != 0 {
		t.Fatalf("cycle with both policies: %s", stderr)
	}
}
