package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/crypto/deploykeys"
	"github.com/eventvault/eventvault/crypto/dsse"
	"github.com/eventvault/eventvault/crypto/pseudonym"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/policies"
	"github.com/eventvault/eventvault/store/bolt"
)

// testTokenKey is the token-verifier key the test servers share, as the
// nodes of a deployment do.
var testTokenKey = func() auth.VerifierKey {
	k, err := deploykeys.NewTokenKey([]byte("api tests' token-verifier key 32"))
	if err != nil {
		panic(err)
	}
	return k
}()

// testAPI is the whole server over the embedded store and a local root key
// in a temporary folder: real parts, no fakes.
type testAPI struct {
	t    *testing.T
	srv  *Server
	root string // the root token
	// logs holds every line the server logged.
	logs *syncBuffer
	// store is the server's store; reads and checkpoints its read log and
	// checkpoint publisher, which tests run by hand.
	store       eventvault.Store
	reads       *engine.ReadLog
	checkpoints *audit.Publisher
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return newTestAPIOver(t, store, nil)
}

// newTestAPIOver is the whole server (events, erasure, key rotation,
// tokens) over store and root, a local root key in a temporary folder when
// root is nil, as wiring.Build has it (which the api package cannot import).
func newTestAPIOver(t *testing.T, store eventvault.Store, root evcrypto.RootKeyProvider) *testAPI {
	t.Helper()
	return newTestAPIWith(t, store, root, nil)
}

// newTestAPIWith is newTestAPIOver whose server also authenticates JWTs
// with jwt, when it is not nil.
func newTestAPIWith(t *testing.T, store eventvault.Store, root evcrypto.RootKeyProvider, jwt JWTVerifier) *testAPI {
	t.Helper()
	dir := t.TempDir()
	var err error
	if root == nil {
		if root, err = evcrypto.OpenLocalRootKey(filepath.Join(dir, "root.key")); err != nil {
			t.Fatalf("root key: %v", err)
		}
	}
	pseud, err := pseudonym.OpenKey(filepath.Join(dir, "pseudonym.key"))
	if err != nil {
		t.Fatalf("pseudonym key: %v", err)
	}
	signer, err := dsse.OpenSigningKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	tokens := &auth.Tokens{Store: store, Key: testTokenKey}
	docs := policies.NewResolver(store, policies.DefaultCacheTTL, nil)
	tokens.Policies = docs
	// Audit as wiring.Build has it.
	recorder := &audit.Recorder{}
	reads := engine.NewReadLog(recorder, store, 0, nil)
	tokens.Audit, docs.Audit = recorder, recorder
	auditSigner, err := audit.NewSigner(audit.DefaultLogName, signer.CryptoSigner())
	if err != nil {
		t.Fatal(err)
	}
	rootToken, err := tokens.InstallRoot(context.Background(), "default", "")
	if err != nil {
		t.Fatalf("install root token: %v", err)
	}
	logs := &syncBuffer{}
	// With the source of each line, as an operator may configure it.
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true}))
	subjectKeys := evcrypto.NewSubjectKeys(keys, store)
	feed := engine.NewFeed(store, 20*time.Millisecond, nil)
	events := engine.NewEvents(store, keys, nil, engine.WithPseudonymizer(pseud), engine.WithAudit(recorder, reads), engine.WithPII(subjectKeys, store), engine.WithFeed(feed))
	erasure := engine.NewErasure(store, feed.Evicting(keys), pseud, signer, nil, revokeTokens(store, tokens), engine.WithErasureAudit(recorder), engine.WithPIIErasure(store, subjectKeys),
		engine.WithPropagation(events, store))
	srv := New(Config{
		Events:        events,
		Erasure:       erasure,
		Subscriptions: engine.NewConsumers(store, store, erasure, recorder, nil),
		Subjects:      engine.NewSubjects(events, store, pseud, recorder),
		Keys:          engine.NewRotation(evcrypto.NewKeyManager(keys), nil).WithAudit(recorder, store),
		Tokens:        tokens,
		Policies:      docs,
		JWT:           jwt,
		Denials:       reads,
		Audit:         engine.NewAuditLog(store, recorder, pseud),
		Ready:         store.Ping,
		Logger:        logger,
	})
	return &testAPI{t: t, srv: srv, root: rootToken, logs: logs, store: store,
		reads: reads, checkpoints: &audit.Publisher{Store: store, Signer: auditSigner}}
}

// revokeTokens makes a tenant shred revoke the tenant's tokens, as
// wiring.Build has it (which the api package cannot import).
func revokeTokens(store eventvault.TokenStore, tokens *auth.Tokens) engine.ErasureOption {
	return engine.WithTokenRevoker(func(ctx context.Context, tenant eventvault.TenantID) error {
		_, err := store.DeleteTenantTokens(ctx, tenant)
		tokens.Purge()
		return err
	})
}

// do sends a request with a raw body and returns the recorded response.
func (a *testAPI) do(method, path, token string, body []byte) *httptest.ResponseRecorder {
	a.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.serve(req)
}

// serve sends req to the server; every request of the API tests goes
// through it, and is checked against the OpenAPI document.
func (a *testAPI) serve(req *http.Request) *httptest.ResponseRecorder {
	a.t.Helper()
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	rec := httptest.NewRecorder()
	a.srv.ServeHTTP(rec, req)
	checkContract(a.t, req, body, rec)
	return rec
}

// doJSON marshals body, sends it and decodes the response into out.
func (a *testAPI) doJSON(method, path, token string, body any, wantStatus int, out any) {
	a.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			a.t.Fatalf("marshal: %v", err)
		}
	}
	rec := a.do(method, path, token, b)
	if rec.Code != wantStatus {
		a.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, rec.Code, wantStatus, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			a.t.Fatalf("%s %s: decode %q: %v", method, path, rec.Body, err)
		}
	}
}

// tokenFor issues a token for tenant with the default rules.
func (a *testAPI) tokenFor(tenant string) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": tenant, "name": tenant + "-app"}, http.StatusCreated, &out)
	if !strings.HasPrefix(out.Token, auth.TokenPrefix) {
		a.t.Fatalf("token %q lacks prefix %q", out.Token, auth.TokenPrefix)
	}
	return out.Token
}

type problem struct {
	Type            string          `json:"type"`
	Title           string          `json:"title"`
	Status          int             `json:"status"`
	Detail          string          `json:"detail"`
	Code            string          `json:"code"`
	ActualVersion   json.RawMessage `json:"actual_version"`
	ExpectedVersion json.RawMessage `json:"expected_version"`
}

// wantProblem checks rec is an application/problem+json body with status
// and code, whose detail holds every one of details.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code eventvault.Code, details ...string) problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ProblemContentType {
		t.Fatalf("Content-Type %q, want %q", ct, ProblemContentType)
	}
	var p problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != status || p.Code != string(code) || p.Title == "" || p.Type == "" {
		t.Fatalf("problem %+v, want status %d code %s with a title and type", p, status, code)
	}
	for _, d := range details {
		if !strings.Contains(p.Detail, d) {
			t.Fatalf("problem detail %q does not mention %q", p.Detail, d)
		}
	}
	return p
}

func event(typ string, data any) map[string]any {
	return map[string]any{"id": uuid.NewString(), "type": typ, "data": data}
}

type appendOut struct {
	Stream   string `json:"stream"`
	Version  int64  `json:"version"`
	Replayed bool   `json:"replayed"`
	Events   []struct {
		ID             string `json:"id"`
		Position       int64  `json:"position"`
		GlobalPosition int64  `json:"global_position"`
	} `json:"events"`
}

type streamOut struct {
	Stream  string `json:"stream"`
	Version int64  `json:"version"`
	Events  []struct {
		ID             string          `json:"id"`
		Stream         string          `json:"stream"`
		Type           string          `json:"type"`
		Position       int64           `json:"position"`
		GlobalPosition int64           `json:"global_position"`
		Data           json.RawMessage `json:"data"`
		Metadata       json.RawMessage `json:"metadata"`
	} `json:"events"`
	Next *int64 `json:"next"`
}
