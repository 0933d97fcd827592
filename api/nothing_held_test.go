package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/crypto/dsse"
)

// TestErasureOfASubjectWithNothingHeldSaysSo: an erasure request for a
// subject id under which nothing is held (a typo of a real one) completes,
// but the answer and the signed certificate say plainly that nothing was
// held; a real erasure says "erased". Both stores.
func TestErasureOfASubjectWithNothingHeldSaysSo(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", tok, map[string]any{"subject": "customer-881", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		var pub signingKeyResponse
		a.doJSON(http.MethodGet, "/v1/keys/signing", "", nil, http.StatusOK, &pub)
		key, _ := base64.StdEncoding.DecodeString(pub.PublicKey)
		certOf := func(er erasureResponse) eventvault.ErasureCertificate {
			t.Helper()
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
			return cert
		}

		var typo erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "Customer-881"}, http.StatusCreated, &typo)
		if typo.State != "completed" || typo.Outcome != "nothing_held" || typo.HeldNothing == nil || !*typo.HeldNothing {
			t.Fatalf("erasure of a subject with nothing held: %+v", typo)
		}
		cert := certOf(typo)
		if !cert.HeldNothing || cert.StreamCount != 0 || !strings.Contains(cert.Statement, "No data was held") || !strings.Contains(cert.Statement, "misspelt") {
			t.Fatalf("certificate of nothing held: %+v", cert)
		}
		var got erasureResponse
		a.doJSON(http.MethodGet, "/v1/erasure-requests/"+typo.ID, tok, nil, http.StatusOK, &got)
		if got.Outcome != "nothing_held" || got.HeldNothing == nil || !*got.HeldNothing {
			t.Fatalf("GET of the request: %+v", got)
		}
		// The real subject's data was not touched.
		a.doJSON(http.MethodGet, "/v1/streams/order-1/events", tok, nil, http.StatusOK, nil)

		var real erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "customer-881"}, http.StatusCreated, &real)
		if real.Outcome != "erased" || real.HeldNothing == nil || *real.HeldNothing {
			t.Fatalf("a real erasure: %+v", real)
		}
		if cert := certOf(real); cert.HeldNothing || cert.StreamCount != 1 || !strings.Contains(cert.Statement, "crypto-shredded") {
			t.Fatalf("certificate of a real erasure: %+v", cert)
		}

		// A subject with nothing held that later gets data: a new request
		// erases it, and says so.
		var first, later erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "late-1"}, http.StatusCreated, &first)
		a.doJSON(http.MethodPost, "/v1/streams/order-9/events", tok, map[string]any{"subject": "late-1", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": "late-1"}, http.StatusCreated, &later)
		if first.Outcome != "nothing_held" || later.Outcome != "erased" || later.ID == first.ID {
			t.Fatalf("nothing held, then data: %+v then %+v", first, later)
		}
	})
}

// TestANothingHeldErasureFencesNothing tries the id of a subject never
// seen (never-seen-999): its request is nothing_held, then an append
// marking a value of that subject is 201 (it was once 409: the request
// had fenced the id), a new request erases it (outcome erased, the subject
// key in the certificate), and only then is marking a value of it 409,
// with advice that never says to send the value unmarked. Both stores.
func TestANothingHeldErasureFencesNothing(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.eraser("acme")
		const subject = "never-seen-999"
		marked := func() map[string]any {
			return map[string]any{"events": []any{map[string]any{"id": uuid.NewString(), "type": "OrderPlaced", "data": map[string]any{"e": "eve@example.com"},
				"pii": map[string]any{"/e": map[string]any{"subject": subject, "class": "email"}}}}}
		}
		var first erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": subject}, http.StatusCreated, &first)
		if first.Outcome != eventvault.OutcomeNothingHeld {
			t.Fatalf("first request: %+v", first)
		}
		a.doJSON(http.MethodPost, "/v1/streams/order-101/events", tok, marked(), http.StatusCreated, nil)

		var second erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", tok, map[string]any{"subject": subject}, http.StatusCreated, &second)
		if second.Outcome != eventvault.OutcomeErased || second.ID == first.ID {
			t.Fatalf("a request after values were marked: %+v (the first was %s)", second, first.ID)
		}
		cert := certificatePayload(t, second.Certificate)
		if len(cert.DestroyedKeys) != 1 || cert.DestroyedKeys[0].Kind != "subject" {
			t.Fatalf("the certificate destroyed %+v; want the subject key", cert.DestroyedKeys)
		}
		p := wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-102/events", tok, []byte(mustJSON(marked()))), http.StatusConflict, eventvault.ECONFLICT, "erased", "new subject id")
		if strings.Contains(p.Detail, "or unmarked") || strings.Contains(p.Detail, "leave the value unmarked") {
			t.Errorf("the 409 advises storing the value unmarked: %s", p.Detail)
		}
	})
}

// TestASubjectExportSaysWhetherTheSubjectWasErased: the export's erased
// is true once an erasure request erased the subject, whether it
// destroyed a subject key or (a subject owning streams but no marked
// value) only shredded their streams, and false for a request that held
// nothing, or once data was appended for the subject after the erasure
// (a new stream may name them: only marked values are fenced), with or
// without a subject key destroyed. The latest request carries its
// outcome. Both stores.
func TestASubjectExportSaysWhetherTheSubjectWasErased(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		admin := a.capToken("acme", eventvault.CapAdmin)
		type export struct {
			Erased   bool `json:"erased"`
			Requests []struct {
				State   string `json:"state"`
				Outcome string `json:"outcome"`
			} `json:"erasure_requests"`
		}
		check := func(subject string, erased bool, outcome string) {
			t.Helper()
			var x export
			a.doJSON(http.MethodPost, "/v1/subject-exports", admin, map[string]any{"subject": subject}, http.StatusOK, &x)
			if x.Erased != erased || len(x.Requests) != 1 || x.Requests[0].State != "completed" || x.Requests[0].Outcome != outcome {
				t.Fatalf("export of %s: %+v; want erased %v and a completed request with outcome %q", subject, x, erased, outcome)
			}
		}
		erase := func(subject, outcome string) {
			t.Helper()
			var er erasureResponse
			a.doJSON(http.MethodPost, "/v1/erasure-requests", admin, map[string]any{"subject": subject}, http.StatusCreated, &er)
			if er.Outcome != outcome {
				t.Fatalf("erasure of %s: %+v; want outcome %q", subject, er, outcome)
			}
		}
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", admin, map[string]any{"subject": "cust-9", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		erase("Cust-9", "nothing_held")
		check("Cust-9", false, "nothing_held")
		erase("cust-9", "erased")
		check("cust-9", true, "erased")

		// Data appended after the erasure: the request still says erased,
		// the subject no longer is.
		a.doJSON(http.MethodPost, "/v1/streams/order-2/events", admin, map[string]any{"subject": "cust-9", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		check("cust-9", false, "erased")

		// The same for a subject whose key an erasure destroyed: a new
		// stream may still name them (only marked values are fenced).
		a.doJSON(http.MethodPost, "/v1/streams/order-3/events", admin, piiAppend("order-3", map[string]any{"e": "eve@example.com"},
			map[string]any{"/e": map[string]any{"subject": "cust-77", "class": "email"}}), http.StatusCreated, nil)
		erase("cust-77", "erased")
		check("cust-77", true, "erased")
		a.doJSON(http.MethodPost, "/v1/streams/order-4/events", admin, map[string]any{"subject": "cust-77", "events": []any{event("A", 1)}}, http.StatusCreated, nil)
		check("cust-77", false, "erased")
	})
}

// TestAResumedErasureCertifiesTheSubjectKeyItsFirstRunDestroyed: an
// erasure request whose first run destroyed the subject's key but did
// not complete (the node stopped before the certificate was stored)
// stays received; asked again, it resumes, and its certificate lists that
// key and says erased, as the audit log's subject_key_destroyed of the
// first run does; never nothing_held. The first run is played by the
// store's own erasure of the subject. Both stores.
func TestAResumedErasureCertifiesTheSubjectKeyItsFirstRunDestroyed(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		admin := a.capToken("acme", eventvault.CapAdmin)
		const subject = "cust-r"
		a.doJSON(http.MethodPost, "/v1/streams/order-1/events", admin, piiAppend("order-1", map[string]any{"e": "eve@example.com"},
			map[string]any{"/e": map[string]any{"subject": subject, "class": "email"}}), http.StatusCreated, nil)
		var x struct {
			PS string `json:"subject_pseudonym"`
		}
		a.doJSON(http.MethodPost, "/v1/subject-exports", admin, map[string]any{"subject": subject}, http.StatusOK, &x)
		ps := eventvault.Pseudonym(x.PS)
		ctx := t.Context()
		key, err := a.store.SubjectKey(ctx, "acme", ps)
		if err != nil {
			t.Fatal(err)
		}
		req := eventvault.ErasureRequest{ID: uuid.New(), Tenant: "acme", Subject: ps, State: eventvault.ErasureReceived, RequestedBy: "tok_first", ReceivedAt: time.Now()}
		if err := a.store.CreateErasureRequest(ctx, req); err != nil {
			t.Fatal(err)
		}
		if se, err := a.store.EraseSubjectPII(ctx, "acme", ps, time.Now()); err != nil || se.KeyID != key.ID || se.Before {
			t.Fatalf("the first run's erasure: %+v, %v", se, err)
		}

		var er erasureResponse
		a.doJSON(http.MethodPost, "/v1/erasure-requests", admin, map[string]any{"subject": subject}, http.StatusOK, &er)
		if er.ID != req.ID.String() || er.State != "completed" || er.Outcome != "erased" || er.HeldNothing == nil || *er.HeldNothing {
			t.Fatalf("the resumed request: %+v; want request %s completed, erased", er, req.ID)
		}
		cert := certificatePayload(t, er.Certificate)
		if len(cert.DestroyedKeys) != 1 || cert.DestroyedKeys[0] != (eventvault.DestroyedKey{Kind: "subject", KeyID: key.ID}) || cert.HeldNothing {
			t.Fatalf("the resumed request's certificate: %+v; want the subject key %s", cert, key.ID)
		}
	})
}

// certificatePayload returns the erasure certificate in a DSSE envelope,
// without checking its signature (TestErasureOfASubjectWithNothingHeldSaysSo
// checks one).
func certificatePayload(t *testing.T, envelope json.RawMessage) eventvault.ErasureCertificate {
	t.Helper()
	env, err := dsse.Parse(envelope)
	if err != nil {
		t.Fatal(err)
	}
	var cert eventvault.ErasureCertificate
	if err := json.Unmarshal(env.Payload, &cert); err != nil {
		t.Fatal(err)
	}
	return cert
}
