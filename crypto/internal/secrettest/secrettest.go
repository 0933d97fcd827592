// Package secrettest checks that a value holding key material prints none
// of it, whichever way it is printed: every fmt verb, alone or inside a
// struct or slice, and every slog handler.
package secrettest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Verbs are the fmt verbs every key type is printed with.
var Verbs = []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d", "%T"}

// CheckPrintsNoSecret formats v with every verb in Verbs, nested in a
// struct and a slice, and logs it with slog's text and JSON handlers; it
// fails if any output holds one of the secrets raw, in hex (either case),
// in base64 (standard or URL, padded or raw), or as decimal bytes. A
// secret is checked by its first 8 bytes, so a partial print fails too.
func CheckPrintsNoSecret(t testing.TB, v any, secrets ...[]byte) {
	t.Helper()
	var outs []string
	for _, verb := range Verbs {
		outs = append(outs,
			fmt.Sprintf(verb, v),
			fmt.Sprintf(verb, struct{ V any }{v}),
			fmt.Sprintf(verb, []any{v}),
		)
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("key", slog.Any("key", v), "also", v)
		outs = append(outs, b.String())
	}
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("a secret of %d bytes is too short to look for", len(s))
		}
		for _, out := range outs {
			if what := leak(out, s); what != "" {
				t.Fatalf("%T prints key bytes (%s): %s", v, what, out)
			}
		}
	}
}

// leak says how out shows secret, or "" if it does not.
func leak(out string, secret []byte) string {
	head := secret[:8]
	lower := strings.ToLower(out)
	switch {
	case strings.Contains(out, string(head)):
		return "raw"
	case strings.Contains(lower, hex.EncodeToString(head)):
		return "hex"
	case strings.Contains(out, strings.Trim(fmt.Sprint(head), "[]")):
		return "decimal"
	case strings.Contains(out, strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", head[:4]), "[]byte{"), "}")):
		return "Go syntax"
	}
	// Base64 that starts where the secret starts encodes each 3 bytes
	// into 4 characters that do not depend on what follows them.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for off := 0; off+6 <= len(secret); off += 3 {
			if strings.Contains(out, enc.EncodeToString(secret[off:off+6])) {
				return "base64"
			}
		}
	}
	return ""
}
