package bolt

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestEventRecordRoundTrip(t *testing.T) {
	cases := []eventRecord{
		{ID: uuid.New(), GlobalPosition: 0, RecordedAt: time.UnixMicro(0).UTC(), Type: "A"},
		{ID: uuid.New(), GlobalPosition: 1<<62 + 5, RecordedAt: time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC),
			Type: "OrderPlaced", ContentMAC: []byte("mac"), Payload: bytes.Repeat([]byte{0xff}, 300)},
		{ID: uuid.New(), GlobalPosition: 7, RecordedAt: time.UnixMicro(-5).UTC(), Type: string(bytes.Repeat([]byte("x"), 200)),
			ContentMAC: bytes.Repeat([]byte{1}, 200), Payload: []byte{}},
	}
	for _, want := range cases {
		got, err := decodeEvent(encodeEvent(want))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", want, err)
		}
		if got.ID != want.ID || got.GlobalPosition != want.GlobalPosition || !got.RecordedAt.Equal(want.RecordedAt) ||
			got.Type != want.Type || !bytes.Equal(got.ContentMAC, want.ContentMAC) || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("decode(encode(x)) = %+v, want %+v", got, want)
		}
	}
}

func TestDecodeEventRejectsMalformed(t *testing.T) {
	good := encodeEvent(eventRecord{ID: uuid.New(), Type: "A", ContentMAC: []byte("mac"), Payload: []byte("p")})
	bad := map[string][]byte{
		"empty":          nil,
		"short header":   good[:eventHeaderLen-1],
		"unknown format": append([]byte{9}, good[1:]...),
		"type too long":  append(append(bytes.Clone(good[:eventHeaderLen]), 0x7f), 'A'),
		"no MAC length":  append(bytes.Clone(good[:eventHeaderLen]), 1, 'A'),
	}
	for name, v := range bad {
		if _, err := decodeEvent(v); err == nil {
			t.Errorf("%s: decodeEvent accepted %x", name, v)
		}
	}
}

// FuzzEventRecord checks that decoding never panics and that whatever
// decodes encodes back to the same bytes.
func FuzzEventRecord(f *testing.F) {
	f.Add(encodeEvent(eventRecord{ID: uuid.New(), GlobalPosition: 3, RecordedAt: time.UnixMicro(1), Type: "A", ContentMAC: []byte("m"), Payload: []byte("p")}))
	f.Add([]byte{eventFormat})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeEvent(v)
		if err != nil {
			return
		}
		if again := encodeEvent(r); !bytes.Equal(again, v) {
			t.Errorf("encode(decode(%x)) = %x", v, again)
		}
	})
}
