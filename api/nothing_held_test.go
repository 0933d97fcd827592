package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

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
