package storetest

import (
	"bytes"
	"testing"

	"github.com/eventvault/eventvault"
)

// The comparisons and small helpers the suite's checks share.

func eventsEqual(a, b eventvault.StoredEvent) bool {
	return a.ID == b.ID && a.Stream == b.Stream && a.Type == b.Type &&
		a.Position == b.Position && a.GlobalPosition == b.GlobalPosition &&
		a.RecordedAt.Equal(b.RecordedAt) &&
		bytes.Equal(a.ContentMAC, b.ContentMAC) && bytes.Equal(a.Payload, b.Payload)
}

func keysEqual(a, b eventvault.WrappedKey) bool {
	return a.ID == b.ID && a.Version == b.Version && a.KEKVersion == b.KEKVersion &&
		bytes.Equal(a.Ciphertext, b.Ciphertext) && a.CreatedAt.Equal(b.CreatedAt)
}

func wantKey(t *testing.T, what string, got, want eventvault.WrappedKey) {
	t.Helper()
	if !keysEqual(got, want) {
		t.Errorf("%s = key %s (version %d, KEK version %d, created %v), want key %s (version %d, KEK version %d, created %v)",
			what, got.ID, got.Version, got.KEKVersion, got.CreatedAt, want.ID, want.Version, want.KEKVersion, want.CreatedAt)
	}
}

func wantCode(t *testing.T, err error, code eventvault.Code) {
	t.Helper()
	if got := eventvault.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (error: %v), want %q", got, err, code)
	}
}

// wantActualVersion checks the actual version an ECONFLICT carries.
func wantActualVersion(t *testing.T, err error, want int64) {
	t.Helper()
	got, ok := eventvault.ErrorFields(err)["actual_version"]
	if !ok {
		t.Fatalf("conflict error has no actual_version field (error: %v)", err)
	}
	wantField := any(want)
	if want == eventvault.NoStream {
		wantField = "no_stream"
	}
	if got != wantField {
		t.Errorf("actual_version = %v (%T), want %v (%T, as eventvault.ConflictError builds it)", got, got, wantField, wantField)
	}
}

// at is the Positions of an event at stream position p and global position g.
func at(p, g int64) eventvault.Positions {
	return eventvault.Positions{Position: p, GlobalPosition: g}
}

func positionsOf(evs []eventvault.StoredEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Position
	}
	return out
}

func globalsOf(evs []eventvault.StoredEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.GlobalPosition
	}
	return out
}

// span returns the n integers from first, counting down if step < 0.
func span(first int64, n int, step int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = first + int64(i)*step
	}
	return out
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
