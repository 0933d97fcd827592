package wiring

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/store/bolt"
)

// TestTenantShredRevokesCachedTokens builds the server as the commands do,
// with a token cache far longer than the test: a token that authenticated
// (and so is cached) stops working the moment its tenant is shredded.
func TestTenantShredRevokesCachedTokens(t *testing.T) {
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	root, err := evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatalf("root key: %v", err)
	}
	pseud, err := pseudonym.OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatalf("pseudonym key: %v", err)
	}
	signer, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	stack := Build(Parts{Store: store, Root: root, Pseudonyms: pseud, Signer: signer, TokenCacheTTL: time.Hour})
	rootToken, err := stack.Tokens.InstallRoot(t.Context(), "default", "")
	if err != nil {
		t.Fatalf("install root token: %v", err)
	}
	do := func(method, path, token string, body any) *httptest.ResponseRecorder {
		t.Helper()
		var b []byte
		if body != nil {
			b, _ = json.Marshal(body)
		}
		req := httptest.NewRequest(method, path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		stack.Handler.ServeHTTP(rec, req)
		return rec
	}
	issue := func(tenant string) string {
		t.Helper()
		rec := do(http.MethodPost, "/v1/tokens", rootToken, map[string]any{"tenant": tenant, "name": tenant + "-app"})
		var out struct {
			Token string `json:"token"`
		}
		if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.Token == "" {
			t.Fatalf("issue a token for %s: %d %s", tenant, rec.Code, rec.Body)
		}
		return out.Token
	}
	acme, globex := issue("acme"), issue("globex")
	for _, tok := range []string{acme, globex} {
		ev := map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "A", "data": 1}}}
		if rec := do(http.MethodPost, "/v1/streams/order-1/events", tok, ev); rec.Code != http.StatusCreated {
			t.Fatalf("append before the shred: %d %s", rec.Code, rec.Body)
		}
		if rec := do(http.MethodGet, "/v1/events", tok, nil); rec.Code != http.StatusOK {
			t.Fatalf("read-all before the shred: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(http.MethodPost, "/v1/admin/tenants/acme/shred", rootToken, nil); rec.Code != http.StatusOK {
		t.Fatalf("tenant shred: %d %s", rec.Code, rec.Body)
	}
	if rec := do(http.MethodGet, "/v1/events", acme, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("the shredded tenant's cached token after the shred: %d %s, want 401", rec.Code, rec.Body)
	}
	if rec := do(http.MethodGet, "/v1/events", globex, nil); rec.Code != http.StatusOK {
		t.Fatalf("the other tenant's token after the shred: %d %s, want 200", rec.Code, rec.Body)
	}
}
