package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
	"github.com/eventvault/eventvault/store/bolt"
)

// The access matrix: every endpoint of the router's own route table, run
// by every kind of caller against a resource of the caller's own tenant,
// one of the other tenant, and one that does not exist. Each cell's status
// is asserted; a route without a row fails the test, so a new endpoint
// cannot be forgotten. After the non-root callers have run, the other
// tenant's data must be as it was (zero cross-tenant effects), and no
// response to them holds the other tenant's secret.

type caller string

const (
	callerNone      caller = "no credentials"
	callerJWTOther  caller = "JWT of another tenant"
	callerJWTNarrow caller = "JWT with a narrow policy"
	callerNarrow    caller = "narrow API token"
	callerAdmin     caller = "tenant admin"
	callerRoot      caller = "root"
)

// callers in the order they run: root last, since its cells may shred a
// whole tenant.
var callers = []caller{callerNone, callerJWTOther, callerJWTNarrow, callerNarrow, callerAdmin, callerRoot}

type target int

const (
	own target = iota
	otherTenant
	missing
)

var targetNames = [...]string{"own tenant", "other tenant", "nonexistent"}

// secrets are written into each tenant's events; a response to a caller
// of one tenant must never hold the other's.
var secrets = map[string]string{"acme": "acme-secret-3f1", "globex": "globex-secret-9c2"}

var requestIDField = regexp.MustCompile(`"http_request_id":"[^"]*",?`)

func otherOf(tenant string) string {
	if tenant == "acme" {
		return "globex"
	}
	return "acme"
}

// matrixFixture is one server with two tenants, each with a stream, a
// token, a policy document, a subject owning a stream, an erasure request
// and a legal hold; and a bearer for each caller.
type matrixFixture struct {
	a       *jwtAPI
	bearer  map[caller]string
	setup   map[string]string // tenant → an admin API token used to build cells
	stream  map[string]string
	token   map[string]string // tenant → a token id
	doc     map[string]string // tenant → a policy name only it has
	owner   map[string]string // tenant → a subject owning one of its streams
	held    map[string]string // tenant → a subject under legal hold
	erasure map[string]string // tenant → an erasure request id
	// consumer names a durable consumer of each tenant, registered by the
	// cells that need it (ensureConsumer): a consumer registered up front
	// would hold every erasure of personal values in propagating.
	consumer map[string]string
	// piiToken is, per tenant, the token of a personal value of its owner.
	piiToken map[string]string
	n        int
}

// tenantOf is the tenant a caller's cells are about: root acts as the
// operator of acme.
func tenantOf(c caller) string {
	if c == callerJWTOther {
		return "globex"
	}
	return "acme"
}

func newMatrixFixture(t *testing.T, a *jwtAPI) *matrixFixture {
	f := &matrixFixture{a: a, bearer: map[caller]string{}, setup: map[string]string{}, stream: map[string]string{}, token: map[string]string{},
		doc: map[string]string{}, owner: map[string]string{}, held: map[string]string{}, erasure: map[string]string{}, consumer: map[string]string{}, piiToken: map[string]string{}}
	a.putPolicy("acme", "admin", `permit (principal, action, resource);`, http.StatusCreated)
	a.putPolicy("globex", "admin", `permit (principal, action, resource);`, http.StatusCreated)
	a.putPolicy("acme", "reader", `permit (principal, action == Action::"read", resource is Stream) when { resource.name like "order-*" };`, http.StatusCreated)
	for _, tenant := range []string{"acme", "globex"} {
		var tok tokenResponse
		a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": tenant, "name": "setup", "policies": []string{"admin"}}, http.StatusCreated, &tok)
		f.setup[tenant], f.token[tenant] = tok.Token, tok.ID
		f.stream[tenant] = "order-" + tenant[:1] + "1"
		f.owner[tenant] = "owner-of-" + tenant
		a.doJSON(http.MethodPost, "/v1/streams/"+f.stream[tenant]+"/events", tok.Token, map[string]any{
			"events": []any{map[string]any{"id": uuid.NewString(), "type": "OrderPlaced", "data": map[string]any{"note": secrets[tenant]}}},
		}, http.StatusCreated, nil)
		a.doJSON(http.MethodPost, "/v1/streams/owned-"+tenant+"/events", tok.Token, map[string]any{
			"subject": f.owner[tenant], "events": []any{map[string]any{"id": uuid.NewString(), "type": "Registered", "data": map[string]any{"note": secrets[tenant]}}},
		}, http.StatusCreated, nil)
		a.doJSON(http.MethodPost, "/v1/streams/contact-"+tenant+"/events", tok.Token, map[string]any{
			"events": []any{map[string]any{"id": uuid.NewString(), "type": "Contacted", "data": map[string]any{"email": "owner@" + tenant + ".example"},
				"pii": map[string]any{"/email": map[string]any{"subject": f.owner[tenant], "class": "email"}}}},
		}, http.StatusCreated, nil)
		var x struct {
			PersonalData []struct {
				Token string `json:"token"`
			} `json:"personal_data"`
		}
		a.doJSON(http.MethodPost, "/v1/subject-exports", tok.Token, map[string]any{"subject": f.owner[tenant]}, http.StatusOK, &x)
		if len(x.PersonalData) != 1 {
			t.Fatalf("the export of %s's owner holds %d values, want 1", tenant, len(x.PersonalData))
		}
		f.piiToken[tenant] = x.PersonalData[0].Token
		f.doc[tenant] = "only-" + tenant
		a.putPolicy(tenant, f.doc[tenant], `permit (principal, action == Action::"read", resource);`, http.StatusCreated)
		f.held[tenant] = "held-in-" + tenant
		a.doJSON(http.MethodPut, "/v1/holds", tok.Token, map[string]any{"subject": f.held[tenant], "reason": "litigation"}, http.StatusOK, nil)
		var er erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok.Token, map[string]any{"subject": "erased-in-" + tenant}, http.StatusCreated, &er)
		f.erasure[tenant] = er.ID
		f.consumer[tenant] = "view-" + tenant
	}
	var narrow tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "narrow",
		"rules": []any{map[string]any{"capabilities": []string{"append", "read"}, "streams": "order-*"}}}, http.StatusCreated, &narrow)
	f.bearer[callerNarrow] = narrow.Token
	f.bearer[callerAdmin] = f.setup["acme"]
	f.bearer[callerRoot] = a.root
	f.bearer[callerJWTNarrow] = a.idp.Sign(t, jwttest.KidEC, jwttest.Claims("analyst-1", tenantClaim, "acme", groupsClaim, "reader"))
	f.bearer[callerJWTOther] = a.idp.Sign(t, jwttest.KidEd25519, jwttest.Claims("globex-admin", tenantClaim, "globex", groupsClaim, "admin"))
	// Every log has a signed checkpoint to export against.
	if _, err := a.checkpoints.PublishOnce(t.Context()); err != nil {
		t.Fatalf("publish checkpoints: %v", err)
	}
	return f
}

// ensureConsumers registers each tenant's consumer f.consumer (again:
// a PUT of the same filter changes nothing).
func (f *matrixFixture) ensureConsumers() {
	for tenant, name := range f.consumer {
		rec := f.a.do(http.MethodPut, "/v1/subscriptions/"+name, f.setup[tenant], []byte(`{"filter":{"categories":["order"]}}`))
		if rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
			f.a.t.Fatalf("register consumer %s: %d %s", name, rec.Code, rec.Body)
		}
	}
}

// fresh returns a unique suffix for resources a cell destroys.
func (f *matrixFixture) fresh() string {
	f.n++
	return fmt.Sprint(f.n)
}

// cell is one request.
type cell struct {
	method, path string
	body         any // nil: no body
}

// name returns a resource name per target: own, the other tenant's, none.
func pick(tg target, own, other, none string) string {
	return [...]string{own, other, none}[tg]
}

// row is an endpoint's cells and the status each caller gets on the own,
// other-tenant and nonexistent targets.
type row struct {
	build func(f *matrixFixture, c caller, tenant string, tg target) cell
	want  map[caller][3]int
}

func same(code int) [3]int { return [3]int{code, code, code} }

// everyone gives code to every caller, with or without credentials.
func everyone(code int) map[caller][3]int {
	m := map[caller][3]int{}
	for _, c := range callers {
		m[c] = same(code)
	}
	return m
}

func public(path string) row {
	return row{build: func(*matrixFixture, caller, string, target) cell { return cell{http.MethodGet, path, nil} }, want: everyone(200)}
}

// accessMatrix holds one row per method and route template. HEAD rows are
// their GET rows.
var accessMatrix = map[string]row{
	"GET /healthz":          public("/healthz"),
	"GET /readyz":           public("/readyz"),
	"GET /v1/openapi.json":  public("/v1/openapi.json"),
	"GET /v1/keys/signing":  public("/v1/keys/signing"),
	"GET /v1/policy-schema": public("/v1/policy-schema"),

	"POST /v1/streams/:stream/events": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/streams/" + pick(tg, f.stream[tenant], f.stream[otherOf(tenant)], "order-404") + "/events",
				map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "OrderPlaced", "data": 1}}}}
		},
		// Stream names are the caller's tenant's: appending to the other
		// tenant's name creates the caller's own stream of that name.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(201), callerJWTNarrow: same(403), callerNarrow: same(201), callerAdmin: same(201), callerRoot: same(201)},
	},
	"GET /v1/streams/:stream/events": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/streams/" + pick(tg, f.stream[tenant], f.stream[otherOf(tenant)], "order-404") + "/events", nil}
		},
		// The root token's own tenant is "default", which has no stream.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: {200, 404, 404}, callerNarrow: {200, 404, 404}, callerAdmin: {200, 404, 404}, callerRoot: same(404)},
	},
	"DELETE /v1/streams/:stream": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			name := pick(tg, "", f.stream[otherOf(tenant)], "order-404")
			if tg == own {
				// A stream of the caller's tenant made for this cell.
				name = "order-shred" + f.fresh()
				writer := f.setup[tenant]
				if c == callerRoot {
					writer = f.a.root
				}
				f.a.doJSON(http.MethodPost, "/v1/streams/"+name+"/events", writer, map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "A", "data": 1}}}, http.StatusCreated, nil)
			}
			return cell{http.MethodDelete, "/v1/streams/" + name, nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: {200, 404, 404}},
	},
	"GET /v1/events": {
		build: func(*matrixFixture, caller, string, target) cell { return cell{http.MethodGet, "/v1/events", nil} },
		want:  map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},

	"GET /v1/subscribe": {
		// The feed streams: the cell reads it for a moment (streamed).
		build: func(*matrixFixture, caller, string, target) cell {
			return cell{http.MethodGet, "/v1/subscribe?from=0", nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},
	"GET /v1/subscriptions": {
		build: func(*matrixFixture, caller, string, target) cell {
			return cell{http.MethodGet, "/v1/subscriptions", nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},
	"PUT /v1/subscriptions/:name": {
		// Consumer names are the caller's tenant's: the other tenant's
		// name registers the caller's own consumer of that name.
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPut, "/v1/subscriptions/" + pick(tg, "m"+f.fresh(), f.consumer[otherOf(tenant)], "new"+f.fresh()), map[string]any{"filter": map[string]any{}}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(201), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(201), callerRoot: same(201)},
	},
	"GET /v1/subscriptions/:name": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			f.ensureConsumers()
			return cell{http.MethodGet, "/v1/subscriptions/" + pick(tg, f.consumer[tenant], f.consumer[otherOf(tenant)], "nosuch"), nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: same(404)},
	},
	"POST /v1/subscriptions/:name/ack": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			f.ensureConsumers()
			return cell{http.MethodPost, "/v1/subscriptions/" + pick(tg, f.consumer[tenant], f.consumer[otherOf(tenant)], "nosuch") + "/ack", map[string]any{"position": 0}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: same(404)},
	},
	"DELETE /v1/subscriptions/:name": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			f.ensureConsumers()
			name := pick(tg, "", f.consumer[otherOf(tenant)], "nosuch")
			if tg == own {
				name = "doomed" + f.fresh()
				owner := f.setup[tenant]
				if c == callerRoot {
					owner = f.a.root
				}
				f.a.doJSON(http.MethodPut, "/v1/subscriptions/"+name, owner, map[string]any{}, http.StatusCreated, nil)
			}
			return cell{http.MethodDelete, "/v1/subscriptions/" + name, nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {204, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {204, 404, 404}, callerRoot: {204, 404, 404}},
	},

	"POST /v1/tokens": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/tokens", map[string]any{"tenant": pick(tg, tenant, otherOf(tenant), "nosuch"), "name": "matrix"}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {201, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {201, 403, 403}, callerRoot: same(201)},
	},
	"GET /v1/tokens": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/tokens?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"), nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: same(200)},
	},
	"DELETE /v1/tokens/:id": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			id := pick(tg, "", f.token[otherOf(tenant)], "tok_0000000000000000")
			if tg == own {
				var tok tokenResponse
				f.a.doJSON(http.MethodPost, "/v1/tokens", f.a.root, map[string]any{"tenant": tenant, "name": "doomed"}, http.StatusCreated, &tok)
				id = tok.ID
			}
			return cell{http.MethodDelete, "/v1/tokens/" + id + "?tenant=" + tenant, nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {204, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {204, 404, 404}, callerRoot: {204, 404, 404}},
	},

	"GET /v1/policies": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/policies?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"), nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: same(200)},
	},
	"PUT /v1/policies/:name": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPut, "/v1/policies/m" + f.fresh() + "?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"),
				map[string]any{"policy": `permit (principal, action == Action::"read", resource);`}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {201, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {201, 403, 403}, callerRoot: same(201)},
	},
	"GET /v1/policies/:name": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/policies/" + pick(tg, f.doc[tenant], f.doc[otherOf(tenant)], "nosuch") + "?tenant=" + tenant, nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: {200, 404, 404}},
	},
	"DELETE /v1/policies/:name": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			name := pick(tg, "", f.doc[otherOf(tenant)], "nosuch")
			if tg == own {
				name = "doomed" + f.fresh()
				f.a.putPolicy(tenant, name, `permit (principal, action == Action::"read", resource);`, http.StatusCreated)
			}
			return cell{http.MethodDelete, "/v1/policies/" + name + "?tenant=" + tenant, nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {204, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {204, 404, 404}, callerRoot: {204, 404, 404}},
	},

	"POST /v1/admin/tenants/:tenant/kek/rotate": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/admin/tenants/" + pick(tg, tenant, otherOf(tenant), "nosuch") + "/kek/rotate", nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: {200, 200, 404}},
	},
	"POST /v1/admin/root/rotate": {
		build: func(*matrixFixture, caller, string, target) cell {
			return cell{http.MethodPost, "/v1/admin/root/rotate", nil}
		},
		// The local root key cannot rotate (Vault Transit only): 400
		// saying so.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(403), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(403), callerRoot: same(400)},
	},
	"POST /v1/admin/root/retire": {
		build: func(*matrixFixture, caller, string, target) cell {
			return cell{http.MethodPost, "/v1/admin/root/retire", map[string]any{"before_version": 1}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(403), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(403), callerRoot: same(400)},
	},
	"POST /v1/admin/tenants/:tenant/shred": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/admin/tenants/" + pick(tg, tenant, otherOf(tenant), "nosuch") + "/shred", nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(403), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(403), callerRoot: {200, 200, 404}},
	},

	"GET /v1/audit/export": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/audit/export?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"), nil}
		},
		// A tenant that never did anything has no log to export.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: {200, 200, 404}},
	},
	"GET /v1/audit/processing": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/audit/processing?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"), nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: same(200)},
	},
	"POST /v1/audit/pseudonym": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/audit/pseudonym?tenant=" + pick(tg, tenant, otherOf(tenant), "nosuch"), map[string]any{"subject": f.owner[tenant]}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 403, 403}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 403, 403}, callerRoot: same(200)},
	},
	"POST /v1/erasure-requests": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/erasure-requests", map[string]any{"subject": pick(tg, f.owner[tenant], f.owner[otherOf(tenant)], "nobody-at-all")}}
		},
		// A subject id is the caller's tenant's: the other tenant's owner
		// holds nothing here. The root token's tenant holds nothing.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {201, 201, 201}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {201, 201, 201}, callerRoot: same(201)},
	},
	"GET /v1/erasure-requests/:id": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodGet, "/v1/erasure-requests/" + pick(tg, f.erasure[tenant], f.erasure[otherOf(tenant)], uuid.NewString()), nil}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: same(404)},
	},
	"PUT /v1/holds": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPut, "/v1/holds", map[string]any{"subject": pick(tg, f.owner[tenant], f.held[otherOf(tenant)], "nobody-at-all"), "reason": "audit"}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},
	"POST /v1/subject-exports": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/subject-exports", map[string]any{"subject": pick(tg, f.owner[tenant], f.owner[otherOf(tenant)], "nobody-at-all")}}
		},
		// A subject id is the caller's tenant's: the other tenant's owner
		// is nobody here, and an export of nobody is an empty export.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},
	"POST /v1/rectifications": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPost, "/v1/rectifications", map[string]any{"subject": f.owner[tenant], "token": pick(tg, f.piiToken[tenant], f.piiToken[otherOf(tenant)], "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa"), "value": "fixed"}}
		},
		// Own: the token of one of the tenant's values (f.piiToken); the
		// other tenant's token names nothing here.
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {200, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {200, 404, 404}, callerRoot: same(404)},
	},
	"PUT /v1/restrictions": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			return cell{http.MethodPut, "/v1/restrictions", map[string]any{"subject": pick(tg, f.owner[tenant], f.owner[otherOf(tenant)], "nobody-at-all"), "reason": "contested"}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: same(200), callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: same(200), callerRoot: same(200)},
	},
	"DELETE /v1/restrictions": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			subject := pick(tg, "", f.owner[otherOf(tenant)], "nobody-at-all")
			if tg == own {
				subject = "restricted-" + f.fresh()
				placer := f.setup[tenant]
				if c == callerRoot {
					placer = f.a.root
				}
				f.a.doJSON(http.MethodPut, "/v1/restrictions", placer, map[string]any{"subject": subject, "reason": "r"}, http.StatusOK, nil)
			}
			return cell{http.MethodDelete, "/v1/restrictions", map[string]any{"subject": subject}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {204, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {204, 404, 404}, callerRoot: {204, 404, 404}},
	},
	"DELETE /v1/holds": {
		build: func(f *matrixFixture, c caller, tenant string, tg target) cell {
			subject := pick(tg, "", f.held[otherOf(tenant)], "nobody-at-all")
			if tg == own {
				subject = "held-" + f.fresh()
				placer := f.setup[tenant]
				if c == callerRoot {
					placer = f.a.root
				}
				f.a.doJSON(http.MethodPut, "/v1/holds", placer, map[string]any{"subject": subject, "reason": "r"}, http.StatusOK, nil)
			}
			return cell{http.MethodDelete, "/v1/holds", map[string]any{"subject": subject}}
		},
		want: map[caller][3]int{callerNone: same(401), callerJWTOther: {204, 404, 404}, callerJWTNarrow: same(403), callerNarrow: same(403), callerAdmin: {204, 404, 404}, callerRoot: {204, 404, 404}},
	},
}

// integrity is what a tenant holds, read by its setup token: its streams,
// a document, its tokens, its hold and an erasure request. A non-root
// caller of the other tenant must leave all of it as it was.
func (f *matrixFixture) integrity(t *testing.T, tenant string) string {
	t.Helper()
	tok := f.setup[tenant]
	var out []string
	for _, path := range []string{
		"/v1/streams/" + f.stream[tenant] + "/events",
		"/v1/streams/owned-" + tenant + "/events",
		"/v1/policies/" + f.doc[tenant],
		"/v1/erasure-requests/" + f.erasure[tenant],
		"/v1/tokens",
	} {
		rec := f.a.do(http.MethodGet, path, tok, nil)
		// The tenant's own callers may have erased its owner's stream.
		erased := rec.Code == http.StatusGone && strings.Contains(path, "/owned-")
		if rec.Code != http.StatusOK && !erased {
			t.Fatalf("tenant %s reads its own %s: %d %s", tenant, path, rec.Code, rec.Body)
		}
		// A problem body's request id is new on every request.
		out = append(out, requestIDField.ReplaceAllString(rec.Body.String(), ""))
	}
	// The hold is there: placing it again changes nothing.
	rec := f.a.do(http.MethodPut, "/v1/holds", tok, []byte(`{"subject":"`+f.held[tenant]+`","reason":"litigation"}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("tenant %s's hold: %d %s", tenant, rec.Code, rec.Body)
	}
	if !strings.Contains(out[0], secrets[tenant]) {
		t.Fatalf("tenant %s no longer reads its secret: %s", tenant, out[0])
	}
	return strings.Join(out, "\n")
}

func TestAccessMatrix(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		testAccessMatrix(t, func(t *testing.T) *jwtAPI {
			store, err := bolt.Open(filepath.Join(t.TempDir(), "eventvault.db"))
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			t.Cleanup(func() { store.Close() })
			return newJWTAPIOver(t, store, nil)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		testAccessMatrix(t, func(t *testing.T) *jwtAPI { return newJWTAPIOver(t, newPostgresStore(t), nil) })
	})
}

func testAccessMatrix(t *testing.T, server func(t *testing.T) *jwtAPI) {
	probe := server(t)
	readers := newMatrixFixture(t, probe)
	var routes []string
	for _, r := range probe.srv.router.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(routes)
	for key := range accessMatrix {
		if !slices.Contains(routes, key) {
			t.Errorf("the access matrix has a row for %s, which the router does not serve: remove it", key)
		}
	}
	for _, route := range routes {
		key := strings.Replace(route, "HEAD ", "GET ", 1)
		r, ok := accessMatrix[key]
		if !ok {
			t.Errorf("route %s has no row in the access matrix (api/matrix_test.go): add one saying what each caller gets", route)
			continue
		}
		method, _, _ := strings.Cut(route, " ")
		t.Run(route, func(t *testing.T) {
			// Reads change nothing, so they share one server; every
			// other route gets its own.
			f := readers
			if method != http.MethodGet && method != http.MethodHead {
				f = newMatrixFixture(t, server(t))
			}
			for _, c := range callers {
				tenant := tenantOf(c)
				var before string
				if c != callerRoot {
					before = f.integrity(t, otherOf(tenant))
				}
				for tg := own; tg <= missing; tg++ {
					req := r.build(f, c, tenant, tg)
					if method == http.MethodHead {
						req.method = http.MethodHead
					}
					var body []byte
					if req.body != nil {
						body, _ = json.Marshal(req.body)
					}
					rec := f.a.doOrStream(req.method, req.path, f.bearer[c], body)
					want := r.want[c][tg]
					if rec.Code != want {
						t.Errorf("%s, %s target: %s %s answered %d, want %d: %s", c, targetNames[tg], req.method, req.path, rec.Code, want, strings.TrimSpace(rec.Body.String()))
					}
					if c != callerRoot && strings.Contains(rec.Body.String(), secrets[otherOf(tenant)]) {
						t.Errorf("%s, %s target: the answer holds tenant %s's secret: %s", c, targetNames[tg], otherOf(tenant), rec.Body)
					}
				}
				// Zero cross-tenant effects: whatever this caller did, the
				// other tenant reads exactly what it read before.
				if c != callerRoot {
					if after := f.integrity(t, otherOf(tenant)); after != before {
						t.Errorf("%s changed tenant %s's data:\nbefore %s\nafter  %s", c, otherOf(tenant), before, after)
					}
				}
			}
		})
	}
}
