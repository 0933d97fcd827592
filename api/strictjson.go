package api

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/eventvault/eventvault"
)

// decodeStrict decodes body, one JSON value, into v, and refuses what
// encoding/json would let through, so that every reader of a request (a
// gateway, a log, a client in another language, this server) sees the same
// request:
//
//   - a key that appears twice in one object, anywhere (event data and
//     metadata included): I-JSON (RFC 7493, section 2.3) forbids it, and
//     parsers disagree on which one wins;
//   - a key that matches a field of the request only case-insensitively
//     (encoding/json would honour "EXPECTED_VERSION"), or no field at all;
//   - bytes that are not UTF-8, and escaped lone surrogates such as
//     "\ud800", in any string (I-JSON, section 2.1): they would be stored
//     for ever and fail strict parsers on every read.
//
// Every failure is an EINVALID that names the key and its JSON pointer
// (RFC 6901), or the byte offset.
func decodeStrict(body []byte, v any) error {
	if bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")) {
		return eventvault.Errorf(eventvault.EINVALID, "the body starts with a byte order mark (U+FEFF): send JSON without it")
	}
	if isEmpty(body) {
		return eventvault.Errorf(eventvault.EINVALID, "the body is empty: send a JSON object")
	}
	// The body's syntax is checked by json.Unmarshal at the end, not by a
	// pass of its own ahead of the walk (a tenth of a batch append's CPU):
	// whenever a check fails, syntaxError is asked first, so that a body
	// that is not JSON is refused for that, as before, whatever the
	// walker, which trusts its input to be JSON, made of it.
	if err := checkText(body); err != nil {
		return cmp.Or(syntaxError(body), err)
	}
	w := keyWalker{lex: lexer{b: body}}
	if err := w.value(reflect.TypeOf(v)); err != nil {
		return cmp.Or(syntaxError(body), err)
	}
	// The walker has refused every unknown or case-folded key, so
	// encoding/json meets only the request's own fields.
	if err := json.Unmarshal(body, v); err != nil {
		return cmp.Or(syntaxError(body), jsonError(err))
	}
	return nil
}

// syntaxError returns the problem of a body that is not one JSON value
// (encoding/json's decoder says why, or that the value is followed by
// more), nil for one that is.
func syntaxError(body []byte) error {
	if json.Valid(body) {
		return nil
	}
	var first json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&first); err != nil {
		if tooDeep(err) {
			return depthError(body)
		}
		return jsonError(err)
	}
	return eventvault.Errorf(eventvault.EINVALID, "the body holds more than one JSON value: send a single object")
}

// fitsDouble reports whether n is within the range of an IEEE 754 double
// (I-JSON, RFC 7493, section 2.2): past it, parsers give infinity, an
// error or another number. Only a number with an exponent or over 300
// digits can be past it, so only those are parsed. One too small to
// tell from 0 (1e-400) is taken, as a double rounds it.
func fitsDouble(n string) bool {
	if len(n) < 300 && !strings.ContainsAny(n, "eE") {
		return true
	}
	f, err := strconv.ParseFloat(n, 64)
	return !(errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0))
}

// MaxJSONDepth is how deep arrays and objects may nest in a body:
// encoding/json's own limit, which no request of the API comes near.
const MaxJSONDepth = 10000

// tooDeep reports whether err is encoding/json's refusal of a body nested
// deeper than MaxJSONDepth: a *json.SyntaxError with no type of its own.
func tooDeep(err error) bool {
	var syntax *json.SyntaxError
	return errors.As(err, &syntax) && strings.HasSuffix(syntax.Error(), "exceeded max depth")
}

// depthError is the problem for a body nested deeper than MaxJSONDepth:
// it states the limit and the pointer of the value that goes past it (cut
// short), as the other size limits do. It walks the body's tokens up to
// that value: only a refused body pays for it.
func depthError(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// Each level is an open array or object and where its current value
	// stands: the array's index, or the object's key once read.
	type level struct {
		object, keyed bool
		key           string
		index         int
	}
	var stack []level
	done := func() { // the innermost level's current value is complete
		if n := len(stack); n > 0 {
			stack[n-1].index++
			stack[n-1].keyed = false
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break // not expected: the body failed only for its depth
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '}' || v == ']' {
				stack = stack[:len(stack)-1]
				done()
				continue
			}
			if len(stack) < MaxJSONDepth {
				stack = append(stack, level{object: v == '{'})
				continue
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].keyed {
				stack[n-1].key, stack[n-1].keyed = v, true
				continue
			}
			done()
			continue
		default:
			done()
			continue
		}
		break // the value that goes past the limit
	}
	var b strings.Builder
	for _, l := range stack {
		if b.Len() > 120 {
			break
		}
		b.WriteByte('/')
		if l.object {
			b.WriteString(pointerEscaper.Replace(l.key))
		} else {
			b.WriteString(strconv.Itoa(l.index))
		}
	}
	p := eventvault.Truncate(b.String(), 120)
	return &eventvault.Error{Code: eventvault.EINVALID, Fields: map[string]any{"pointer": p},
		Message: fmt.Sprintf("the body nests arrays and objects more than %d deep (at %s): the limit is %d levels; flatten the value", MaxJSONDepth, p, MaxJSONDepth)}
}

// checkText refuses invalid UTF-8 and escaped lone surrogates. In valid
// JSON every byte above 0x7F and every backslash is inside a string; a
// body that is not JSON (it has not been checked yet) is scanned without
// fault, and decodeStrict says its syntax error instead.
func checkText(body []byte) error {
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, size := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return textError(body, off, "the body is not UTF-8 (at %s): every string must be UTF-8 text; encode binary data, for example as base64")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		i++
		if i+4 >= len(body) || body[i] != 'u' {
			// Not an escape of four hex digits (nor JSON, if the body
			// ends here: decodeStrict says so first).
			continue
		}
		r := hex4(body[i+1 : i+5])
		i += 4
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r < 0xDC00 && i+6 < len(body) && body[i+1] == '\\' && body[i+2] == 'u' {
			if low := hex4(body[i+3 : i+7]); low >= 0xDC00 && low <= 0xDFFF {
				i += 6
				continue
			}
		}
		return textError(body, i-5, "the body holds an escaped lone surrogate %s (at %s): I-JSON (RFC 7493) strings must be Unicode text; escape a character outside the BMP as a surrogate pair, or send it as UTF-8", body[i-5:i+1])
	}
	return nil
}

// textError is the EINVALID of checkText for the text at byte off: the
// message is format with args and, last, where that byte is (see where);
// the error carries the JSON pointer of the string that holds it when the
// body is JSON up to there.
func textError(body []byte, off int, format string, args ...any) error {
	at, pointer, ok := where(body, off)
	e := &eventvault.Error{Code: eventvault.EINVALID, Message: fmt.Sprintf(format, append(args, at)...)}
	if ok {
		e.Fields = map[string]any{"pointer": pointer}
	}
	return e
}

// where names byte off of body for a message: the JSON pointer of the
// string that holds it (or of the object whose key holds it) and the
// byte, or the byte alone; and that pointer, if ok.
func where(body []byte, off int) (at, pointer string, ok bool) {
	p, inKey, ok := pointerAt(body, off)
	switch {
	case !ok:
		return fmt.Sprintf("byte %d", off), "", false
	case inKey && p == "":
		return fmt.Sprintf("a key of the body, byte %d", off), p, true
	case inKey:
		return fmt.Sprintf("a key of %s, byte %d", p, off), p, true
	case p == "":
		return fmt.Sprintf("the body's top-level string, byte %d", off), p, true
	}
	return fmt.Sprintf("%s, byte %d", p, off), p, true
}

// pointerAt returns the JSON pointer (RFC 6901, cut to 120 bytes) of the
// value whose string holds byte off of body, or of the object when the
// byte is in one of its keys (inKey: RFC 6901 cannot point at a key). It
// walks the body's tokens up to there, at most MaxJSONDepth deep: only a
// refused body pays for it. ok is false for a byte outside every string,
// or past that depth.
func pointerAt(body []byte, off int) (p string, inKey, ok bool) {
	l := lexer{b: body}
	var path []string
	// stop ends the walk: the byte was not found within MaxJSONDepth.
	stop := false
	var walk func(depth int) bool
	walk = func(depth int) bool {
		l.skip()
		if depth > MaxJSONDepth {
			stop = true
		}
		if stop || l.i >= len(l.b) {
			return false
		}
		switch l.b[l.i] {
		case '{':
			l.i++
			for !stop && l.more() {
				l.skip()
				start := l.i
				key := l.key()
				if off >= start && off < l.i {
					inKey = true
					return true
				}
				path = append(path, key)
				if walk(depth + 1) {
					return true
				}
				path = path[:len(path)-1]
			}
			l.next()
		case '[':
			l.i++
			for n := 0; !stop && l.more(); n++ {
				path = append(path, strconv.Itoa(n))
				if walk(depth + 1) {
					return true
				}
				path = path[:len(path)-1]
			}
			l.next()
		case '"':
			start := l.i
			l.str()
			return off >= start && off < l.i
		default:
			before := l.i
			l.next()
			if l.i == before {
				l.i++
			}
		}
		return false
	}
	if !walk(0) {
		return "", false, false
	}
	var b strings.Builder
	for _, k := range path {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(k))
	}
	return eventvault.Truncate(b.String(), 120), inKey, true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// keyWalker walks one valid JSON value token by token, beside the Go type
// it will be decoded into, and checks every object's keys. It reads the
// tokens itself (lexer) rather than through json.Decoder.Token: a token
// gets no check of its own, and a string that is not a key is never
// copied. (Decoder.Token allocated for every token; it was a fifth of a
// single append's request handling.) On input that is not JSON the walk
// still ends, never deeper than MaxJSONDepth, and what it says is
// replaced by the syntax error (decodeStrict).
type keyWalker struct {
	lex  lexer
	path []string
}

// value walks the next value; t is the Go type it decodes into, or nil
// where any JSON goes (json.RawMessage, maps, interfaces).
func (w *keyWalker) value(t reflect.Type) error { return w.valueOf(t, false) }

// valueOf is value; element says the value is an item of an array or a
// value of a map, where null is refused for an object type (an event, a
// rule, a pii mark): it would decode as an empty object and be refused
// for its first missing member, as if it were an object.
func (w *keyWalker) valueOf(t reflect.Type, element bool) error {
	held := w.heldByPointer(t, element)
	t = shapeOf(t)
	tok := w.lex.next()
	if tok.kind == tokNull && held {
		return w.typeError(nullForPointer)
	}
	if tok.kind == tokNull && element && t != nil && t.Kind() == reflect.Struct {
		return w.typeError("must be " + objectOf(t) + ", not null")
	}
	if err := w.checkType(t, tok); err != nil {
		return err
	}
	if tok.kind == tokNumber && !fitsDouble(tok.raw) {
		return w.typeError("is a number beyond the range of a double (about ±1.8e308): I-JSON (RFC 7493) numbers must fit an IEEE 754 double; send a larger one as a string")
	}
	if (tok.kind == tokObject || tok.kind == tokArray) && len(w.path) > MaxJSONDepth {
		// Deeper than encoding/json goes: the body was never checked for
		// that (decodeStrict), and the walk must not follow it down.
		return depthError(w.lex.b)
	}
	switch tok.kind {
	case tokObject:
		return w.object(t)
	case tokArray:
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.lex.more(); i++ {
			w.path = append(w.path, strconv.Itoa(i))
			if err := w.valueOf(elem, true); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		w.lex.next() // ']'
	}
	return nil
}

// objectShape is implemented by a request type whose problems say what
// the object holds (`{"subject": ..., "class": ...}`) when something else
// is sent in its place.
type objectShape interface{ ObjectShape() string }

var objectShapeType = reflect.TypeFor[objectShape]()

// objectOf is "an object", with what it holds when t says so.
func objectOf(t reflect.Type) string {
	if t.Implements(objectShapeType) {
		return "an object " + reflect.Zero(t).Interface().(objectShape).ObjectShape()
	}
	return "an object"
}

// heldByPointer reports whether the value walked next is a member of a
// request object that the request type holds by pointer: a field given
// empty is then refused rather than read as left out (an application's
// unset variable), and so is null, which encoding/json would read as left
// out. A subject sent as null would otherwise store a stream without an
// owner, which erasing the subject never finds.
func (w *keyWalker) heldByPointer(t reflect.Type, element bool) bool {
	return t != nil && t.Kind() == reflect.Pointer && !element && len(w.path) > 0
}

// nullForPointer is the problem's text for null where heldByPointer.
const nullForPointer = "is null: send a value, or leave the field out"

// checkType refuses a value whose JSON type t cannot take, naming the
// field by its JSON pointer and the type it takes, never the value (it
// may be personal data). null goes anywhere, as encoding/json has it,
// but in an array or as a map's value, and for a field held by pointer
// (valueOf).
func (w *keyWalker) checkType(t reflect.Type, tok token) error {
	if t == nil || tok.kind == tokNull {
		return nil
	}
	var want string
	switch k := t.Kind(); k {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "an integer"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Struct:
		want = objectOf(t)
	case reflect.Map:
		want = "an object"
	case reflect.Slice, reflect.Array:
		want = "an array"
	default:
		return nil
	}
	ok := false
	switch tok.kind {
	case tokString:
		ok = want == "a string"
	case tokBool:
		ok = want == "true or false"
	case tokNumber:
		switch want {
		case "a number":
			_, err := strconv.ParseFloat(tok.raw, 64)
			ok = err == nil
		case "an integer":
			n, err := strconv.ParseInt(tok.raw, 10, 64)
			if errors.Is(err, strconv.ErrRange) {
				if strings.HasPrefix(tok.raw, "-") {
					return w.typeError("is too small")
				}
				return w.typeError(fmt.Sprintf("is too large: the largest is %d", int64(math.MaxInt64)))
			}
			ok = err == nil // an integer literal, not 1.0 or 1e3
			if ok && n < 0 && t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64 {
				return w.typeError("must be 0 or more")
			}
		}
	case tokObject:
		ok = strings.HasPrefix(want, "an object")
	case tokArray:
		ok = want == "an array"
	}
	if !ok {
		return w.typeError("must be " + want)
	}
	return nil
}

func (w *keyWalker) typeError(what string) error {
	if len(w.path) == 0 {
		return eventvault.Errorf(eventvault.EINVALID, "the body %s", what)
	}
	key := w.path[len(w.path)-1]
	w.path = w.path[:len(w.path)-1]
	pointer := w.pointer(key)
	w.path = append(w.path, key)
	name := fmt.Sprintf("the value at %s", eventvault.Truncate(pointer, 120))
	if _, err := strconv.Atoi(key); err != nil {
		name = fmt.Sprintf("field %q (at %s)", eventvault.Truncate(key, 60), eventvault.Truncate(pointer, 120))
	}
	return &eventvault.Error{Code: eventvault.EINVALID,
		Message: name + " " + what,
		Fields:  map[string]any{"pointer": eventvault.Truncate(pointer, 120)}}
}

func (w *keyWalker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	// The keys seen so far: a short list compared in turn, a map once the
	// object is large, so that a body of many keys stays linear.
	var (
		seen    []string
		seenMap map[string]bool
	)
	for w.lex.more() {
		key := w.lex.key()
		dup := seenMap[key]
		if seenMap == nil {
			dup = slices.Contains(seen, key)
		}
		if dup {
			return duplicateKey(key, w.pointer(key))
		}
		switch {
		case seenMap != nil:
			seenMap[key] = true
		case len(seen) < 16:
			seen = append(seen, key)
		default:
			seenMap = make(map[string]bool, 2*len(seen))
			for _, k := range seen {
				seenMap[k] = true
			}
			seenMap[key] = true
		}
		next, element, err := w.member(fields, elem, key)
		if err != nil {
			return err
		}
		w.path = append(w.path, key)
		if err := w.valueOf(next, element); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	w.lex.next() // '}'
	return nil
}

// pointer is the JSON pointer (RFC 6901) of key in the current object.
// pointerEscaper escapes a key for a JSON pointer (RFC 6901, section 3).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointer is the JSON pointer of key in the current object. It is built
// only for an error: a body that decodes never pays for it.
func (w *keyWalker) pointer(key string) string {
	var b strings.Builder
	esc := pointerEscaper
	for _, p := range append(w.path, key) {
		b.WriteByte('/')
		b.WriteString(esc.Replace(p))
	}
	return b.String()
}

// member returns the type of the value of key, in an object of a struct
// with fields (nil for any other object, whose values' type is elem), and
// whether it is an element (a map's value), or the problem for a key the
// struct does not have.
func (w *keyWalker) member(fields map[string]reflect.Type, elem reflect.Type, key string) (next reflect.Type, element bool, err error) {
	if fields == nil {
		return elem, true, nil
	}
	ft, ok := fields[key]
	if !ok {
		return nil, false, unknownField(key, w.pointer(key), fields)
	}
	return ft, false, nil
}

// duplicateKey is the problem for a key that appears twice in one object.
func duplicateKey(key, pointer string) error {
	return &eventvault.Error{Code: eventvault.EINVALID,
		Message: fmt.Sprintf("key %q appears twice in one object (at %s): I-JSON (RFC 7493) forbids duplicate keys; send each key once", eventvault.Truncate(key, 60), eventvault.Truncate(pointer, 120)),
		Fields:  map[string]any{"pointer": eventvault.Truncate(pointer, 120)}}
}

func unknownField(key, pointer string, fields map[string]reflect.Type) error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return &eventvault.Error{Code: eventvault.EINVALID,
				Message: fmt.Sprintf("unknown field %q (at %s): keys are case-sensitive; did you mean %q?", eventvault.Truncate(key, 60), eventvault.Truncate(pointer, 120), name),
				Fields:  map[string]any{"pointer": eventvault.Truncate(pointer, 120)}}
		}
	}
	return &eventvault.Error{Code: eventvault.EINVALID,
		Message: fmt.Sprintf("unknown field %q (at %s): check the spelling against the API reference", eventvault.Truncate(key, 60), eventvault.Truncate(pointer, 120)),
		Fields:  map[string]any{"pointer": eventvault.Truncate(pointer, 120)}}
}

var (
	rawMessageType      = reflect.TypeFor[json.RawMessage]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shapeOf returns the type whose keys the walker checks: pointers are
// followed; a type that decodes itself (json.RawMessage, any
// json.Unmarshaler or encoding.TextUnmarshaler, such as uuid.UUID), a
// []byte (base64 text) and an interface take any keys and any JSON type
// encoding/json would let through, and give nil.
func shapeOf(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t == rawMessageType || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) ||
		reflect.PointerTo(t).Implements(textUnmarshalerType) || t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
		return nil
	}
	return t
}

// jsonFields maps the JSON names of t's fields, as encoding/json names
// them, to their types. The request types have neither embedded nor
// ignored fields beyond "-".
// jsonFieldsOf caches jsonFields by type: the request types are few and
// fixed, and every object of every body looks its fields up.
var jsonFieldsOf sync.Map // reflect.Type -> map[string]reflect.Type

func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := jsonFieldsOf.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := buildJSONFields(t)
	jsonFieldsOf.Store(t, m)
	return m
}

func buildJSONFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
