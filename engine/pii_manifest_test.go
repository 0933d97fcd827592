package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestManifestVersions: what the vault writes (64-hex pseudonyms, tokens
// of 16 random bytes) is version 3, whose sealed data holds "" at each
// offset and whose tokens are in the manifest; a pseudonym or a token of
// another shape is written as version 1, the data holding the token; the
// version 2 manifests events sealed before version 3 hold still read, each
// token taken from the data at its offset, as do version 1 manifests;
// truncated or inconsistent manifests are refused.
func TestManifestVersions(t *testing.T) {
	tok1, err1 := newToken()
	tok2, err2 := newToken()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	withTokens := []byte(`{"a":"` + tok1 + `","b":{"c":"` + tok2 + `"}}`)
	compact := []byte(`{"a":"","b":{"c":""}}`)
	ps := eventvault.Pseudonym(strings.Repeat("3f", 32))
	at := func(data []byte, s string) int { return strings.Index(string(data), s) }
	v2 := []manifestEntry{
		{Pointer: "/a", Token: tok1, Class: eventvault.PIIEmail, Subject: ps, Offset: at(withTokens, `"`+tok1)},
		{Pointer: "/b/c", Token: tok2, Subject: ps, Offset: at(withTokens, `"`+tok2)},
	}
	v3 := []manifestEntry{
		{Pointer: "/a", Token: tok1, Class: eventvault.PIIEmail, Subject: ps, Offset: at(compact, `""`), compact: true},
		{Pointer: "/b/c", Token: tok2, Subject: ps, Offset: strings.LastIndex(string(compact), `""`), compact: true},
	}
	odd := []manifestEntry{v2[0], {Pointer: "/b/c", Token: tok2, Subject: "short", Offset: v2[1].Offset}}
	upper := []manifestEntry{{Pointer: "/a", Token: tok1, Subject: eventvault.Pseudonym(strings.ToUpper(string(ps))), Offset: v2[0].Offset}}
	oddToken := []manifestEntry{{Pointer: "/a", Token: eventvault.PIITokenPrefix + strings.Repeat("A", 26), Subject: ps, Offset: 5}}
	for _, tc := range []struct {
		name          string
		entries       []manifestEntry
		data          []byte
		write, expect byte // the version encodeManifest is given, and manifestVersion's
	}{
		{"vault's own", v3, compact, manifestV3, manifestV3},
		{"sealed before version 3", v2, withTokens, manifestV2, manifestV3},
		{"a pseudonym of another shape", odd, withTokens, manifestV1, manifestV1},
		{"upper-case hex", upper, withTokens, manifestV1, manifestV1},
		{"a token of another shape", oddToken, []byte(`{"a":"` + oddToken[0].Token + `"}`), manifestV1, manifestV1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v := manifestVersion(tc.entries); v != tc.expect {
				t.Fatalf("manifestVersion %d, want %d", v, tc.expect)
			}
			m := encodeManifest(tc.entries, tc.write)
			_, got, err := decodeManifest(m, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].subjectIndex = 0
				if p := string(tc.data[got[i].Offset+1 : got[i].Offset+got[i].span()-1]); p != got[i].placeholder() {
					t.Fatalf("entry %d: the data holds %q at its offset, the manifest says %q", i, p, got[i].placeholder())
				}
			}
			if !slices.Equal(got, tc.entries) {
				t.Fatalf("decoded %+v, want %+v", got, tc.entries)
			}
			for n := range len(m) {
				if _, _, err := decodeManifest(m[:n], tc.data); !errors.Is(err, errManifest) {
					t.Fatalf("a manifest cut to %d of %d bytes: %v", n, len(m), err)
				}
			}
		})
	}
	// A version 2 offset whose token would run past the data.
	m := encodeManifest([]manifestEntry{{Pointer: "/a", Token: tok1, Subject: ps, Offset: len(withTokens) - 10}}, manifestV2)
	if _, _, err := decodeManifest(m, withTokens); !errors.Is(err, errManifest) {
		t.Fatalf("a token past the data: %v", err)
	}
	if _, _, err := decodeManifest([]byte{4, 0, 0}, compact); !errors.Is(err, errManifest) {
		t.Fatalf("an unknown version: %v", err)
	}
}
