package jwtauth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/auth/jwtauth"
	"github.com/eventvault/eventvault/auth/jwtauth/jwttest"
)

// FuzzAuthenticate: whatever the bearer value, Authenticate neither panics
// nor accepts anything but the one valid token, and every refusal is
// EUNAUTHORIZED (the keys come from a file: no JWKS to be down).
func FuzzAuthenticate(f *testing.F) {
	idp := jwttest.New(f)
	path := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(path, fetchJWKS(f, idp), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := jwtauth.New(context.Background(), jwtauth.Config{Issuer: jwttest.Issuer, Audiences: []string{jwttest.Audience}, KeysFile: path}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	valid := idp.Sign(f, jwttest.KidEC, jwttest.Claims("u", "tenant", "acme", "groups", "app"))
	for _, seed := range []string{valid, valid[:len(valid)-2], valid + "A", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "", ".", "evt_x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Authenticate(context.Background(), raw)
		if err == nil {
			if raw != valid || p.Tenant != "acme" {
				t.Fatalf("accepted %q as %+v", raw, p)
			}
			return
		}
		if code := eventvault.ErrorCode(err); code != eventvault.EUNAUTHORIZED {
			t.Fatalf("%q: code %s, want unauthorized: %v", raw, code, err)
		}
	})
}

func ExampleLooksLikeJWT() {
	fmt.Println(jwtauth.LooksLikeJWT("eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEifQ.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"))
	fmt.Println(jwtauth.LooksLikeJWT("evt_3q2-7Hn0aQ"))
	// Output:
	// true
	// false
}
