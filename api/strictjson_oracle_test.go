package api

// The walker decodeStrict used before its own lexer: every key and type
// check through json.Decoder.Token. It stays here as the oracle of
// FuzzKeyWalkerAgreesWithTokenWalker: the lexer walker must decide every
// body as this one did, with the same problem.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventvault/eventvault"
)

// tokenDecodeStrict is decodeStrict as it was, on tokenWalker.
func tokenDecodeStrict(body []byte, v any) error {
	if bytes.HasPrefix(body, []byte("\xEF\xBB\xBF")) || isEmpty(body) || !json.Valid(body) {
		return decodeStrict(body, v) // the checks before the walk are shared
	}
	if err := checkText(body); err != nil {
		return err
	}
	w := tokenWalker{dec: json.NewDecoder(bytes.NewReader(body))}
	w.dec.UseNumber()
	if err := w.value(reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	return nil
}

// tokenWalker walks one valid JSON value token by token, beside the Go type
// it will be decoded into, and checks every object's keys.
// Its type checks, problems and pointers are keyWalker's own (embedded):
// what it stands for is the walk, token by token.
type tokenWalker struct {
	keyWalker
	dec *json.Decoder
}

// value walks the next value; t is the Go type it decodes into, or nil
// where any JSON goes (json.RawMessage, maps, interfaces).
func (w *tokenWalker) value(t reflect.Type) error { return w.valueOf(t, false) }

// valueOf is value; element says the value is an item of an array or a
// value of a map, where null is refused for an object type (an event, a
// rule, a pii mark): it would decode as an empty object and be refused
// for its first missing member, as if it were an object.
func (w *tokenWalker) valueOf(t reflect.Type, element bool) error {
	held := w.heldByPointer(t, element)
	t = shapeOf(t)
	tok, err := w.dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if tok == nil && held {
		return w.typeError(nullForPointer)
	}
	if tok == nil && element && t != nil && t.Kind() == reflect.Struct {
		return w.typeError("must be " + objectOf(t) + ", not null")
	}
	if err := w.checkType(t, kindOf(tok)); err != nil {
		return err
	}
	if n, ok := tok.(json.Number); ok && !fitsDouble(string(n)) {
		return w.typeError("is a number beyond the range of a double (about ±1.8e308): I-JSON (RFC 7493) numbers must fit an IEEE 754 double; send a larger one as a string")
	}
	switch tok {
	case json.Delim('{'):
		return w.object(t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			w.path = append(w.path, fmt.Sprint(i))
			if err := w.valueOf(elem, true); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		_, err := w.dec.Token() // ']'
		return err
	}
	return nil
}

// kindOf is tok as the lexer would have read it.
func kindOf(tok json.Token) token {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return token{kind: tokObject}
		}
		return token{kind: tokArray}
	case string:
		return token{kind: tokString}
	case json.Number:
		return token{kind: tokNumber, raw: string(v)}
	case bool:
		return token{kind: tokBool}
	}
	return token{kind: tokNull}
}

func (w *tokenWalker) object(t reflect.Type) error {
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
	seen := make(map[string]bool)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return duplicateKey(key, w.pointer(key))
		}
		seen[key] = true
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
	_, err := w.dec.Token() // '}'
	return err
}

// strictShapes are the request types the differential test decodes into:
// the append and token requests (nested structs, maps of structs, raw
// JSON, pointers, a self-decoding TTL) and one of every scalar kind.
type strictScalars struct {
	I   int64          `json:"i"`
	U   uint32         `json:"u"`
	F   float64        `json:"f"`
	B   bool           `json:"b"`
	S   *string        `json:"s"`
	At  time.Time      `json:"at"`
	Raw []byte         `json:"raw"`
	Any any            `json:"any"`
	M   map[string]int `json:"m"`
	L   [][]int        `json:"l"`
	X   *strictScalars `json:"x"`
}

func strictTargets() []func() any {
	return []func() any{
		func() any { return new(appendRequest) },
		func() any { return new(tokenRequest) },
		func() any { return new(strictScalars) },
		func() any { return new(map[string]any) },
	}
}

// strictSeeds are the bodies FuzzKeyWalkerAgreesWithTokenWalker starts
// from, and which every `go test` run decides both ways: duplicates at
// depth and past the short list of seen keys, keys equal only once
// unescaped, case-folded and unknown fields, escaped quotes and
// backslashes in keys and values, numbers past a double and past int64,
// negative unsigned values, null items, every kind in the wrong place, and
// white space everywhere JSON allows it.
var strictSeeds = []string{
	`{"events":[]}`,
	`{"expected_version":3,"events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"A","data":{"a":[1,{"b":2,"c":{"d":null}}]},"metadata":{"m":true}}]}`,
	`{"events":[{"data":{"k":1,"k":2}}]}`,
	`{"events":[{"data":{"a":{"x":1,"y":[{"z":1,"z":2}]}}}]}`,
	`{"events":[{"data":{"\u0061":1,"a":2}}]}`,
	`{"events":[{"data":{"a\"b":1,"a\\b":2,"a\"b":3}}]}`,
	`{"events":[{"data":{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k5":18}}]}`,
	`{"events":[{"data":{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k17":18}}]}`,
	`{"EVENTS":[]}`, `{"Events":[]}`, `{"evnets":[]}`, `{"events":[{"ID":"x"}]}`,
	`{"events":[{"data":1e400}]}`, `{"events":[{"data":[1,2,-1.7976931348623157e308,1e-400]}]}`,
	`{"events":[null]}`, `{"events":null}`, `{"events":[{"pii":{"/email":null}}]}`,
	`{"events":{}}`, `{"events":"x"}`, `{"events":[1]}`, `{"subject":5}`, `{"subject":null}`,
	` { "events" : [ { "type" : "A" , "data" : { "x" : "y\\\"z" } } ] } `,
	"{\n\t\"events\":\r\n[]}",
	`{"tenant":"acme","name":"n","rules":[{"action":"read","streams":["a"]}],"ttl":"720h"}`,
	`{"tenant":"acme","rules":[null]}`, `{"tenant":"acme","rules":[{"action":1}]}`, `{"ttl":3600}`, `{"ttl":[1]}`,
	`{"i":1,"u":2,"f":1.5,"b":true,"s":"x","at":"2026-01-01T00:00:00Z","raw":"AQI=","any":{"k":[1,"2",null]},"m":{"a":1},"l":[[1],[2,3]],"x":{"i":-1}}`,
	`{"i":99999999999999999999}`, `{"i":-99999999999999999999}`, `{"i":1.0}`, `{"i":1e3}`, `{"u":-1}`, `{"f":"1"}`, `{"b":0}`,
	`{"m":{"a":"x"}}`, `{"m":{"a":1,"a":2}}`, `{"l":[[1],["x"]]}`, `{"x":{"x":{"y":1}}}`, `{"x":{"X":{}}}`, `{"any":{"a":1,"a":1}}`,
	`{"s":"\ud83d\ude00"}`, `{"s":"\u00e9"}`, `{"\u00e9":1}`, `{"é":1,"\u00e9":2}`,
	`[]`, `1`, `"x"`, `null`, `true`, `{}`, `[{"a":1,"a":2}]`, `{"":1,"":2}`,
	// A problem the walk finds in a body that is not JSON further on: the
	// syntax error is what is said.
	`{"EVENTS":[]} x`, `{"events":[{"data":{"k":1,"k":2}}]`, `{"evnets":[],}`, `{"events":[{"data":"\ud800"}]`,
	`{"events":[{"data":{"a":1,"a":2}}]} {}`, `{"events":[{"data":{"a":1,"a":2}}]`, `{"events":[{"id":5}]]`, "{\"s\":\"\xff\"", `{"events":[{"data":1e400}`,
	"\\", "{,,", `{"\`, `{"s":"\u12`, `{"a":tr`,
}

// FuzzKeyWalkerAgreesWithTokenWalker: the lexer walker and the token
// walker it replaced decide every body alike, with the same problem (its
// code, message and pointer), and decode accepted bodies to equal values.
func FuzzKeyWalkerAgreesWithTokenWalker(f *testing.F) {
	for _, s := range strictSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range strictTargets() {
			got, want := target(), target()
			gotErr, wantErr := decodeStrict(body, got), tokenDecodeStrict(body, want)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%T, body %q: lexer walker %v, token walker %v", got, body, gotErr, wantErr)
			}
			if gotErr != nil {
				var g, w *eventvault.Error
				if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) {
					if gotErr.Error() != wantErr.Error() {
						t.Fatalf("%T, body %q: lexer walker %v, token walker %v", got, body, gotErr, wantErr)
					}
					continue
				}
				if g.Code != w.Code || g.Message != w.Message || fmt.Sprint(g.Fields) != fmt.Sprint(w.Fields) {
					t.Fatalf("%T, body %q:\n lexer walker %s %q %v\n token walker %s %q %v", got, body, g.Code, g.Message, g.Fields, w.Code, w.Message, w.Fields)
				}
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%T, body %q: decoded %+v, token walker %+v", got, body, got, want)
			}
		}
	})
}

// TestStrictSeedsAreRefusedAndAcceptedAsSaid pins a few of the seeds'
// outcomes, so that the differential test cannot pass by both walkers
// accepting (or refusing) everything.
func TestStrictSeedsAreRefusedAndAcceptedAsSaid(t *testing.T) {
	for _, c := range []struct{ body, says string }{
		{`{"events":[{"data":{"\u0061":1,"a":2}}]}`, `key "a" appears twice in one object (at /events/0/data/a)`},
		{strictSeeds[6], `key "k5" appears twice in one object (at /events/0/data/k5)`},
		{strictSeeds[7], `key "k17" appears twice`},
		{`{"events":[{"data":{"a\"b":1,"a\\b":2,"a\"b":3}}]}`, `key "a\"b" appears twice`},
		{`{"EVENTS":[]}`, `did you mean "events"?`},
		{`{"events":[{"data":1e400}]}`, `beyond the range of a double`},
		{`{"events":[null]}`, `the value at /events/0 must be an object`},
	} {
		err := decodeStrict([]byte(c.body), new(appendRequest))
		if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(eventvault.ErrorMessage(err), c.says) {
			t.Errorf("%s: %v, want %q", c.body, err, c.says)
		}
	}
	var req appendRequest
	if err := decodeStrict([]byte(strictSeeds[1]), &req); err != nil || len(req.Events) != 1 || string(req.Events[0].Data) != `{"a":[1,{"b":2,"c":{"d":null}}]}` {
		t.Fatalf("a valid append: %v, %+v", err, req)
	}
}

// BenchmarkDecodeStrict decodes one-event append bodies with the lexer
// walker and with the token walker it replaced: the bench's event (one
// 490-byte string), an order of a dozen fields, and the bench's batch of
// 100 events.
func BenchmarkDecodeStrict(b *testing.B) {
	bodies := map[string]string{
		"pad":   `{"expected_version":"any","events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"OrderPlaced","data":{"pad":"` + strings.Repeat("x", 490) + `"}}]}`,
		"order": `{"expected_version":7,"events":[{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","type":"OrderPlaced","data":{"order_id":"o-1842","customer":"c-77","lines":[{"sku":"A-1","qty":2,"price":12.5},{"sku":"B-7","qty":1,"price":99.99}],"currency":"EUR","total":124.99,"paid":true,"note":null,"shipping":{"method":"express","days":2}},"metadata":{"correlation_id":"c-1","causation_id":"k-9"}}]}`,
	}
	var batch strings.Builder
	batch.WriteString(`{"expected_version":"any","events":[`)
	for i := range 100 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c%04d","type":"OrderPlaced","data":{"pad":"%s"}}`, i, strings.Repeat("x", 490))
	}
	batch.WriteString(`]}`)
	bodies["batch100"] = batch.String()
	for name, body := range bodies {
		for _, w := range []struct {
			name   string
			decode func([]byte, any) error
		}{{"lexer", decodeStrict}, {"token", tokenDecodeStrict}} {
			b.Run(name+"/"+w.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var req appendRequest
					if err := w.decode([]byte(body), &req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestTheLexerEndsOnAnyInput: the walk runs before the body's syntax is
// checked (decodeStrict), so on any input it ends, and does not panic: every token
// read moves past at least one byte. It tries truncations of a body and
// bytes JSON never has in those places.
func TestTheLexerEndsOnAnyInput(t *testing.T) {
	body := `{"events":[{"id":"a\"b","data":{"k":[1,-2.5e3,true,null,{"x":"y"}]}}]}`
	inputs := []string{"", "x", "{x", "[x]", `{"a"x}`, `["a`, `{"a":`, "[-", "[\\", "{\"a\":1,,}", "]]]", "}",
		// Found by the fuzzer once the body was no longer checked before
		// the walk: a lone backslash, a key cut off at the end, a word cut
		// short.
		"\\", "{,,", `"\`, `{"\`, "t", `{"a":tr`, `{"a\u12`, `"\u`}
	for i := range len(body) {
		inputs = append(inputs, body[:i], body[i:])
	}
	for _, in := range inputs {
		// decodeStrict says what is wrong with the syntax, whatever the
		// walk and the text check made of the input.
		if !json.Valid([]byte(in)) {
			err, want := decodeStrict([]byte(in), new(appendRequest)), syntaxError([]byte(in))
			if want == nil || eventvault.ErrorMessage(err) != eventvault.ErrorMessage(want) {
				t.Errorf("input %q: %v, want the syntax error %v", in, err, want)
			}
		}
		w := keyWalker{lex: lexer{b: []byte(in)}}
		_ = w.value(nil)
		_ = w.value(reflect.TypeOf(&appendRequest{}))
		for w.lex.i < len(in) {
			before := w.lex.i
			w.lex.next()
			if w.lex.i <= before {
				t.Fatalf("input %q: the lexer stood still at byte %d", in, before)
			}
		}
	}
}
