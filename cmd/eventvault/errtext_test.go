package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestDescribeSaysARefusalOnce: an error about the request prints its
// message once, after the context wrapped around it, whatever its chain
// repeats (the shape of a token created for a shredded tenant on
// PostgreSQL); an internal or unavailable error prints whole.
func TestDescribeSaysARefusalOnce(t *testing.T) {
	db := errors.New("postgres: tenant initech was shredded: it never gets a key again (SQLSTATE EV410)")
	inner := &eventvault.Error{Code: eventvault.EERASED, Op: "postgres.CreateToken", Message: "tenant initech was shredded: it never gets a key again", Err: fmt.Errorf("%w: %w", eventvault.ErrTenantShredded, db)}
	outer := &eventvault.Error{Code: eventvault.EERASED, Op: "postgres.CreateToken", Message: "tenant initech was shredded: its keys are destroyed, and it never gets a key again", Err: inner}
	err := fmt.Errorf("store token tok_0123456789abcdef: %w", outer)
	got := describe(err)
	if want := "store token tok_0123456789abcdef: tenant initech was shredded: its keys are destroyed, and it never gets a key again"; got != want {
		t.Fatalf("describe = %q, want %q", got, want)
	}
	if n := strings.Count(got, "was shredded"); n != 1 {
		t.Fatalf("describe says it %d times: %q", n, got)
	}
	for _, code := range []eventvault.Code{eventvault.EINTERNAL, eventvault.EUNAVAILABLE} {
		e := fmt.Errorf("rotate: %w", &eventvault.Error{Code: code, Op: "vault.Transit.WrapKey", Message: "the root key is unavailable", Err: errors.New("Vault at http://127.0.0.1:8200 is sealed")})
		if got := describe(e); got != e.Error() || !strings.Contains(got, "is sealed") {
			t.Fatalf("%s: describe = %q; want the whole chain, the cause included", code, got)
		}
	}
	if plain := errors.New("read -rules: no such file"); describe(plain) != plain.Error() {
		t.Fatalf("a plain error changed: %q", describe(plain))
	}
}
