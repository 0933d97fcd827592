package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth"
	evcrypto "github.com/eventvault/eventvault/crypto"
	"github.com/eventvault/eventvault/engine"
	"github.com/eventvault/eventvault/store/bolt"
	"github.com/eventvault/eventvault/vault"
	"github.com/eventvault/eventvault/vault/vaulttest"
)

// keysAPI is the whole server with the key endpoints, over the embedded
// store and the root key provider given: real parts, no fakes.
type keysAPI struct {
	*testAPI
	store eventvault.Store
}

func newKeysAPI(t *testing.T, root evcrypto.RootKeyProvider) *keysAPI {
	t.Helper()
	dir := t.TempDir()
	store, err := bolt.Open(filepath.Join(dir, "eventvault.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return &keysAPI{testAPI: newTestAPIOver(t, store, root), store: store}
}

// token issues a token for tenant with the capabilities on every stream.
func (a *keysAPI) token(tenant string, caps ...eventvault.Capability) string {
	a.t.Helper()
	var out struct{ Token string }
	a.doJSON("POST", "/v1/tokens", a.root, map[string]any{
		"tenant": tenant, "name": "test",
		"rules": []eventvault.Rule{{Capabilities: caps, Streams: "*"}},
	}, http.StatusCreated, &out)
	return out.Token
}

// appendData appends one event holding data and returns nothing: a read
// checks it later.
func (a *keysAPI) appendData(token, stream, data string) {
	a.t.Helper()
	a.doJSON("POST", "/v1/streams/"+stream+"/events", token, map[string]any{
		"events": []map[string]any{{"id": uuid.NewString(), "type": "Noted", "data": json.RawMessage(data)}},
	}, http.StatusCreated, nil)
}

// readData returns the data of the stream's events.
func (a *keysAPI) readData(token, stream string) []string {
	a.t.Helper()
	var page struct {
		Events []struct {
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	a.doJSON("GET", "/v1/streams/"+stream+"/events", token, nil, http.StatusOK, &page)
	out := make([]string, len(page.Events))
	for i, ev := range page.Events {
		out[i] = string(ev.Data)
	}
	return out
}

// wantProblem checks a problem+json answer: status, code and words of the
// detail.
func wantKeyProblem(t *testing.T, what string, rec interface {
	Result() *http.Response
}, status int, code eventvault.Code, detail ...string) map[string]any {
	t.Helper()
	res := rec.Result()
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("%s: body is not JSON: %v", what, err)
	}
	if res.StatusCode != status || body["code"] != string(code) {
		t.Fatalf("%s: status %d code %v (%v), want %d %s", what, res.StatusCode, body["code"], body["detail"], status, code)
	}
	if ct := res.Header.Get("Content-Type"); ct != ProblemContentType {
		t.Fatalf("%s: Content-Type %q, want %s", what, ct, ProblemContentType)
	}
	for _, d := range detail {
		if s, _ := body["detail"].(string); !strings.Contains(s, d) {
			t.Fatalf("%s: detail %q lacks %q", what, s, d)
		}
	}
	return body
}

func TestRotateTenantKEKOverHTTP(t *testing.T) {
	a := newKeysAPI(t, nil)
	app := a.token("acme", eventvault.CapAppend, eventvault.CapRead)
	admin := a.token("acme", eventvault.CapAdmin)
	otherAdmin := a.token("globex", eventvault.CapAdmin)
	want := map[string][]string{}
	for i := range 3 {
		stream := fmt.Sprintf("order-%d", i)
		data := fmt.Sprintf(`{"order":%d}`, i)
		a.appendData(app, stream, data)
		want[stream] = []string{data}
	}
	const path = "/v1/admin/tenants/acme/kek/rotate"

	wantKeyProblem(t, "no token", a.do("POST", path, "", nil), http.StatusUnauthorized, eventvault.EUNAUTHORIZED)
	wantKeyProblem(t, "an app token of the tenant", a.do("POST", path, app, nil), http.StatusForbidden, eventvault.EFORBIDDEN)
	wantKeyProblem(t, "an admin of another tenant", a.do("POST", path, otherAdmin, nil), http.StatusForbidden, eventvault.EFORBIDDEN)
	wantKeyProblem(t, "an unknown field", a.do("POST", path, admin, []byte(`{"version":9}`)), http.StatusBadRequest, eventvault.EINVALID, "unknown field")
	wantKeyProblem(t, "a body that is not JSON", a.do("POST", path, admin, []byte(`rotate!`)), http.StatusBadRequest, eventvault.EINVALID)
	wantKeyProblem(t, "a malformed tenant", a.do("POST", "/v1/admin/tenants/ACME/kek/rotate", a.root, nil), http.StatusBadRequest, eventvault.EINVALID, "invalid tenant")
	wantKeyProblem(t, "a tenant without a key", a.do("POST", "/v1/admin/tenants/nobody/kek/rotate", a.root, nil), http.StatusNotFound, eventvault.ENOTFOUND, "nothing to rotate")
	wantKeyProblem(t, "GET", a.do("GET", path, admin, nil), http.StatusMethodNotAllowed, eventvault.EINVALID)
	if wk, _ := a.store.TenantKey(t.Context(), "acme"); wk.Version != 1 {
		t.Fatalf("refused requests moved the KEK to version %d", wk.Version)
	}

	for i, token := range []string{admin, a.root} {
		var got map[string]any
		a.doJSON("POST", path, token, map[string]any{}, http.StatusOK, &got)
		wantBody := map[string]any{"tenant": "acme", "version": float64(i + 2), "rewrapped_streams": float64(3)}
		if fmt.Sprint(got) != fmt.Sprint(wantBody) {
			t.Fatalf("rotation %d answered %v, want %v", i+1, got, wantBody)
		}
	}
	rows, err := a.store.StreamKeysBefore(t.Context(), "acme", 3, "", 10)
	if err != nil || len(rows) != 0 {
		t.Fatalf("%d stream keys left under older KEK versions (%v)", len(rows), err)
	}
	a.appendData(app, "order-0", `{"after":"rotation"}`)
	want["order-0"] = append(want["order-0"], `{"after":"rotation"}`)
	for stream, data := range want {
		if got := a.readData(app, stream); fmt.Sprint(got) != fmt.Sprint(data) {
			t.Fatalf("%s reads %v after the rotations, want %v", stream, got, data)
		}
	}
}

func TestRootRotationWithTheLocalRootKeyIsRefused(t *testing.T) {
	a := newKeysAPI(t, nil)
	admin := a.token("acme", eventvault.CapAdmin)
	a.appendData(a.token("acme", eventvault.CapAppend), "order-1", `{"n":1}`)

	wantKeyProblem(t, "a tenant admin rotates the root", a.do("POST", "/v1/admin/root/rotate", admin, nil), http.StatusForbidden, eventvault.EFORBIDDEN, "only the root token")
	wantKeyProblem(t, "a tenant admin retires root versions", a.do("POST", "/v1/admin/root/retire", admin, []byte(`{"before_version":2}`)), http.StatusForbidden, eventvault.EFORBIDDEN)
	wantKeyProblem(t, "root rotates a local root key", a.do("POST", "/v1/admin/root/rotate", a.root, nil), http.StatusBadRequest, eventvault.EINVALID, "cannot rotate (", "use Vault Transit")
	for _, tc := range []struct{ name, body, detail string }{
		{"no body", ``, "empty"},
		{"no before_version", `{}`, "before_version is missing"},
		{"zero", `{"before_version":0}`, "1 or more"},
		{"negative", `{"before_version":-3}`, "1 or more"},
		{"a string", `{"before_version":"2"}`, "before_version"},
		{"a fraction", `{"before_version":1.5}`, "before_version"},
		{"an unknown field", `{"before":2}`, "unknown field"},
		{"a local root key", `{"before_version":99}`, "cannot retire old versions ("},
	} {
		wantKeyProblem(t, tc.name, a.do("POST", "/v1/admin/root/retire", a.root, []byte(tc.body)), http.StatusBadRequest, eventvault.EINVALID, tc.detail)
	}
}

func TestRootRotationOverVault(t *testing.T) {
	v := vaulttest.Start(t)
	transit, err := vault.New(t.Context(), v.Config(), nil)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	a := newKeysAPI(t, transit)
	want := map[string]map[string]string{} // tenant → stream → data
	tokens := map[string]string{}
	for _, tenant := range []string{"acme", "globex", "initech"} {
		tokens[tenant] = a.token(tenant, eventvault.CapAppend, eventvault.CapRead)
		want[tenant] = map[string]string{}
		for i := range 2 {
			stream, data := fmt.Sprintf("order-%d", i), fmt.Sprintf(`{"%s":%d}`, tenant, i)
			a.appendData(tokens[tenant], stream, data)
			want[tenant][stream] = data
		}
	}
	// acme has two KEK versions: root rotation re-wraps each.
	a.doJSON("POST", "/v1/admin/tenants/acme/kek/rotate", a.root, nil, http.StatusOK, nil)

	// The Transit key gains a version behind EventVault's back: every KEK
	// is still under version 1, so retiring version 1 is refused.
	v.Write("transit/keys/"+vaulttest.Key+"/rotate", nil)
	body := wantKeyProblem(t, "retire while KEKs need version 1", a.do("POST", "/v1/admin/root/retire", a.root, []byte(`{"before_version":2}`)),
		http.StatusConflict, eventvault.ECONFLICT, "still wrapped under root key versions older than 2")
	if body["remaining_keks"] != float64(4) || body["oldest_root_version"] != float64(1) {
		t.Fatalf("conflict fields: remaining_keks %v, oldest_root_version %v; want 4 and 1", body["remaining_keks"], body["oldest_root_version"])
	}

	var rot map[string]any
	a.doJSON("POST", "/v1/admin/root/rotate", a.root, nil, http.StatusOK, &rot)
	if rot["root_version"] != float64(3) || rot["rewrapped_keks"] != float64(4) {
		t.Fatalf("root rotation answered %v, want root_version 3 and 4 KEKs re-wrapped", rot)
	}
	wantKeyProblem(t, "retire beyond the newest version", a.do("POST", "/v1/admin/root/retire", a.root, []byte(`{"before_version":4}`)), http.StatusBadRequest, eventvault.EINVALID, "1 to 3")
	var retired map[string]any
	a.doJSON("POST", "/v1/admin/root/retire", a.root, map[string]any{"before_version": 3}, http.StatusOK, &retired)
	if retired["before_version"] != float64(3) {
		t.Fatalf("retire answered %v", retired)
	}
	if got := v.Read("transit/keys/" + vaulttest.Key)["min_decryption_version"]; fmt.Sprint(got) != "3" {
		t.Fatalf("Vault's min_decryption_version is %v, want 3", got)
	}

	// A fresh server (cold caches) on the same store and Vault reads all.
	fresh := newKeysAPIOn(t, a.store, transit)
	for tenant, streams := range want {
		for stream, data := range streams {
			if got := fresh.readData(tokens[tenant], stream); len(got) != 1 || got[0] != data {
				t.Fatalf("%s/%s reads %v after root rotation and retirement, want [%s]", tenant, stream, got, data)
			}
		}
	}
}

// newKeysAPIOn is a second server over an existing store and root key,
// sharing its tokens: another node, or the same one after a restart.
func newKeysAPIOn(t *testing.T, store eventvault.Store, root evcrypto.RootKeyProvider) *keysAPI {
	t.Helper()
	keys := evcrypto.NewKeyring(root, store, evcrypto.KeyringOptions{})
	srv := New(Config{Events: engine.NewEvents(store, keys, nil), Keys: engine.NewRotation(evcrypto.NewKeyManager(keys), nil), Tokens: &auth.Tokens{Store: store, Key: testTokenKey}, Ready: store.Ping})
	return &keysAPI{testAPI: &testAPI{t: t, srv: srv}, store: store}
}
