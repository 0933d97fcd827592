package engine

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestManifestVersions: what the vault writes (64-hex pseudonyms, tokens
// of piiTokenLen) is version 2, read back with each token taken from the
// data at its offset; a pseudonym of another shape is written as version
// 1; version 1 manifests, as events sealed before version 2 hold, still
// read; truncated or inconsistent manifests are refused.
func TestManifestVersions(t *testing.T) {
	tok1, tok2 := eventvault.PIITokenPrefix+strings.Repeat("A", 26), eventvault.PIITokenPrefix+strings.Repeat("B", 26)
	data := []byte(`{"a":"` + tok1 + `","b":{"c":"` + tok2 + `"}}`)
	ps := eventvault.Pseudonym(strings.Repeat("3f", 32))
	entries := []manifestEntry{
		{Pointer: "/a", Token: tok1, Class: eventvault.PIIEmail, Subject: ps, Offset: strings.Index(string(data), `"`+tok1)},
		{Pointer: "/b/c", Token: tok2, Subject: "short", Offset: strings.Index(string(data), `"`+tok2)},
	}
	for _, tc := range []struct {
		name    string
		entries []manifestEntry
		version byte
	}{
		{"vault's own", []manifestEntry{entries[0], {Pointer: "/b/c", Token: tok2, Subject: ps, Offset: entries[1].Offset}}, manifestV2},
		{"a pseudonym of another shape", entries, manifestV1},
		{"upper-case hex", []manifestEntry{{Pointer: "/a", Token: tok1, Subject: eventvault.Pseudonym(strings.ToUpper(string(ps))), Offset: entries[0].Offset}}, manifestV1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := encodeManifest(tc.entries)
			if m[0] != tc.version {
				t.Fatalf("version %d, want %d", m[0], tc.version)
			}
			_, got, err := decodeManifest(m, data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].subjectIndex = 0
			}
			if !slices.Equal(got, tc.entries) {
				t.Fatalf("decoded %+v, want %+v", got, tc.entries)
			}
			for n := range len(m) {
				if _, _, err := decodeManifest(m[:n], data); !errors.Is(err, errManifest) {
					t.Fatalf("a manifest cut to %d of %d bytes: %v", n, len(m), err)
				}
			}
		})
	}
	// A version 2 offset whose token would run past the data.
	m := encodeManifest([]manifestEntry{{Pointer: "/a", Token: tok1, Subject: ps, Offset: len(data) - 10}})
	if _, _, err := decodeManifest(m, data); !errors.Is(err, errManifest) {
		t.Fatalf("a token past the data: %v", err)
	}
}
