package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
)

// eraser issues a token with append, read and erase on every stream.
func (a *testAPI) eraser(tenant string) string {
	a.t.Helper()
	var out tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": tenant, "name": "dpo",
		"rules": []any{map[string]any{"capabilities": []string{"append", "read", "erase"}, "streams": "*"}},
	}, http.StatusCreated, &out)
	return out.Token
}

type allOut struct {
	Events []struct {
		Stream         string          `json:"stream"`
		GlobalPosition int64           `json:"global_position"`
		Data           json.RawMessage `json:"data"`
		Erased         bool            `json:"erased"`
	} `json:"events"`
}

func TestShredStream(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"events": []any{event("A", 1), event("B", 2)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-2/events", tok, map[string]any{"events": []any{event("C", 3)}}, http.StatusCreated, nil)

	var sh shredResponse
	a.doJSON(http.MethodDelete, "/v1/streams/order-1", tok, nil, http.StatusOK, &sh)
	if !sh.Erased || sh.KeyID == "" || sh.ShreddedAt.IsZero() {
		t.Fatalf("shred response %+v", sh)
	}
	p := wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", tok, nil), http.StatusGone, "erased", "order-1", "erased at")
	_ = p
	// Read-all keeps the shredded events' envelopes, so global order holds.
	var all allOut
	a.doJSON(http.MethodGet, "/v1/events", tok, nil, http.StatusOK, &all)
	// ... followed by the shred's tombstone (issue 14).
	if len(all.Events) != 4 || all.Events[3].Stream != string(eventvault.TombstoneStream) || !strings.Contains(string(all.Events[3].Data), `"streams":["order-1"]`) {
		t.Fatalf("read-all has %d events (%+v), want 3 envelopes and the shred's tombstone", len(all.Events), all.Events)
	}
	all.Events = all.Events[:3]
	for i, e := range all.Events {
		if e.GlobalPosition != int64(i) {
			t.Fatalf("global positions %+v, want 0,1,2", all.Events)
		}
		if e.Stream == "order-1" && (!e.Erased || len(e.Data) != 0) {
			t.Fatalf("shredded event %+v: want erased without data", e)
		}
		if e.Stream == "order-2" && (e.Erased || string(e.Data) != "3") {
			t.Fatalf("untouched event %+v", e)
		}
	}
	// The erasure fence: no new events under a fresh key.
	b, _ := json.Marshal(map[string]any{"events": []any{event("D", 4)}})
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", tok, b), http.StatusConflict, "conflict", "erased")
	// Idempotent: the same key id again.
	var again shredResponse
	a.doJSON(http.MethodDelete, "/v1/streams/order-1", tok, nil, http.StatusOK, &again)
	if again.KeyID != sh.KeyID || !again.ShreddedAt.Equal(sh.ShreddedAt) {
		t.Fatalf("second shred %+v, want the first %+v", again, sh)
	}
	// Purge removes the rows too; the stream still reads as erased.
	a.doJSON(http.MethodDelete, "/v1/streams/order-1?purge=true", tok, nil, http.StatusOK, &again)
	if !again.Purged {
		t.Fatalf("purge: %+v", again)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-1/events", tok, nil), http.StatusGone, "erased")
	var purged allOut
	a.doJSON(http.MethodGet, "/v1/events", tok, nil, http.StatusOK, &purged)
	if len(purged.Events) != 2 || purged.Events[0].Stream != "order-2" || purged.Events[1].Stream != string(eventvault.TombstoneStream) {
		t.Fatalf("after purge read-all %+v, want order-2 and the one tombstone of order-1 (shredding again replays it)", purged.Events)
	}

	cases := []struct {
		name, method, path, token string
		status                    int
		code                      eventvault.Code
	}{
		{"unknown stream", "DELETE", "/v1/streams/order-404", tok, 404, "not_found"},
		{"bad purge", "DELETE", "/v1/streams/order-2?purge=maybe", tok, 400, "invalid"},
		{"bad name", "DELETE", "/v1/streams/order", tok, 400, "invalid"},
		{"no erase capability", "DELETE", "/v1/streams/order-2", a.tokenFor("acme"), 403, "forbidden"},
		{"another tenant", "DELETE", "/v1/streams/order-2", a.eraser("globex"), 404, "not_found"},
		{"tenant shred needs root", "POST", "/v1/admin/tenants/acme/shred", tok, 403, "forbidden"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, a.do(c.method, c.path, c.token, nil), c.status, c.code)
		})
	}
	a.doJSON(http.MethodGet, "/v1/streams/order-2/events", tok, nil, http.StatusOK, nil)
}

func TestErasureRequestShredsTheSubjectsStreamsAndCertifiesIt(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	const subject = "customer-881@example.com"
	for _, s := range []string{"order-1", "cart-1"} {
		a.doJSON(http.MethodPost, "/v1/streams/"+s+"/events", tok, map[string]any{"subject": subject, "events": []any{event("A", 1)}}, http.StatusCreated, nil)
	}
	a.doJSON(http.MethodPost, "/v1/streams/order-2/events", tok, map[string]any{"subject": "someone-else", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
	// A stream belongs to one subject.
	b, _ := json.Marshal(map[string]any{"subject": "someone-else", "events": []any{event("A", 1)}})
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", tok, b), http.StatusConflict, "conflict")

	rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"`+subject+`"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("erasure request: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "customer-881") {
		t.Fatalf("the response echoes the subject id: %s", rec.Body)
	}
	var er erasureResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil {
		t.Fatal(err)
	}
	if er.State != "completed" || er.CompletedAt == nil || len(er.Certificate) == 0 || rec.Header().Get("Location") != "/v1/erasure-requests/"+er.ID {
		t.Fatalf("erasure response %+v", er)
	}
	for _, s := range []string{"order-1", "cart-1"} {
		wantProblem(t, a.do(http.MethodGet, "/v1/streams/"+s+"/events", tok, nil), http.StatusGone, "erased")
	}
	a.doJSON(http.MethodGet, "/v1/streams/order-2/events", tok, nil, http.StatusOK, nil)

	// The certificate verifies against the published key and says what was
	// destroyed, without personal data.
	var pub signingKeyResponse
	a.doJSON(http.MethodGet, "/v1/keys/signing", "", nil, http.StatusOK, &pub)
	key, _ := base64.StdEncoding.DecodeString(pub.PublicKey)
	env, err := dsse.Parse(er.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := dsse.Verify(key, eventvault.ErasureCertificateType, env)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	var cert eventvault.ErasureCertificate
	if err := json.Unmarshal(payload, &cert); err != nil {
		t.Fatal(err)
	}
	if cert.RequestID != er.ID || cert.StreamCount != 2 || len(cert.DestroyedKeys) != 2 || string(cert.SubjectPseudonym) != er.SubjectPseudonym || cert.Issuer != pub.KeyID {
		t.Fatalf("certificate %+v for request %+v", cert, er)
	}
	if strings.Contains(string(payload), "customer-881") {
		t.Fatalf("the certificate holds the subject id: %s", payload)
	}

	// Asking again returns the completed request; so does GET.
	var again, got erasureResponse
	a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": subject}, http.StatusOK, &again)
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &got)
	if again.ID != er.ID || got.ID != er.ID || got.State != "completed" || string(got.Certificate) != string(er.Certificate) {
		t.Fatalf("repeat %+v / get %+v, want the completed request %s", again, got, er.ID)
	}

	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            eventvault.Code
	}{
		{"unknown request", "GET", "/v1/erasure-requests/3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55", tok, "", 404, "not_found"},
		{"malformed request id", "GET", "/v1/erasure-requests/42", tok, "", 404, "not_found"},
		{"another tenant's request", "GET", "/v1/erasure-requests/" + er.ID, a.eraser("globex"), "", 404, "not_found"},
		{"empty subject", "POST", "/v1/erasure-requests", tok, `{"subject":""}`, 400, "invalid"},
		{"unknown field", "POST", "/v1/erasure-requests", tok, `{"subjcet":"x"}`, 400, "invalid"},
		{"no erase capability", "POST", "/v1/erasure-requests", a.tokenFor("acme"), `{"subject":"x"}`, 403, "forbidden"},
		{"no token", "POST", "/v1/erasure-requests", "", `{"subject":"x"}`, 401, "unauthorized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			wantProblem(t, a.do(c.method, c.path, c.token, body), c.status, c.code)
		})
	}
}

func TestLegalHoldRejectsErasureUntilLifted(t *testing.T) {
	a := newTestAPI(t)
	tok := a.eraser("acme")
	a.doJSON(http.MethodPost, "/v1/streams/loan-7/events", tok, map[string]any{"subject": "customer-7", "events": []any{event("LoanGranted", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPut, "/v1/holds", tok, map[string]any{"subject": "customer-7", "reason": "open litigation 2026-114"}, http.StatusOK, nil)

	// Rejected under the hold: 409, a problem naming the kept request.
	rec := a.do(http.MethodPost, "/v1/erasure-requests", tok, []byte(`{"subject":"customer-7"}`))
	wantProblem(t, rec, http.StatusConflict, "conflict", "legal hold", "open litigation 2026-114")
	var p struct {
		RequestID string `json:"request_id"`
		State     string `json:"state"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.State != "rejected" || p.RequestID == "" {
		t.Fatalf("rejected problem %s", rec.Body)
	}
	var rejected erasureResponse
	a.doJSON(http.MethodGet, "/v1/erasure-requests/"+p.RequestID, tok, nil, http.StatusOK, &rejected)
	if rejected.State != "rejected" || !strings.Contains(rejected.Reason, "open litigation 2026-114") || len(rejected.Certificate) != 0 {
		t.Fatalf("under hold: %+v", rejected)
	}
	a.doJSON(http.MethodGet, "/v1/streams/loan-7/events", tok, nil, http.StatusOK, nil)

	rec = a.do(http.MethodDelete, "/v1/holds", tok, []byte(`{"subject":"customer-7"}`))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("lift hold: %d %s", rec.Code, rec.Body)
	}
	var done erasureResponse
	a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "customer-7"}, http.StatusCreated, &done)
	if done.State != "completed" || done.ID == rejected.ID {
		t.Fatalf("after lifting the hold: %+v", done)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/loan-7/events", tok, nil), http.StatusGone, "erased")
	wantProblem(t, a.do(http.MethodDelete, "/v1/holds", tok, []byte(`{"subject":"customer-7"}`)), http.StatusNotFound, "not_found")
	b := []byte(`{"subject":"customer-7","reason":""}`)
	rec = a.do(http.MethodPut, "/v1/holds", tok, b)
	wantProblem(t, rec, http.StatusBadRequest, "invalid", "reason")
	if strings.Contains(rec.Body.String(), "customer-7") {
		t.Fatalf("the problem body echoes the subject id: %s", rec.Body)
	}
}

// TestTenantShredMakesEverythingUnreadable shreds a tenant: every token of
// it stops working on every endpoint, and a token issued to it afterwards
// reads nothing and writes nothing; the other tenant is untouched.
func TestTenantShredMakesEverythingUnreadable(t *testing.T) {
	onBothStores(t, testTenantShredMakesEverythingUnreadable)
}

// onBothStores runs test against the whole server over the embedded store
// and over PostgreSQL.
func onBothStores(t *testing.T, test func(t *testing.T, a *testAPI)) {
	t.Run("bolt", func(t *testing.T) { test(t, newTestAPI(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, newPostgresAPI(t)) })
}

func testTenantShredMakesEverythingUnreadable(t *testing.T, a *testAPI) {
	acme, acmeApp, globex := a.eraser("acme"), a.tokenFor("acme"), a.eraser("globex")
	var admin tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": "acme", "name": "acme-admin", "rules": []any{map[string]any{"capabilities": []string{"admin"}, "streams": "*"}},
	}, http.StatusCreated, &admin)
	for _, tok := range []string{acme, globex} {
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"subject": "customer-1", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
	}
	var er erasureResponse
	a.doJSON(http.MethodPost, "/v1/erasure-requests", acme, map[string]any{"subject": "customer-2"}, http.StatusCreated, &er)

	var sh tenantShredResponse
	a.doJSON(http.MethodPost, "/v1/admin/tenants/acme/shred", a.root, nil, http.StatusOK, &sh)
	if !sh.Erased || len(sh.KeyIDs) == 0 {
		t.Fatalf("tenant shred %+v", sh)
	}

	// Every endpoint refuses every token of the shredded tenant.
	endpoints := []struct{ method, path, body string }{
		{"POST", "/v1/streams/order-2/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1}]}`},
		{"GET", "/v1/streams/order-1/events", ""},
		{"GET", "/v1/events", ""},
		{"POST", "/v1/tokens", `{"tenant":"acme","name":"escape"}`},
		{"DELETE", "/v1/streams/order-1", ""},
		{"POST", "/v1/erasure-requests", `{"subject":"customer-1"}`},
		{"GET", "/v1/erasure-requests/" + er.ID, ""},
		{"PUT", "/v1/holds", `{"subject":"customer-1","reason":"keep it"}`},
		{"DELETE", "/v1/holds", `{"subject":"customer-1"}`},
		{"POST", "/v1/admin/tenants/acme/shred", ""},
	}
	for _, tok := range []struct{ name, secret string }{{"eraser", acme}, {"app", acmeApp}, {"admin", admin.Token}} {
		for _, e := range endpoints {
			t.Run(tok.name+" "+e.method+" "+e.path, func(t *testing.T) {
				var body []byte
				if e.body != "" {
					body = []byte(e.body)
				}
				wantProblem(t, a.do(e.method, e.path, tok.secret, body), http.StatusUnauthorized, "unauthorized")
			})
		}
	}
	// The root cannot issue the tenant a token afterwards (reads and
	// appends of a principal that still authenticates, by JWT:
	// TestAShreddedTenantTakesNothingNew).
	wantProblem(t, a.do(http.MethodPost, "/v1/tokens", a.root, []byte(`{"tenant":"acme","name":"fresh"}`)), http.StatusGone, "erased", "tenant acme was shredded")
	// The other tenant's token still works, and the root token too.
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", globex, nil, http.StatusOK, nil)
	a.doJSON(http.MethodPut, "/v1/holds", globex, map[string]any{"subject": "customer-1", "reason": "audit"}, http.StatusOK, nil)
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "globex", "name": "more"}, http.StatusCreated, nil)
	// Shredding again (as a retry would) is still fine.
	a.doJSON(http.MethodPost, "/v1/admin/tenants/acme/shred", a.root, nil, http.StatusOK, nil)
}

// TestShredStreamHonoursALegalHold: a direct shred of a stream whose owner
// is under a legal hold is refused, even for a token with erase on the
// stream only, and works once the hold is lifted.
func TestShredStreamHonoursALegalHold(t *testing.T) {
	onBothStores(t, testShredStreamHonoursALegalHold)
}

func testShredStreamHonoursALegalHold(t *testing.T, a *testAPI) {
	tok := a.eraser("acme")
	// A token that may erase order-* streams only, and nothing else.
	var narrow tokenResponse
	a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{
		"tenant": "acme", "name": "order-eraser", "rules": []any{map[string]any{"capabilities": []string{"erase"}, "streams": "order-*"}},
	}, http.StatusCreated, &narrow)
	const subject = "customer-7@example.com"
	a.doJSON(http.MethodPost, "/v1/streams/order-7/events", tok, map[string]any{"subject": subject, "events": []any{event("OrderPlaced", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-8/events", tok, map[string]any{"subject": "someone-else", "events": []any{event("OrderPlaced", 2)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPut, "/v1/holds", tok, map[string]any{"subject": subject, "reason": "open litigation 2026-114"}, http.StatusOK, nil)

	for _, c := range []struct{ name, token, path string }{
		{"eraser", tok, "/v1/streams/order-7"},
		{"eraser, purge", tok, "/v1/streams/order-7?purge=true"},
		{"erase on order-* only", narrow.Token, "/v1/streams/order-7"},
		{"erase on order-* only, purge", narrow.Token, "/v1/streams/order-7?purge=true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := a.do(http.MethodDelete, c.path, c.token, nil)
			wantProblem(t, rec, http.StatusConflict, "conflict", "legal hold", "refused", "open litigation 2026-114", "DELETE /v1/holds")
			if strings.Contains(rec.Body.String(), "customer-7") || strings.Contains(rec.Body.String(), "/v1/subjects") {
				t.Fatalf("the problem body names the subject: %s", rec.Body)
			}
			var s streamOut
			a.doJSON(http.MethodGet, "/v1/streams/order-7/events", tok, nil, http.StatusOK, &s)
			if len(s.Events) != 1 {
				t.Fatalf("the held stream has %d events after the refused shred, want 1", len(s.Events))
			}
		})
	}
	// Each refusal is in the audit log: a shred of stream order-7, denied
	// for the legal hold, holding neither the subject nor the reason.
	denied := 0
	for _, r := range a.exportAndVerify(t, "acme") {
		if r.Action == "shred" && r.Resource == "stream:order-7" {
			if r.Outcome != "denied" || r.Detail["reason"] != "legal_hold" {
				t.Fatalf("a refused shred is recorded as %+v; want outcome denied, reason legal_hold", r)
			}
			if strings.Contains(fmt.Sprint(r.Detail), "litigation") {
				t.Fatalf("the record holds the hold's reason text: %+v", r)
			}
			denied++
		}
	}
	if denied != 4 {
		t.Fatalf("%d records of refused shreds of order-7; want 4, one per refusal", denied)
	}
	// A stream of another subject, and one without an owner, still shred.
	a.doJSON(http.MethodDelete, "/v1/streams/order-8", narrow.Token, nil, http.StatusOK, nil)
	a.doJSON(http.MethodPost, "/v1/streams/order-9/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
	a.doJSON(http.MethodDelete, "/v1/streams/order-9", tok, nil, http.StatusOK, nil)

	rec := a.do(http.MethodDelete, "/v1/holds", tok, []byte(`{"subject":"`+subject+`"}`))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("lift hold: %d %s", rec.Code, rec.Body)
	}
	var sh shredResponse
	a.doJSON(http.MethodDelete, "/v1/streams/order-7", narrow.Token, nil, http.StatusOK, &sh)
	if !sh.Erased {
		t.Fatalf("shred after lifting the hold: %+v", sh)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-7/events", tok, nil), http.StatusGone, "erased")
}

// TestTimesAgreeOnEveryView: the times erasure stamps are cut to
// microseconds where they are made, so the 201, the 200 of a repeat, a GET
// and the signed certificate give the very same instants, on both stores
// (PostgreSQL keeps microseconds).
func TestTimesAgreeOnEveryView(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"subject": "customer-1", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		type times struct {
			ReceivedAt  string          `json:"received_at"`
			CompletedAt string          `json:"completed_at"`
			Certificate json.RawMessage `json:"certificate"`
		}
		var created, repeat, got times
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusCreated, &created)
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusOK, &repeat)
		var er erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "customer-1"}, http.StatusOK, &er)
		a.doJSON(http.MethodGet, "/v1/erasure-requests/"+er.ID, tok, nil, http.StatusOK, &got)
		env, err := dsse.Parse(created.Certificate)
		if err != nil {
			t.Fatal(err)
		}
		var cert struct {
			ReceivedAt string `json:"received_at"`
			ErasedAt   string `json:"erased_at"`
		}
		if err := json.Unmarshal(env.Payload, &cert); err != nil {
			t.Fatal(err)
		}
		for _, v := range []struct{ name, received string }{{"repeat", repeat.ReceivedAt}, {"GET", got.ReceivedAt}, {"certificate", cert.ReceivedAt}} {
			if v.received != created.ReceivedAt {
				t.Errorf("received_at: 201 %s, %s %s", created.ReceivedAt, v.name, v.received)
			}
		}
		if repeat.CompletedAt != created.CompletedAt || got.CompletedAt != created.CompletedAt {
			t.Errorf("completed_at: 201 %s, repeat %s, GET %s", created.CompletedAt, repeat.CompletedAt, got.CompletedAt)
		}
		for _, s := range []string{created.ReceivedAt, created.CompletedAt, cert.ErasedAt} {
			if _, frac, ok := strings.Cut(strings.TrimSuffix(s, "Z"), "."); ok && len(frac) > 6 {
				t.Errorf("time %s is finer than microseconds", s)
			}
		}

		// A token's and a policy's times too: the 201 and a later GET
		// give the same microseconds (they were nanoseconds on the
		// embedded store, and in every 201). It tries a token with a ttl
		// of "1h0.0000005s" (a sub-microsecond ttl) and a policy.
		var rawIssued struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
			ExpiresAt string `json:"expires_at"`
		}
		a.doJSON(http.MethodPost, "/v1/tokens", a.root, map[string]any{"tenant": "acme", "name": "timed", "ttl": "1h0.0000005s"}, http.StatusCreated, &rawIssued)
		rec := a.do(http.MethodGet, "/v1/tokens?tenant=acme", a.root, nil)
		var listed struct {
			Tokens []struct {
				ID        string `json:"id"`
				CreatedAt string `json:"created_at"`
				ExpiresAt string `json:"expires_at"`
			} `json:"tokens"`
		}
		json.Unmarshal(rec.Body.Bytes(), &listed)
		found := false
		for _, l := range listed.Tokens {
			if l.ID == rawIssued.ID {
				found = true
				if l.CreatedAt != rawIssued.CreatedAt || l.ExpiresAt != rawIssued.ExpiresAt {
					t.Errorf("token times: 201 %s/%s, GET %s/%s", rawIssued.CreatedAt, rawIssued.ExpiresAt, l.CreatedAt, l.ExpiresAt)
				}
			}
		}
		if !found {
			t.Fatalf("the token is not listed: %s", rec.Body)
		}
		var put, read struct {
			CreatedAt string `json:"created_at"`
		}
		a.doJSON(http.MethodPut, "/v1/policies/timed?tenant=acme", a.root, map[string]any{"policy": "permit (principal, action, resource);"}, http.StatusCreated, &put)
		a.doJSON(http.MethodGet, "/v1/policies/timed?tenant=acme", a.root, nil, http.StatusOK, &read)
		if put.CreatedAt != read.CreatedAt {
			t.Errorf("policy created_at: 201 %s, GET %s", put.CreatedAt, read.CreatedAt)
		}
		for _, s := range []string{rawIssued.CreatedAt, rawIssued.ExpiresAt, put.CreatedAt} {
			if _, frac, ok := strings.Cut(strings.TrimSuffix(s, "Z"), "."); ok && len(frac) > 6 {
				t.Errorf("time %s is finer than microseconds", s)
			}
		}

		// A shred's time: the 200 and the 410 of a later read agree.
		a.doJSON(http.MethodPost, "/v1/streams/order-2/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
		var sh struct {
			ShreddedAt string `json:"shredded_at"`
		}
		a.doJSON(http.MethodDelete, "/v1/streams/order-2", tok, nil, http.StatusOK, &sh)
		var gone struct {
			ErasedAt string `json:"erased_at"`
		}
		rec = a.do(http.MethodGet, "/v1/streams/order-2/events", tok, nil)
		json.Unmarshal(rec.Body.Bytes(), &gone)
		if _, frac, ok := strings.Cut(strings.TrimSuffix(sh.ShreddedAt, "Z"), "."); ok && len(frac) > 6 {
			t.Errorf("shredded_at %s is finer than microseconds", sh.ShreddedAt)
		}
		if gone.ErasedAt == "" {
			t.Fatalf("410 without erased_at: %s", rec.Body)
		}
		if sh.ShreddedAt != gone.ErasedAt {
			t.Errorf("shredded_at %s, a later read's erased_at %s", sh.ShreddedAt, gone.ErasedAt)
		}
	})
}
