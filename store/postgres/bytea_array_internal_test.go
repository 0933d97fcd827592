package postgres

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestByteaArrayEncodesAsPgxDoesInOneGrowth checks that a byteaArray is
// sent byte for byte as pgx sends the same [][]byte (arrays of payloads,
// with a NULL element, one empty element, none at all), and that encoding a
// batch's payloads into pgx's 256-byte starting buffer allocates about the
// array's size where the plain [][]byte allocates several times it.
func TestByteaArrayEncodesAsPgxDoesInOneGrowth(t *testing.T) {
	m := pgtype.NewMap()
	registerByteaArray(m)
	payloads := make([][]byte, 100)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte(i)}, 540)
	}
	for _, tc := range []struct {
		name string
		v    [][]byte
	}{
		{"a batch's payloads", payloads},
		{"a NULL element", [][]byte{[]byte("a"), nil, []byte("c")}},
		{"an empty element", [][]byte{{}}},
		{"no element", [][]byte{}},
	} {
		want, err := m.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, tc.v, nil)
		if err != nil {
			t.Fatalf("%s: encode [][]byte: %v", tc.name, err)
		}
		got, err := m.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, byteaArray(tc.v), nil)
		if err != nil {
			t.Fatalf("%s: encode byteaArray: %v", tc.name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: byteaArray encodes as %x, [][]byte as %x", tc.name, got, want)
		}
	}

	// Bytes allocated by one encode into pgx's starting buffer of 256
	// bytes: pgx boxes each element (a few dozen bytes each) either way;
	// the plain [][]byte also regrows the buffer about a dozen times.
	allocated := func(v any) int {
		const runs = 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			if _, err := m.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, v, make([]byte, 0, 256)); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return int(after.TotalAlloc-before.TotalAlloc) / runs
	}
	size := arrayHeaderSize + len(payloads)*(elementHeaderSize+540)
	plain, grown := allocated(payloads), allocated(byteaArray(payloads))
	t.Logf("bytes allocated to encode %d bytes: [][]byte %d, byteaArray %d", size, plain, grown)
	if grown > size+size/4 {
		t.Errorf("encoding 100 payloads of 540 bytes (%d bytes) as byteaArray allocates %d bytes; want at most a quarter more than the array", size, grown)
	}
	if plain < 2*size {
		t.Errorf("encoding them as [][]byte allocates %d bytes, under twice the array's %d: does pgx still grow its buffer by appending? Then byteaArray is no longer needed", plain, size)
	}
}
