package api

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// FuzzFrame: ParseFrame never panics on any bytes, and what appendFrame
// writes parses back to the event it was given.
func FuzzFrame(f *testing.F) {
	f.Add([]byte(`{"a":1}`), []byte(`{"trace":"t"}`), "OrderPlaced", "order-42", int64(3), int64(1e18), false)
	f.Add([]byte{}, []byte{}, "", "", int64(0), int64(0), true)
	f.Fuzz(func(t *testing.T, data, md []byte, typ, stream string, pos, at int64, erased bool) {
		_, _ = ParseFrame(data) // any bytes: an error or an event, no panic
		e := eventvault.Event{ID: uuid.New(), Stream: eventvault.StreamName(stream), Type: typ, Data: data, Metadata: md,
			Position: pos, GlobalPosition: pos ^ 0x5a5a, RecordedAt: time.Unix(0, at).UTC(), Erased: erased}
		b, err := appendFrame(nil, e)
		if err != nil {
			return // a time outside what a frame holds, or fields too long
		}
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 {
			t.Fatalf("frame length %d for %d bytes", n, len(b)-4)
		}
		got, err := ParseFrame(b[4:])
		if err != nil {
			t.Fatalf("ParseFrame of appendFrame's frame: %v", err)
		}
		if got.ID != e.ID || got.Stream != stream || got.Type != typ || !bytes.Equal(got.Data, data) || !bytes.Equal(got.Metadata, md) ||
			got.Position != pos || got.GlobalPosition != e.GlobalPosition || !got.RecordedAt.Equal(e.RecordedAt) || got.Erased != erased {
			t.Fatalf("round trip of %+v gave %+v", e, got)
		}
		// A frame cut short is refused, not misread.
		if _, err := ParseFrame(b[4 : len(b)-1]); err == nil {
			t.Fatalf("a frame one byte short parsed")
		}
	})
}

// TestFramePIIField: a frame carries whose each shown personal value is, as
// the JSON answer's "pii" member; a frame without the field (written
// before it was added) parses with none.
func TestFramePIIField(t *testing.T) {
	e := eventvault.Event{ID: uuid.New(), Stream: "order-1", Type: "OrderPlaced", Data: []byte(`{"email":"a@example.com"}`), RecordedAt: time.Unix(1, 0).UTC(),
		PII: []eventvault.SubjectValues{{Subject: "3f9a", Pointers: []string{"/email", "/phone"}}, {Subject: "77c1", Pointers: []string{"/a~1b"}}}}
	b, err := appendFrame(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFrame(b[4:])
	want := `{"3f9a":["/email","/phone"],"77c1":["/a~1b"]}`
	if err != nil || string(got.PII) != want {
		t.Fatalf("pii field: %q, %v; want %q", got.PII, err, want)
	}
	// The same event without values shown: an empty field, read as none.
	e.PII = nil
	if b, err = appendFrame(nil, e); err != nil {
		t.Fatal(err)
	}
	if got, err = ParseFrame(b[4:]); err != nil || got.PII != nil || !bytes.Equal(got.Data, e.Data) {
		t.Fatalf("no pii: %+v, %v", got, err)
	}
	// An older writer's frame stops after metadata.
	old := b[4 : len(b)-4]
	if got, err = ParseFrame(old); err != nil || got.PII != nil || !bytes.Equal(got.Data, e.Data) || got.Stream != "order-1" {
		t.Fatalf("a frame without the pii field: %+v, %v", got, err)
	}
}
