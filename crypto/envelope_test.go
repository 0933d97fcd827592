package crypto

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestHeaderRoundTrips(t *testing.T) {
	for _, h := range []header{
		{kind: kindTenantKEK, keyID: uuid.New(), keyVersion: 1},
		{kind: kindStreamKey, keyID: uuid.New(), keyVersion: 4294967295},
		{kind: kindEvent, keyID: uuid.Nil, keyVersion: 0},
	} {
		b := h.appendTo(nil)
		if len(b) != headerSize {
			t.Fatalf("header is %d bytes; want %d", len(b), headerSize)
		}
		got, err := parseHeader(append(b, "rest"...))
		if err != nil {
			t.Fatal(err)
		}
		if got != h {
			t.Fatalf("parsed %+v; want %+v", got, h)
		}
	}
}

func TestParseHeaderRefusesMalformedHeaders(t *testing.T) {
	valid := header{kind: kindEvent, keyID: uuid.New(), keyVersion: 1}.appendTo(nil)
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	var versionErr *versionError
	for _, tc := range []struct {
		name  string
		in    []byte
		check func(error) bool
	}{
		{"empty", nil, func(err error) bool { return errors.Is(err, errShortEnvelope) }},
		{"short", valid[:headerSize-1], func(err error) bool { return errors.Is(err, errShortEnvelope) }},
		{"version0", with(0, 0), func(err error) bool { return errors.As(err, &versionErr) }},
		{"version2", with(0, 2), func(err error) bool { return errors.As(err, &versionErr) }},
		{"kind0", with(1, 0), func(err error) bool { return errors.Is(err, errUnknownKind) }},
		{"kind6", with(1, 6), func(err error) bool { return errors.Is(err, errUnknownKind) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHeader(tc.in)
			if err == nil || !tc.check(err) {
				t.Fatalf("parseHeader error %v is not the expected one", err)
			}
		})
	}
}

func TestAADTellsFieldBoundariesApart(t *testing.T) {
	h := header{kind: kindEvent, keyID: uuid.New(), keyVersion: 1}
	a := EventRef{Tenant: "ab", Stream: "c-1", ID: testRef.ID, Type: "T"}
	b := EventRef{Tenant: "a", Stream: "bc-1", ID: testRef.ID, Type: "T"}
	if bytes.Equal(eventAAD(h, a), eventAAD(h, b)) {
		t.Fatal("two events in different places share associated data")
	}
	if bytes.Equal(streamKeyAAD(h, "ab", "c-1", testRef.ID), streamKeyAAD(h, "a", "bc-1", testRef.ID)) {
		t.Fatal("two stream keys in different places share associated data")
	}
}

// FuzzHeader checks that whatever parses marshals back to the bytes it came
// from: no two encodings mean the same header.
func FuzzHeader(f *testing.F) {
	f.Add(header{kind: kindEvent, keyID: testRef.ID, keyVersion: 1}.appendTo(nil))
	f.Add(header{kind: kindTenantKEK, keyID: uuid.Nil, keyVersion: 7}.appendTo([]byte{}))
	f.Add([]byte{FormatVersion})
	f.Add([]byte{2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if got := h.appendTo(nil); !bytes.Equal(got, b[:headerSize]) {
			t.Fatalf("parse then marshal gives %x; want %x", got, b[:headerSize])
		}
	})
}
