package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
)

// JSON Pointers (RFC 6901) into compact JSON, found by scanning the bytes
// rather than decoding the document: an event's data keeps its members in
// the order the client wrote them, and the value at a pointer is replaced
// in place (by a token on append, by its resolution on read).

var errPointer = errors.New("malformed JSON pointer")

// parsePointer splits an RFC 6901 pointer into its reference tokens,
// unescaping "~1" to "/" and "~0" to "~". The empty pointer (the whole
// document) has none.
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, errPointer
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		for j := 0; j < len(s); j++ {
			if s[j] == '~' && (j+1 == len(s) || (s[j+1] != '0' && s[j+1] != '1')) {
				return nil, errPointer
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// valueSpan returns where the value the reference tokens name starts and
// ends in doc, which must be valid compact JSON; ok is false if it names
// nothing (a missing member, an index out of range or not a decimal index
// without leading zeros, a step into a scalar).
func valueSpan(doc []byte, ref []string) (start, end int, ok bool) {
	start, end = 0, skipValue(doc, 0)
	for _, tok := range ref {
		if start >= len(doc) {
			return 0, 0, false
		}
		switch doc[start] {
		case '{':
			i := start + 1
			found := false
			for i < end-1 {
				keyEnd := skipValue(doc, i)
				var match bool
				if raw := doc[i+1 : keyEnd-1]; bytes.IndexByte(raw, '\\') < 0 {
					match = string(raw) == tok // no escape: the bytes are the key
				} else {
					var key string
					if json.Unmarshal(doc[i:keyEnd], &key) != nil {
						return 0, 0, false
					}
					match = key == tok
				}
				vs := keyEnd + 1 // past ':'
				ve := skipValue(doc, vs)
				if match {
					start, end, found = vs, ve, true
					break
				}
				i = ve
				if i < len(doc) && doc[i] == ',' {
					i++
				}
			}
			if !found {
				return 0, 0, false
			}
		case '[':
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || (len(tok) > 1 && tok[0] == '0') || tok[0] == '+' {
				return 0, 0, false
			}
			i := start + 1
			if doc[i] == ']' {
				return 0, 0, false
			}
			for k := 0; ; k++ {
				ve := skipValue(doc, i)
				if k == n {
					start, end = i, ve
					break
				}
				if ve >= len(doc) || doc[ve] != ',' {
					return 0, 0, false
				}
				i = ve + 1
			}
		default:
			return 0, 0, false
		}
	}
	return start, end, true
}

// skipValue returns the index just past the JSON value starting at i in
// compact JSON.
func skipValue(doc []byte, i int) int {
	if i >= len(doc) {
		return i
	}
	switch doc[i] {
	case '"':
		for j := i + 1; j < len(doc); j++ {
			switch doc[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(doc)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				j = skipValue(doc, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(doc)
	default:
		j := i
		for j < len(doc) && doc[j] != ',' && doc[j] != '}' && doc[j] != ']' {
			j++
		}
		return j
	}
}

// within reports whether pointer a lies inside (or is) pointer b's value.
func within(a, b []string) bool {
	if len(a) < len(b) {
		return false
	}
	for i := range b {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
