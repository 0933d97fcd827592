package engine

import (
	"bytes"
	"testing"
)

// TestSpliceReplacesTokensInPlaceOrAnew splices shorter, equal, longer and
// mixed replacements: the result is always the data with each token's
// string replaced; it is written over the data only when no replacement so
// far grew it, and never touches the bytes past the data (where the
// opened plaintext keeps the manifest and the metadata).
func TestSpliceReplacesTokensInPlaceOrAnew(t *testing.T) {
	tokA, tokB := "evpii_aaaaaaaaaaaaaaaaaaaaaaaaaa", "evpii_bbbbbbbbbbbbbbbbbbbbbbbbbb"
	build := func() ([]byte, []manifestEntry) {
		d := []byte(`{"a":"` + tokA + `","n":1,"b":"` + tokB + `"}`)
		return d, []manifestEntry{{Token: tokA, Offset: bytes.Index(d, []byte(tokA)) - 1}, {Token: tokB, Offset: bytes.Index(d, []byte(tokB)) - 1}}
	}
	long := bytes.Repeat([]byte("x"), 50)
	cases := []struct {
		name    string
		withs   [][]byte
		inPlace bool
	}{
		{"both shorter", [][]byte{[]byte(`"j@x.io"`), []byte(`"***"`)}, true},
		{"equal length", [][]byte{[]byte(`"` + tokB + `"`), []byte(`"` + tokA + `"`)}, true},
		{"first longer", [][]byte{append(append([]byte(`"`), long...), '"'), []byte(`1`)}, false},
		{"shorter then longer overall", [][]byte{[]byte(`1`), append(append([]byte(`"`), long...), append(long, '"')...)}, false},
		{"shorter then longer within the saving", [][]byte{[]byte(`1`), append(append([]byte(`"`), long...), '"')}, true},
	}
	for _, c := range cases {
		data, entries := build()
		tail := []byte("MANIFEST+METADATA")
		buf := append(append([]byte{}, data...), tail...)
		data = buf[:len(data)]
		want := `{"a":` + string(c.withs[0]) + `,"n":1,"b":` + string(c.withs[1]) + `}`
		got := splice(data, entries, c.withs)
		if string(got) != want {
			t.Errorf("%s: %s, want %s", c.name, got, want)
		}
		if same := &got[0] == &buf[0]; same != c.inPlace {
			t.Errorf("%s: in place %v, want %v", c.name, same, c.inPlace)
		}
		if !bytes.Equal(buf[len(data):], tail) {
			t.Errorf("%s: the bytes past the data changed: %q", c.name, buf[len(data):])
		}
	}
}
