package vault_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// transitPolicy is the policy README.md gives for the server, with its
// key name.
const transitPolicy = `
path "transit/encrypt/eventvault-root" { capabilities = ["update"] }
path "transit/decrypt/eventvault-root" { capabilities = ["update"] }
path "transit/rewrap/eventvault-root"  { capabilities = ["update"] }
path "transit/keys/eventvault-root"    { capabilities = ["read"] }
`

func closedPortAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestCheckNamesWhatIsMissing(t *testing.T) {
	s := vaulttest.Start(t)
	s.Write("sys/mounts/kv", map[string]any{"type": "kv"})
	s.Write(vaulttest.Mount+"/keys/plain", map[string]any{"type": "aes256-gcm96"})
	s.Write(vaulttest.Mount+"/keys/signing", map[string]any{"type": "ed25519", "derived": true})
	s.Policy("eventvault-no-decrypt", `
path "transit/encrypt/eventvault-root" { capabilities = ["update"] }
path "transit/keys/eventvault-root"    { capabilities = ["read"] }
`)
	s.Policy("eventvault-no-read", `path "transit/encrypt/eventvault-root" { capabilities = ["update"] }`)
	s.Policy("eventvault-server", transitPolicy)
	server := s.Token("default", "eventvault-server")
	noDecrypt := s.Token("default", "eventvault-no-decrypt")
	noRead := s.Token("default", "eventvault-no-read")
	const wrongToken = "hvs.not-a-token-of-this-vault"

	with := func(f func(*vault.Config)) vault.Config {
		c := s.Config()
		f(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  vault.Config
		code eventvault.Code
		want []string
	}{
		{"WrongToken", with(func(c *vault.Config) { c.Token = wrongToken }), eventvault.EINVALID,
			[]string{"Vault at " + s.Addr, "rejected the token"}},
		{"MissingKey", with(func(c *vault.Config) { c.Key = "no-such-key" }), eventvault.EINVALID,
			[]string{"Vault at " + s.Addr, "transit key 'no-such-key' not found", "vault write -f transit/keys/no-such-key type=aes256-gcm96 derived=true"}},
		{"WrongMount", with(func(c *vault.Config) { c.Mount = "no-such-mount" }), eventvault.EINVALID,
			[]string{"Vault at " + s.Addr, "no transit mount at 'no-such-mount/'", "vault secrets enable -path=no-such-mount transit"}},
		{"MountOfAnotherEngine", with(func(c *vault.Config) { c.Mount = "kv" }), eventvault.EINVALID,
			[]string{"the mount at 'kv/' is a kv engine, not transit"}},
		{"KeyNotDerived", with(func(c *vault.Config) { c.Key = "plain" }), eventvault.EINVALID,
			[]string{"transit key 'plain' is not derived", "derived=true"}},
		{"KeyOfWrongType", with(func(c *vault.Config) { c.Key = "signing" }), eventvault.EINVALID,
			[]string{"transit key 'signing' is of type ed25519"}},
		{"PolicyWithoutDecrypt", with(func(c *vault.Config) { c.Token = noDecrypt }), eventvault.EINVALID,
			[]string{"permission denied for transit/decrypt/eventvault-root", "the token may have been revoked or expired", `its policy lacks the "update" capability`}},
		{"PolicyWithoutKeyRead", with(func(c *vault.Config) { c.Token = noRead }), eventvault.EINVALID,
			[]string{"permission denied for transit/keys/eventvault-root", `lacks the "read" capability`}},
		// The server's policy names its key: another name is denied, not
		// "not found", and the answer says to check the name.
		{"MisspeltKeyUnderThePolicy", with(func(c *vault.Config) { c.Token, c.Key = server, "eventvault-rot" }), eventvault.EINVALID,
			[]string{"permission denied for transit/keys/eventvault-rot", "-vault-transit-key (eventvault-rot) is not the key the policy names"}},
		{"Unreachable", with(func(c *vault.Config) { c.Address = closedPortAddr(t) }), eventvault.EUNAVAILABLE,
			[]string{"is unreachable"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := open(t, c.cfg).Check(t.Context())
			if err == nil {
				t.Fatal("Check succeeded")
			}
			msg := eventvault.ErrorMessage(err)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Check message %q does not say %q", msg, w)
				}
			}
			if code := eventvault.ErrorCode(err); code != c.code {
				t.Errorf("Check error code %q, want %q", code, c.code)
			}
			for _, secret := range []string{s.RootToken, wrongToken, noDecrypt, noRead} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Check error holds a token: %v", err)
				}
			}
		})
	}
}

func TestCheckFailsWhileVaultIsSealed(t *testing.T) {
	s := vaulttest.Start(t)
	p := open(t, s.Config())
	s.Seal()
	err := p.Check(t.Context())
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(eventvault.ErrorMessage(err), "Vault at "+s.Addr+" is sealed") {
		t.Fatalf("Check of a sealed Vault: %v; want EUNAVAILABLE saying it is sealed", err)
	}
}

// TestProbeOfASealedVaultSaysSoAtOnce: readiness's probe of a sealed
// Vault is tried once, within the readiness deadline (2 s), and its error
// (for the log; /readyz shows the check failed) says that Vault is
// sealed, where a retried read ran past the deadline into "did
// not answer in time"; unsealed, the probe passes again. Retries of the
// other operations are unchanged (TestOperationsFailUnavailableWhileVaultIsSealedOrDown).
func TestProbeOfASealedVaultSaysSoAtOnce(t *testing.T) {
	s := vaulttest.Start(t)
	cfg := s.Config()
	cfg.MaxRetries = 2 // the server's default (-vault-max-retries): two waits of 0.5-1.5 s
	p := openChecked(t, cfg)
	s.Seal()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.ProbeRoot(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the probe of a sealed Vault took %v; want one try", took)
	}
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(err.Error(), "is sealed (unseal it: vault operator unseal)") {
		t.Fatalf("probe of a sealed Vault: %v; want EUNAVAILABLE saying it is sealed", err)
	}
	s.Unseal()
	if _, err := p.ProbeRoot(t.Context()); err != nil {
		t.Fatalf("probe once unsealed: %v", err)
	}
}

func TestCheckCreatesTheKeyOnlyWhenAllowed(t *testing.T) {
	s := vaulttest.Start(t)
	cfg := s.Config()
	cfg.Key = "created-at-start"
	if err := open(t, cfg).Check(t.Context()); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Check without CreateKey: %v; want the key reported missing", err)
	}
	cfg.CreateKey = true
	p := openChecked(t, cfg)
	k := s.Read(vaulttest.Mount + "/keys/created-at-start")
	if k["type"] != "aes256-gcm96" || k["derived"] != true {
		t.Fatalf("created key is %v derived=%v; want aes256-gcm96, derived", k["type"], k["derived"])
	}
	key := randomKey(t)
	unwrapEquals(t, p, wrap(t, p, key, []byte("aad")), []byte("aad"), key)
}

func TestTokenWithoutDecryptGetsThePermissionMessageAtRuntime(t *testing.T) {
	s := vaulttest.Start(t)
	s.Policy("eventvault-encrypt-only", `path "transit/encrypt/eventvault-root" { capabilities = ["update"] }`)
	cfg := s.Config()
	cfg.Token = s.Token("default", "eventvault-encrypt-only")
	p := open(t, cfg)
	w := wrap(t, p, randomKey(t), []byte("aad"))
	_, err := p.UnwrapKey(t.Context(), w, []byte("aad"))
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("UnwrapKey without decrypt permission: %v; want EUNAVAILABLE", err)
	}
	if !strings.Contains(err.Error(), `permission denied for transit/decrypt/eventvault-root: the token may have been revoked or expired, or its policy lacks the "update" capability`) {
		t.Fatalf("UnwrapKey error %q does not name the missing permission", err)
	}
	// A permission problem is reported as one: the client's message does
	// not say "retry later", the log's names the policy.
	if msg := eventvault.ErrorMessage(err); strings.Contains(msg, "retry later") || !strings.Contains(msg, "Vault policy") {
		t.Fatalf("client message %q; want one saying an operator must fix the Vault policy", msg)
	}
	if !strings.Contains(err.Error(), "Vault policy eventvault ") {
		t.Fatalf("UnwrapKey error %q does not name the policy", err)
	}
}

func TestAppRoleLogin(t *testing.T) {
	s := vaulttest.Start(t)
	s.Write("sys/auth/approle", map[string]any{"type": "approle"})
	s.Policy("eventvault", transitPolicy)
	// Tokens live one second, so the provider has to log in again.
	s.Write("auth/approle/role/eventvault", map[string]any{"token_policies": []string{"eventvault"}, "token_ttl": "1s", "token_max_ttl": "1s"})
	roleID, _ := s.Read("auth/approle/role/eventvault/role-id")["role_id"].(string)
	secretID, _ := s.Write("auth/approle/role/eventvault/secret-id", nil)["secret_id"].(string)
	if roleID == "" || secretID == "" {
		t.Fatal("no AppRole role id or secret id")
	}
	dir := t.TempDir()
	roleFile, secretFile := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	if err := os.WriteFile(roleFile, []byte(roleID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := s.Config()
	cfg.Token = ""
	cfg.RoleIDFile, cfg.SecretIDFile = roleFile, secretFile
	p := openChecked(t, cfg)
	key := randomKey(t)
	w := wrap(t, p, key, []byte("aad"))
	logins := p.Requests()["auth/approle/login"]

	time.Sleep(1500 * time.Millisecond) // the token expires
	unwrapEquals(t, p, w, []byte("aad"), key)
	if got := p.Requests()["auth/approle/login"]; got != logins+1 {
		t.Fatalf("AppRole logins went from %d to %d after the token expired; want one more", logins, got)
	}

	cfg.RoleIDFile, cfg.SecretIDFile = "", ""
	cfg.RoleID, cfg.SecretID = roleID, "00000000-0000-0000-0000-000000000000"
	_, err := vault.New(t.Context(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "AppRole login at auth/approle/login refused") {
		t.Fatalf("New with a wrong secret id: %v; want the AppRole login refused", err)
	}
	if strings.Contains(err.Error(), roleID) {
		t.Fatalf("the login error holds the role id: %v", err)
	}
}

func TestTLSWithCAAndClientCertificate(t *testing.T) {
	s := vaulttest.StartTLS(t)
	p := openChecked(t, s.Config())
	key := randomKey(t)
	unwrapEquals(t, p, wrap(t, p, key, []byte("aad")), []byte("aad"), key)

	with := func(f func(*vault.Config)) vault.Config {
		c := s.Config()
		f(&c)
		return c
	}
	for _, c := range []struct {
		name string
		cfg  vault.Config
		want string
	}{
		{"UnknownCA", with(func(c *vault.Config) { c.CACert = "" }), "its TLS certificate does not verify"},
		{"OtherServerName", with(func(c *vault.Config) { c.TLSServerName = "vault.example" }), "its TLS certificate does not verify"},
		{"NoClientCertificate", with(func(c *vault.Config) { c.ClientCert, c.ClientKey = "", "" }), "is unreachable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := open(t, c.cfg).Check(t.Context())
			if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE || !strings.Contains(eventvault.ErrorMessage(err), c.want) {
				t.Fatalf("Check: %v; want EUNAVAILABLE saying %q", err, c.want)
			}
		})
	}
}

// TestTokenFileReadAgainAfterTheTokenWasRevoked is `make vault-dev`
// restarted under a running server: the token in -vault-token-file is
// revoked and a new one written under the same name. The provider must
// report the refusal as a possibly revoked token, then pick the new token
// up at the next request, without a restart, logging that (never a token).
func TestTokenFileReadAgainAfterTheTokenWasRevoked(t *testing.T) {
	s := vaulttest.Start(t)
	s.Policy("eventvault", transitPolicy)
	oldToken := s.Token("default", "eventvault")
	tokenFile := filepath.Join(t.TempDir(), "server.token")
	if err := os.WriteFile(tokenFile, []byte(oldToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := s.Config()
	cfg.Token, cfg.TokenFile = "", tokenFile
	p, err := vault.New(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	if err := p.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	key := randomKey(t)
	w := wrap(t, p, key, []byte("aad"))

	s.Write("auth/token/revoke", map[string]any{"token": oldToken})
	// The file still holds the revoked token: refused, and the messages
	// say the token may have been revoked, not only that the policy lacks
	// something.
	_, err = p.UnwrapKey(t.Context(), w, []byte("aad"))
	if eventvault.ErrorCode(err) != eventvault.EUNAVAILABLE {
		t.Fatalf("UnwrapKey with a revoked token: %v; want EUNAVAILABLE", err)
	}
	if msg := eventvault.ErrorMessage(err); !strings.Contains(msg, "revoked or expired") || strings.Contains(msg, "retry later") {
		t.Fatalf("client message %q; want one saying the token may have been revoked or expired", msg)
	}
	if !strings.Contains(err.Error(), "the token may have been revoked or expired") || !strings.Contains(err.Error(), tokenFile) {
		t.Fatalf("log error %q; want the revoked token and the token file named", err)
	}

	newToken := s.Token("default", "eventvault")
	if err := os.WriteFile(tokenFile, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unwrapEquals(t, p, w, []byte("aad"), key)
	if _, err := p.ProbeRoot(t.Context()); err != nil {
		t.Fatalf("ProbeRoot after the new token was written: %v", err)
	}
	wrap(t, p, key, []byte("aad"))

	out := logs.String()
	if !strings.Contains(out, "the token file holds a new one") {
		t.Fatalf("log %q does not say a new token was taken from the file", out)
	}
	if strings.Contains(out, oldToken) || strings.Contains(out, newToken) {
		t.Fatal("the log holds a Vault token")
	}
	if strings.Count(out, "the token file holds a new one") != 1 {
		t.Fatalf("log %q: want the new token picked up once", out)
	}
}
