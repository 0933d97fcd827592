package engine

// erasedForm is what a read shows for a value whose subject was erased.
var erasedForm = []byte(`{"erased":true}`)

// splice returns data with the JSON string of each entry's placeholder (at
// its offset, entries by offset, checked by the caller) replaced by
// withs[k]. When no replacement so far has grown the data (only with
// placeholders that are tokens, of manifests before version 3: a value
// shorter than its token's 34 bytes), it writes over data itself, which
// belongs to this read alone (the event's freshly opened plaintext) and
// whose bytes past len(data) it never touches; else it writes a new
// slice (version 3's placeholders are "", which every value outgrows).
func splice(data []byte, entries []manifestEntry, withs [][]byte) []byte {
	inPlace, delta, size := true, 0, len(data)
	for k, en := range entries {
		d := len(withs[k]) - en.span()
		delta += d
		size += d
		if delta > 0 {
			inPlace = false
		}
	}
	var out []byte
	if inPlace {
		out = data[:0]
	} else {
		out = make([]byte, 0, size)
	}
	last := 0
	for k, en := range entries {
		// In place, the write position never passes the read position:
		// append's copy is a memmove, which allows the overlap.
		out = append(out, data[last:en.Offset]...)
		out = append(out, withs[k]...)
		last = en.Offset + en.span()
	}
	return append(out, data[last:]...)
}
