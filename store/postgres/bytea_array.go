package postgres

import (
	"github.com/jackc/pgx/v5/pgtype"
)

// byteaArray is a bytea[] parameter (a batch's sealed payloads, content
// MACs or audit lines) that pgx encodes into a buffer grown once to the
// array's size. As a plain [][]byte, pgx appends element after element to
// a buffer that starts at 256 bytes for every statement, so the payloads
// of a batch of 100 events of 500 bytes grew and copied it a dozen times,
// allocating four times the array's 54 KB
// (TestByteaArrayEncodesAsPgxDoesInOneGrowth; docs/performance.md, "What
// changed in stop 19"). The bytes sent are the same.
type byteaArray [][]byte

// arrayHeaderSize is the binary array format's header for one dimension
// (ndim, has-nulls, element type, then the dimension's length and lower
// bound: five int32) and elementHeaderSize each element's length prefix,
// as PostgreSQL's array_send writes them.
const (
	arrayHeaderSize   = 5 * 4
	elementHeaderSize = 4
)

// wrapByteaArray hands a byteaArray to pgx's own plan for [][]byte behind
// byteaArrayPlan.
func wrapByteaArray(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	v, ok := value.(byteaArray)
	if !ok {
		return nil, nil, false
	}
	return &byteaArrayPlan{}, [][]byte(v), true
}

type byteaArrayPlan struct{ next pgtype.EncodePlan }

func (p *byteaArrayPlan) SetNext(next pgtype.EncodePlan) { p.next = next }

// Encode grows buf by the array's encoded size, then lets pgx's plan write
// it.
func (p *byteaArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	v := [][]byte(value.(byteaArray))
	n := arrayHeaderSize
	for _, b := range v {
		n += elementHeaderSize + len(b)
	}
	if cap(buf)-len(buf) < n {
		// make and copy rather than slices.Grow, whose append of a made
		// slice is one allocation only where the compiler optimises it
		// (not under -race).
		grown := make([]byte, len(buf), len(buf)+n)
		copy(grown, buf)
		buf = grown
	}
	return p.next.Encode(v, buf)
}

// registerByteaArray lets conn's type map encode byteaArray parameters; it
// runs for every connection the pool opens.
func registerByteaArray(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{wrapByteaArray}, m.TryWrapEncodePlanFuncs...)
}
