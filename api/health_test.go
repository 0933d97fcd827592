package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestReadyzSaysWhichCheckFailed: 200 with each check, or a 503 problem
// whose checks member names the failed ones, with the first failure's code;
// both are checked against the OpenAPI document.
func TestReadyzSaysWhichCheckFailed(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error {
		return &eventvault.Error{Code: eventvault.EUNAVAILABLE, Message: "the root key (Vault Transit) is unavailable; retry later"}
	}
	retired := func(context.Context) error {
		return &eventvault.Error{Code: eventvault.EKEYRETIRED, Message: "1 of 1 tenants have keys wrapped by retired root key versions"}
	}
	cases := []struct {
		name       string
		checks     []ReadyCheck
		status     int
		code       string
		failed     []string
		retryAfter bool
	}{
		{"all ok", []ReadyCheck{{"store", ok}, {"root_of_trust", ok}, {"keys", ok}}, 200, "", nil, false},
		{"root down", []ReadyCheck{{"store", ok}, {"root_of_trust", down}, {"keys", down}}, 503, "unavailable", []string{"root_of_trust", "keys"}, true},
		{"keys retired", []ReadyCheck{{"store", ok}, {"root_of_trust", ok}, {"keys", retired}}, 503, "key_retired", []string{"keys"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(Config{Checks: c.checks})
			req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			checkContract(t, req, nil, rec)
			var body struct {
				Code   string `json:"code"`
				Checks map[string]struct {
					Status string `json:"status"`
					Code   string `json:"code"`
				} `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != c.status || body.Code != c.code {
				t.Fatalf("%d %s (%v); want %d code %q", rec.Code, rec.Body, err, c.status, c.code)
			}
			if len(body.Checks) != len(c.checks) {
				t.Fatalf("checks %v; want all %d", body.Checks, len(c.checks))
			}
			for _, name := range c.failed {
				if body.Checks[name].Status != "failed" || body.Checks[name].Code == "" {
					t.Errorf("check %s: %+v; want failed with a code", name, body.Checks[name])
				}
			}
			if got := rec.Header().Get("Retry-After") != ""; got != c.retryAfter {
				t.Errorf("Retry-After present %v; want %v", got, c.retryAfter)
			}
		})
	}
}
