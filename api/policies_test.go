package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// putPolicy writes a document as the root token and returns its version.
func (a *testAPI) putPolicy(tenant, name, body string, want int) policyResponse {
	a.t.Helper()
	var out policyResponse
	a.doJSON(http.MethodPut, "/v1/policies/"+name+"?tenant="+tenant, a.root, map[string]any{"policy": body}, want, &out)
	return out
}

// policyToken issues a token of tenant that holds only the named documents.
func (a *testAPI) policyToken(tenant string, names ...string) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": tenant, "name": "by-policy", "policies": names}, http.StatusCreated, &out)
	if len(out.Rules) != 0 || len(out.Policies) != len(names) {
		a.t.Fatalf("a token made with policies only has rules %v and policies %v", out.Rules, out.Policies)
	}
	return out.Token
}

func appendOne(typ string) map[string]any {
	return map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": typ, "data": map[string]any{"n": 1}}}}
}

const appPolicy = `// The order service: writes and reads its own streams.
@id("orders")
permit (principal, action in [Action::"append", Action::"read"], resource is Stream)
when { resource.category == "order" };

@id("no-refunds")
forbid (principal, action == Action::"append", resource)
when { context.event_type == "RefundIssued" };
`

func TestPolicyDocumentsLifecycle(t *testing.T) { onBothStores(t, testPolicyDocumentsLifecycle) }

func testPolicyDocumentsLifecycle(t *testing.T, a *testAPI) {
	v1 := a.putPolicy("acme", "app", appPolicy, http.StatusCreated)
	if v1.Version != 1 || v1.Tenant != "acme" || v1.Policy != appPolicy || v1.CreatedBy == "" {
		t.Fatalf("first write %+v", v1)
	}
	// The same text again makes no version.
	if again := a.putPolicy("acme", "app", appPolicy, http.StatusOK); again.Version != 1 {
		t.Fatalf("the same text again made version %d", again.Version)
	}
	v2 := a.putPolicy("acme", "app", appPolicy+"\n// reviewed\n", http.StatusOK)
	if v2.Version != 2 {
		t.Fatalf("second write is version %d", v2.Version)
	}
	var cur policyResponse
	a.doJSON(http.MethodGet, "/v1/policies/app?tenant=acme", a.root, nil, http.StatusOK, &cur)
	if cur.Version != 2 {
		t.Fatalf("GET returns version %d, want 2", cur.Version)
	}
	var old policyResponse
	a.doJSON(http.MethodGet, "/v1/policies/app?tenant=acme&version=1", a.root, nil, http.StatusOK, &old)
	if old.Version != 1 || old.Policy != appPolicy {
		t.Fatalf("version 1 reads %+v", old)
	}
	var list policyList
	a.doJSON(http.MethodGet, "/v1/policies?tenant=acme", a.root, nil, http.StatusOK, &list)
	if len(list.Policies) != 1 || list.Policies[0].Name != "app" {
		t.Fatalf("list %+v", list)
	}
	// Another tenant sees none of it.
	a.doJSON(http.MethodGet, "/v1/policies?tenant=globex", a.root, nil, http.StatusOK, &list)
	if len(list.Policies) != 0 {
		t.Fatalf("globex lists acme's documents: %+v", list)
	}
	a.doJSON(http.MethodDelete, "/v1/policies/app?tenant=acme", a.root, nil, http.StatusNoContent, nil)
	wantProblem(t, a.do(http.MethodGet, "/v1/policies/app?tenant=acme", a.root, nil), http.StatusNotFound, eventvault.ENOTFOUND, "no policy app")
	wantProblem(t, a.do(http.MethodDelete, "/v1/policies/app?tenant=acme", a.root, nil), http.StatusNotFound, eventvault.ENOTFOUND, "already deleted")
	var gone policyResponse
	a.doJSON(http.MethodGet, "/v1/policies/app?tenant=acme&version=3", a.root, nil, http.StatusOK, &gone)
	if !gone.Deleted || gone.Policy != "" {
		t.Fatalf("the deletion reads %+v", gone)
	}
	// A deleted name is never written again: a token issued for the old
	// document must not gain the new one.
	var tok tokenResponse
	a.putPolicy("acme", "reader", `permit (principal, action == Action::"read", resource);`, http.StatusCreated)
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "old", "policies": []string{"reader"}}, http.StatusCreated, &tok)
	a.doJSON(http.MethodDelete, "/v1/policies/reader?tenant=acme", a.root, nil, http.StatusNoContent, nil)
	wantProblem(t, a.do(http.MethodPut, "/v1/policies/reader?tenant=acme", a.root, []byte(`{"policy":"permit (principal, action, resource);"}`)), http.StatusConflict, eventvault.ECONFLICT, "never written again")
	wantProblem(t, a.do(http.MethodPut, "/v1/policies/app?tenant=acme", a.root, []byte(`{"policy":"permit (principal, action, resource);"}`)), http.StatusConflict, eventvault.ECONFLICT, "choose another name")
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", tok.Token, nil), http.StatusForbidden, eventvault.EFORBIDDEN, "deny by default")
}

// TestPolicyBadInput: every input tried, each 400 with a reason a person
// can act on, and nothing stored.
func TestPolicyBadInput(t *testing.T) {
	a := newTestAPI(t)
	cases := []struct {
		name, path, body string
		status           int
		want             []string
	}{
		{"syntax error names the line", "/v1/policies/app", `{"policy":"permit (principal, action, resource)\nwhen { resource.name == "}`, 400, []string{"does not parse", "line 2"}},
		{"syntax error says what was expected", "/v1/policies/p1", `{"policy":"permit (principal, action, resource"}`, 400, []string{"policy p1 does not parse: expected ')' at line 1, column 36, where the policy ends"}},
		{"schema error names the line and the attribute", "/v1/policies/app", `{"policy":"\npermit (principal, action == Action::\"read\", resource)\nwhen { context.event_type == \"X\" };"}`, 400, []string{"line 2", "event_type", "/v1/policy-schema"}},
		{"unknown action", "/v1/policies/app", `{"policy":"permit (principal, action == Action::\"delete_everything\", resource);"}`, 400, []string{"unrecognized action"}},
		{"no statement", "/v1/policies/app", `{"policy":"// nothing"}`, 400, []string{"no statement"}},
		{"empty policy", "/v1/policies/app", `{"policy":""}`, 400, []string{"policy is missing"}},
		{"no policy field", "/v1/policies/app", `{}`, 400, []string{"policy is missing"}},
		{"unknown field", "/v1/policies/app", `{"policy":"permit (principal, action, resource);","effect":"allow"}`, 400, []string{"effect"}},
		{"bad name", "/v1/policies/App", `{"policy":"permit (principal, action, resource);"}`, 400, []string{"policy name"}},
		{"not JSON", "/v1/policies/app", `permit (principal, action, resource);`, 400, nil},
		{"brackets nested too deep", "/v1/policies/app", `{"policy":"permit (principal, action, resource) when ` + strings.Repeat("(", 40) + `true` + strings.Repeat(")", 40) + `;"}`, 400, []string{"nest", "limit is 32"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, a.do(http.MethodPut, c.path, a.root, []byte(c.body)), c.status, eventvault.EINVALID, c.want...)
		})
	}
	var list policyList
	a.doJSON(http.MethodGet, "/v1/policies", a.root, nil, http.StatusOK, &list)
	if len(list.Policies) != 0 {
		t.Fatalf("refused writes stored %+v", list.Policies)
	}
	// A token naming a document that does not exist, or twice.
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"name":"n","tenant":"acme","policies":["nope"]}`)), 400, eventvault.EINVALID, "has no policy nope")
	a.putPolicy("acme", "app", appPolicy, http.StatusCreated)
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"name":"n","tenant":"acme","policies":["app","app"]}`)), 400, eventvault.EINVALID, "named twice")
	// acme's document does not exist for globex.
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"name":"n","tenant":"globex","policies":["app"]}`)), 400, eventvault.EINVALID, "has no policy app")
	wantProblem(t, a.do(http.MethodGet, "/v1/policies/app?version=0", a.root, nil), 400, eventvault.EINVALID, "version")
	// An empty list of policies grants nothing, so it is refused rather
	// than given the default rules.
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"name":"n","tenant":"acme","policies":[]}`)), 400, eventvault.EINVALID, "policies is an empty list")
	// A bad pattern is refused without echoing it: it may be anything.
	rec := a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"name":"n","tenant":"acme","rules":[{"capabilities":["read"],"streams":"jane.doe@example.com"}]}`))
	if p := wantProblem(t, rec, 400, eventvault.EINVALID, "rules[0].streams"); strings.Contains(p.Detail, "jane.doe") {
		t.Errorf("the problem echoes the pattern: %s", p.Detail)
	}
	// Deletions take no body.
	wantProblem(t, a.do(http.MethodDelete, "/v1/policies/app", a.root, []byte(`{}`)), 400, eventvault.EINVALID, "takes no body")
	var tok tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "default", "name": "x"}, http.StatusCreated, &tok)
	wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/"+tok.ID, a.root, []byte(`{}`)), 400, eventvault.EINVALID, "takes no body")
}

func TestPoliciesDecideRequests(t *testing.T) { onBothStores(t, testPoliciesDecideRequests) }

func testPoliciesDecideRequests(t *testing.T, a *testAPI) {
	a.putPolicy("acme", "app", appPolicy, http.StatusCreated)
	a.putPolicy("acme", "analyst", `permit (principal, action == Action::"read", resource);`, http.StatusCreated)
	app, analyst := a.policyToken("acme", "app"), a.policyToken("acme", "analyst")

	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", app, appendOne("OrderPlaced"), http.StatusCreated, nil)
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", app, nil, http.StatusOK, nil)
	// Deny by default: another category.
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/invoice-1/events", app, []byte(mustJSON(appendOne("InvoiceSent")))), 403, eventvault.EFORBIDDEN, "append on stream invoice-1", "deny by default")
	// A forbid overrides the permit, and says which statement decided.
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", app, []byte(mustJSON(appendOne("RefundIssued")))), 403, eventvault.EFORBIDDEN, "app#no-refunds")
	// A batch with one forbidden type writes nothing.
	batch := map[string]any{"events": []any{
		map[string]any{"id": uuid.NewString(), "type": "OrderShipped", "data": 1},
		map[string]any{"id": uuid.NewString(), "type": "RefundIssued", "data": 2},
	}}
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", app, []byte(mustJSON(batch))), 403, eventvault.EFORBIDDEN, "RefundIssued")
	var page streamOut
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", app, nil, http.StatusOK, &page)
	if len(page.Events) != 1 {
		t.Fatalf("the refused batch wrote: %d events", len(page.Events))
	}
	// The app may not read all: read on streams is not read_all.
	wantProblem(t, a.do(http.MethodGet, "/v1/events", app, nil), 403, eventvault.EFORBIDDEN, "read_all")
	// The analyst reads any stream, appends nothing, reads not all either.
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", analyst, nil, http.StatusOK, nil)
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", analyst, []byte(mustJSON(appendOne("OrderPlaced")))), 403, eventvault.EFORBIDDEN)
	wantProblem(t, a.do(http.MethodGet, "/v1/events", analyst, nil), 403, eventvault.EFORBIDDEN)
	// Neither manages tokens or policies.
	for _, tok := range []string{app, analyst} {
		wantProblem(t, a.do(http.MethodPost, "/v1/tokens", tok, []byte(`{}`)), 403, eventvault.EFORBIDDEN, "manage_tokens")
		wantProblem(t, a.do(http.MethodPut, "/v1/policies/mine", tok, []byte(`{"policy":"permit (principal, action, resource);"}`)), 403, eventvault.EFORBIDDEN, "manage_policies")
	}
	// A change takes effect on this node at once: the analyst may now
	// append OrderNoted events to order streams.
	a.putPolicy("acme", "analyst", `permit (principal, action == Action::"read", resource);
permit (principal, action == Action::"append", resource is Stream) when { resource.category == "order" && context.event_type == "OrderNoted" };`, http.StatusOK)
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", analyst, appendOne("OrderNoted"), http.StatusCreated, nil)
	// Deleting the document takes everything it granted.
	a.doJSON(http.MethodDelete, "/v1/policies/analyst?tenant=acme", a.root, nil, http.StatusNoContent, nil)
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", analyst, nil), 403, eventvault.EFORBIDDEN, "deny by default")
}

// TestTenantAdminManagesOnlyItsOwnPolicies: an admin by rules manages the
// documents of its tenant and of no other, whatever a document says.
func TestTenantAdminManagesOnlyItsOwnPolicies(t *testing.T) {
	a := newTestAPI(t)
	admin := a.capToken("acme", eventvault.CapAdmin)
	var out policyResponse
	a.doJSON(http.MethodPut, "/v1/policies/app", admin, map[string]any{"policy": appPolicy}, http.StatusCreated, &out)
	if out.Tenant != "acme" {
		t.Fatalf("the admin wrote into tenant %q", out.Tenant)
	}
	wantProblem(t, a.do(http.MethodPut, "/v1/policies/app?tenant=globex", admin, []byte(`{"policy":"permit (principal, action, resource);"}`)), 403, eventvault.EFORBIDDEN, "its own tenant")
	wantProblem(t, a.do(http.MethodGet, "/v1/policies?tenant=globex", admin, nil), 403, eventvault.EFORBIDDEN)
	// A document that permits everything still stays in its tenant.
	a.doJSON(http.MethodPut, "/v1/policies/all", admin, map[string]any{"policy": "permit (principal, action, resource);"}, http.StatusCreated, nil)
	var tok tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", admin, map[string]any{"name": "all", "policies": []string{"all"}}, http.StatusCreated, &tok)
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok.Token, appendOne("A"), http.StatusCreated, nil)
	wantProblem(t, a.do(http.MethodGet, "/v1/policies?tenant=globex", tok.Token, nil), 403, eventvault.EFORBIDDEN, "its own tenant")
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", tok.Token, []byte(`{"tenant":"globex"}`)), 403, eventvault.EFORBIDDEN, "its own tenant")
	// The root rotation stays the operator's.
	wantProblem(t, a.do(http.MethodPost, "/v1/admin/root/rotate", tok.Token, nil), 403, eventvault.EFORBIDDEN)
	var listed tokenList
	a.doJSON(http.MethodGet, "/v1/tokens", admin, nil, http.StatusOK, &listed)
	found := false
	for _, ti := range listed.Tokens {
		if ti.ID == tok.ID {
			found = len(ti.Policies) == 1 && ti.Policies[0] == "all"
		}
	}
	if !found {
		t.Fatalf("the token list does not show the token's policies: %+v", listed.Tokens)
	}
	if !strings.Contains(string([]byte(mustJSON(listed))), `"policies":[]`) {
		t.Fatalf("a token without policies lists them as null, not []: %s", []byte(mustJSON(listed)))
	}
}
