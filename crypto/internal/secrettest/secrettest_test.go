package secrettest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// TestLeakFindsEveryEncoding checks the checker: a secret printed in any
// of the ways a careless String or a struct dump would print it is found.
func TestLeakFindsEveryEncoding(t *testing.T) {
	secret := []byte("\x8a\x01\xfe\x10\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd")
	for name, out := range map[string]string{
		"raw":            "key=" + string(secret),
		"hex":            "key=" + hex.EncodeToString(secret),
		"HEX":            "key=" + strings.ToUpper(hex.EncodeToString(secret)),
		"decimal":        fmt.Sprintf("%v", struct{ Key []byte }{secret}),
		"Go syntax":      fmt.Sprintf("%#v", struct{ Key []byte }{secret}),
		"base64":         `{"key":"` + base64.StdEncoding.EncodeToString(secret) + `"}`,
		"base64url":      base64.RawURLEncoding.EncodeToString(secret),
		"base64, offset": base64.StdEncoding.EncodeToString(secret[3:]),
	} {
		if leak(out, secret) == "" {
			t.Errorf("%s: %q not found as a leak", name, out)
		}
	}
	if what := leak("StreamCipher(acme/order-1 key 5f0c v1)", secret); what != "" {
		t.Errorf("a harmless string is found as a %s leak", what)
	}
}
