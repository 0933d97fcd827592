package api

import (
	"encoding/json"
)

// tokenKind is the JSON type of a token read by lexer.
type tokenKind uint8

const (
	tokEnd    tokenKind = iota // '}' or ']', or the end of the input
	tokObject                  // '{'
	tokArray                   // '['
	tokString
	tokNumber
	tokBool
	tokNull
)

// token is one JSON token: its kind and, for a number, its text.
type token struct {
	kind tokenKind
	raw  string
}

// lexer reads the tokens of a JSON body (RFC 8259). It checks no grammar
// and stops at the end of the input rather than fail: encoding/json checks
// the body after the walk, and what a walk of a body that is not JSON
// says is replaced by the syntax error (decodeStrict). Separators (',' and
// ':') are skipped, as json.Decoder.Token skips them.
type lexer struct {
	b []byte
	i int
}

// skip moves past white space and one separator after it, if any, and the
// white space after that.
func (l *lexer) skip() {
	l.space()
	if l.i < len(l.b) && (l.b[l.i] == ',' || l.b[l.i] == ':') {
		l.i++
		l.space()
	}
}

func (l *lexer) space() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// more reports whether the array or object being read has another element,
// as json.Decoder.More does.
func (l *lexer) more() bool {
	l.skip()
	return l.i < len(l.b) && l.b[l.i] != ']' && l.b[l.i] != '}'
}

// next reads the next token. A string's text is skipped, never copied: key
// reads an object's key.
func (l *lexer) next() token {
	l.skip()
	if l.i >= len(l.b) {
		return token{kind: tokEnd}
	}
	c := l.b[l.i]
	switch c {
	case '{':
		l.i++
		return token{kind: tokObject}
	case '[':
		l.i++
		return token{kind: tokArray}
	case '}', ']':
		l.i++
		return token{kind: tokEnd}
	case '"':
		l.str()
		return token{kind: tokString}
	case 't':
		l.advance(len("true"))
		return token{kind: tokBool}
	case 'f':
		l.advance(len("false"))
		return token{kind: tokBool}
	case 'n':
		l.advance(len("null"))
		return token{kind: tokNull}
	}
	start := l.i
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case '-', '+', '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			l.i++
			continue
		}
		break
	}
	if l.i == start {
		// Not reached for valid JSON; moving on keeps every walk finite
		// whatever the input.
		l.i++
		return token{kind: tokEnd}
	}
	return token{kind: tokNumber, raw: string(l.b[start:l.i])}
}

// str moves past a string, its quotes included, and returns its bytes
// between the quotes and whether they hold an escape.
func (l *lexer) str() (inner []byte, escaped bool) {
	l.advance(1) // the opening quote
	start := l.i
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case '\\':
			escaped = true
			l.i += 2 // the escape's second byte is never a quote that ends it
			continue
		case '"':
			inner = l.b[start:l.i]
			l.i++
			return inner, escaped
		}
		l.i++
	}
	l.i = len(l.b) // an escape may have stepped past the end
	return l.b[start:], escaped
}

// advance moves n bytes on, or to the end of the input: on input that is
// not JSON a token may be cut short, and the lexer never reads past the
// end.
func (l *lexer) advance(n int) {
	l.i = min(l.i+n, len(l.b))
}

// key reads an object's key, unescaped as encoding/json unescapes it.
func (l *lexer) key() string {
	l.skip()
	start := l.i
	inner, escaped := l.str()
	if !escaped {
		return string(inner)
	}
	var k string
	if err := json.Unmarshal(l.b[start:l.i], &k); err != nil {
		// Not reached for valid JSON; the key is kept as sent so that
		// an error can still name it.
		return string(inner)
	}
	return k
}
