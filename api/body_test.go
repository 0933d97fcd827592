package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// bodyEndpoint is an endpoint that decodes a body, with a body it accepts
// and a key of it with a valid value (none for the endpoints that take {}).
type bodyEndpoint struct {
	name, method, path string
	body               func() string // a fresh valid body
	key, value         string
}

// bodyEndpoints lists every endpoint that decodes a body.
func bodyEndpoints() []bodyEndpoint {
	return []bodyEndpoint{
		{"append", "POST", "/v1/streams/order-1/events", func() string {
			return `{"expected_version":"any","events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"n":1}}]}`
		}, "expected_version", `"any"`},
		{"token", "POST", "/v1/tokens", func() string { return `{"tenant":"acme","name":"app"}` }, "name", `"app"`},
		{"erasure request", "POST", "/v1/erasure-requests", func() string { return `{"subject":"customer-9"}` }, "subject", `"customer-9"`},
		{"put hold", "PUT", "/v1/holds", func() string { return `{"subject":"customer-9","reason":"court order"}` }, "reason", `"court order"`},
		{"delete hold", "DELETE", "/v1/holds", func() string { return `{"subject":"customer-9"}` }, "subject", `"customer-9"`},
		{"retire root", "POST", "/v1/admin/root/retire", func() string { return `{"before_version":1}` }, "before_version", `1`},
		{"rotate tenant KEK", "POST", "/v1/admin/tenants/acme/kek/rotate", func() string { return `{}` }, "", ""},
		{"rotate root", "POST", "/v1/admin/root/rotate", func() string { return `{}` }, "", ""},
		{"shred tenant", "POST", "/v1/admin/tenants/nobody/shred", func() string { return `{}` }, "", ""},
	}
}

// TestEveryBodyRefusesDuplicateAndCaseVariantKeys: on every endpoint that
// takes a body, a key given twice or in another case is 400 naming the
// key, and nothing happens.
func TestEveryBodyRefusesDuplicateAndCaseVariantKeys(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		type row struct{ name, body, detail string }
		for _, e := range bodyEndpoints() {
			valid := e.body()
			unknown := `{"colour":"red"}`
			if valid != "{}" {
				unknown = `{"colour":"red",` + valid[1:]
			}
			rows := []row{{"unknown key", unknown, `"colour"`}}
			if e.key != "" {
				k, v := e.key, e.value
				rows = append(rows,
					row{"duplicate key first", `{"` + k + `":` + v + `,` + valid[1:], `"` + k + `" appears twice`},
					row{"duplicate key last", valid[:len(valid)-1] + `,"` + k + `":` + v + `}`, `"` + k + `" appears twice`},
					row{"upper-case key", `{"` + strings.ToUpper(k) + `":` + v + `,` + valid[1:], `did you mean "` + k + `"`},
					row{"title-case key", `{"` + strings.ToUpper(k[:1]) + k[1:] + `":` + v + `,` + valid[1:], "case-sensitive"},
				)
			}
			for _, r := range rows {
				t.Run(e.name+"/"+r.name, func(t *testing.T) {
					wantProblem(t, a.do(e.method, e.path, a.root, []byte(r.body)), http.StatusBadRequest, eventvault.EINVALID, r.detail)
				})
			}
		}
		// The examples: the first key would conflict, the second
		// would not; a "Rules" beside "rules" would issue an admin token.
		id := uuid.NewString()
		tok := a.tokenFor("acme")
		a.doJSON("POST", "/v1/streams/order-5/events", tok, map[string]any{"events": []any{event("A", 1)}}, http.StatusCreated, nil)
		for _, r := range []struct{ name, method, path, body, detail string }{
			{"expected_version twice in two cases", "POST", "/v1/streams/order-5/events", `{"expected_version":5,"EXPECTED_VERSION":"any","events":[{"id":"` + id + `","type":"A","data":1}]}`, `"EXPECTED_VERSION"`},
			{"expected_version twice", "POST", "/v1/streams/order-5/events", `{"expected_version":5,"expected_version":"any","events":[{"id":"` + id + `","type":"A","data":1}]}`, `"expected_version" appears twice`},
			{"event key in two cases", "POST", "/v1/streams/order-5/events", `{"events":[{"id":"` + id + `","type":"A","Type":"B","data":1}]}`, `at /events/0/Type`},
			{"event key twice", "POST", "/v1/streams/order-5/events", `{"events":[{"id":"` + id + `","type":"A","type":"B","data":1}]}`, `at /events/0/type`},
			{"rules and Rules", "POST", "/v1/tokens", `{"tenant":"acme","name":"x","rules":[{"capabilities":["read"],"streams":"order-*"}],"Rules":[{"capabilities":["admin"],"streams":"*"}]}`, `"Rules"`},
			{"rules twice", "POST", "/v1/tokens", `{"tenant":"acme","name":"x","rules":[{"capabilities":["read"],"streams":"order-*"}],"rules":[{"capabilities":["admin"],"streams":"*"}]}`, `"rules" appears twice`},
			{"rule key twice", "POST", "/v1/tokens", `{"tenant":"acme","name":"x","rules":[{"capabilities":["read"],"streams":"order-*","streams":"*"}]}`, `at /rules/0/streams`},
			{"rule key in two cases", "POST", "/v1/tokens", `{"tenant":"acme","name":"x","rules":[{"capabilities":["read"],"Capabilities":["admin"],"streams":"*"}]}`, `did you mean "capabilities"`},
		} {
			t.Run(r.name, func(t *testing.T) {
				wantProblem(t, a.do(r.method, r.path, a.root, []byte(r.body)), http.StatusBadRequest, eventvault.EINVALID, r.detail)
			})
		}
		var s streamOut
		a.doJSON("GET", "/v1/streams/order-5/events", tok, nil, http.StatusOK, &s)
		if s.Version != 0 {
			t.Fatalf("refused appends wrote: version %d, want 0", s.Version)
		}
	})
}

// TestDuplicateKeysInEventDataAndMetadata: I-JSON forbids duplicate keys
// anywhere, so data and metadata with one are 400 naming its JSON pointer.
// Keys that differ in case are different keys there.
func TestDuplicateKeysInEventDataAndMetadata(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.tokenFor("acme")
		ev := func(member string) string {
			return `{"events":[{"id":"` + uuid.NewString() + `","type":"A",` + member + `}]}`
		}
		for _, r := range []struct{ name, body, pointer string }{
			{"data", ev(`"data":{"a":1,"a":2}`), "/events/0/data/a"},
			{"nested data", ev(`"data":{"o":{"x":[{"k":1,"k":1}]}}`), "/events/0/data/o/x/0/k"},
			{"metadata", ev(`"data":1,"metadata":{"trace":"a","trace":"b"}`), "/events/0/metadata/trace"},
			{"escaped key", ev(`"data":{"a/b~c":1,"a\/b~c":2}`), "/events/0/data/a~1b~0c"},
			{"second event", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":1},{"id":"` + uuid.NewString() + `","type":"A","data":{"z":1,"z":1}}]}`, "/events/1/data/z"},
		} {
			t.Run(r.name, func(t *testing.T) {
				p := wantProblem(t, a.do("POST", "/v1/streams/order-1/events", tok, []byte(r.body)), http.StatusBadRequest, eventvault.EINVALID, "appears twice", r.pointer, "I-JSON")
				_ = p
			})
		}
		var res appendOut
		a.doJSON("POST", "/v1/streams/order-1/events", tok, json.RawMessage(ev(`"data":{"a":1,"A":2},"metadata":{"a":{"a":1}}`)), http.StatusCreated, &res)
		var s streamOut
		a.doJSON("GET", "/v1/streams/order-1/events", tok, nil, http.StatusOK, &s)
		if len(s.Events) != 1 || string(s.Events[0].Data) != `{"a":1,"A":2}` {
			t.Fatalf("stream %+v, want only the event without duplicates", s.Events)
		}
	})
}

// TestInvalidTextIsRefusedAnywhereInABody: a string that is not UTF-8, or
// holds an escaped lone surrogate, is 400 on every endpoint and in every
// string of an append; a surrogate pair and raw UTF-8 are fine.
func TestInvalidTextIsRefusedAnywhereInABody(t *testing.T) {
	onBothStores(t, func(t *testing.T, a *testAPI) {
		tok := a.tokenFor("acme")
		id := uuid.NewString()
		appendWith := func(typ, data, meta string) string {
			return `{"events":[{"id":"` + id + `","type":"` + typ + `","data":` + data + `,"metadata":` + meta + `}]}`
		}
		const latin1 = "caf\xe9"
		for _, bad := range []struct{ name, text, detail string }{
			{"latin-1 byte", latin1, "not UTF-8"},
			{"truncated sequence", "\xe2\x82", "not UTF-8"},
			{"overlong encoding", "\xc0\xaf", "not UTF-8"},
			{"encoded surrogate", "\xed\xa0\x80", "not UTF-8"},
			{"lone high surrogate", `\ud800`, "lone surrogate"},
			{"lone low surrogate", `\udc00`, "lone surrogate"},
			{"reversed pair", `\ude00\ud83d`, "lone surrogate"},
			{"high then letter", `\ud83dx`, "lone surrogate"},
			{"upper-case escape", `\uD800`, "lone surrogate"},
		} {
			// pointer is the string's JSON pointer, which the problem
			// carries, as every 400 about a body field does (a key's is
			// its object's).
			rows := []struct{ where, path, token, body, pointer string }{
				{"data value", "/v1/streams/order-1/events", tok, appendWith("A", `{"s":"`+bad.text+`"}`, `{}`), "/events/0/data/s"},
				{"data key", "/v1/streams/order-1/events", tok, appendWith("A", `{"`+bad.text+`":1}`, `{}`), "/events/0/data"},
				{"data string", "/v1/streams/order-1/events", tok, appendWith("A", `"`+bad.text+`"`, `{}`), "/events/0/data"},
				{"metadata", "/v1/streams/order-1/events", tok, appendWith("A", `1`, `{"m":["`+bad.text+`"]}`), "/events/0/metadata/m/0"},
				{"type", "/v1/streams/order-1/events", tok, appendWith(bad.text, `1`, `{}`), "/events/0/type"},
				{"subject", "/v1/streams/order-1/events", tok, `{"subject":"` + bad.text + `","events":[{"id":"` + id + `","type":"A","data":1}]}`, "/subject"},
				{"event id", "/v1/streams/order-1/events", tok, `{"events":[{"id":"` + bad.text + `","type":"A","data":1}]}`, "/events/0/id"},
				{"token name", "/v1/tokens", a.root, `{"tenant":"acme","name":"` + bad.text + `"}`, "/name"},
				{"rule pattern", "/v1/tokens", a.root, `{"tenant":"acme","name":"x","rules":[{"capabilities":["read"],"streams":"` + bad.text + `"}]}`, "/rules/0/streams"},
				{"erasure subject", "/v1/erasure-requests", a.root, `{"subject":"` + bad.text + `"}`, "/subject"},
			}
			for _, r := range rows {
				t.Run(bad.name+"/"+r.where, func(t *testing.T) {
					rec := a.do("POST", r.path, r.token, []byte(r.body))
					wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, bad.detail)
					wantPointer(t, rec, r.pointer)
				})
			}
			t.Run(bad.name+"/hold reason", func(t *testing.T) {
				rec := a.do("PUT", "/v1/holds", a.root, []byte(`{"subject":"c-1","reason":"`+bad.text+`"}`))
				wantProblem(t, rec, http.StatusBadRequest, eventvault.EINVALID, bad.detail)
				wantPointer(t, rec, "/reason")
			})
		}
		// Nothing was written; valid text in every form is.
		var all struct{ Events []json.RawMessage }
		a.doJSON("GET", "/v1/events", tok, nil, http.StatusOK, &all)
		if len(all.Events) != 0 {
			t.Fatalf("refused appends wrote %d events", len(all.Events))
		}
		a.doJSON("POST", "/v1/streams/order-1/events", tok, json.RawMessage(appendWith("A", `{"pair":"\ud83d\ude00","raw":"café 😀","esc":"\u00e9"}`, `{}`)), http.StatusCreated, nil)
		var s streamOut
		a.doJSON("GET", "/v1/streams/order-1/events", tok, nil, http.StatusOK, &s)
		if !json.Valid(s.Events[0].Data) || !strings.Contains(string(s.Events[0].Data), `café 😀`) {
			t.Fatalf("stored data %s", s.Events[0].Data)
		}
	})
}

// TestMediaTypes: type, subtype and charset are case-insensitive; a body
// of another type is 415 on every endpoint that takes one.
func TestMediaTypes(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	for _, r := range []struct {
		contentType string
		status      int
		code        eventvault.Code
	}{
		{"application/json", 201, ""},
		{"Application/JSON", 201, ""},
		{"APPLICATION/JSON; CHARSET=UTF-8", 201, ""},
		{"application/json;charset=utf-8", 201, ""},
		{`application/json; charset="UTF-8"`, 201, ""},
		{"", 201, ""},
		{"text/plain", 415, codeUnsupportedMediaType},
		{"application/x-www-form-urlencoded", 415, codeUnsupportedMediaType},
		{"application/xml", 415, codeUnsupportedMediaType},
		{"application/jsonx", 415, codeUnsupportedMediaType},
		{"application/json; charset=latin1", 415, codeUnsupportedMediaType},
		{"application/json; profile=x", 415, codeUnsupportedMediaType},
		{"application/", 400, eventvault.EINVALID},
		{"json", 415, codeUnsupportedMediaType},
		{"application/json; charset", 400, eventvault.EINVALID},
	} {
		t.Run(r.contentType, func(t *testing.T) {
			rec := a.send("POST", "/v1/streams/order-1/events", tok, map[string]string{"Content-Type": r.contentType}, []byte(`{"events":[{"id":"`+uuid.NewString()+`","type":"A","data":1}]}`))
			if r.code == "" {
				if rec.Code != r.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, r.status, rec.Body)
				}
				return
			}
			wantProblem(t, rec, r.status, r.code)
		})
	}
	for _, e := range bodyEndpoints() {
		t.Run(e.name+"/text/plain", func(t *testing.T) {
			rec := a.send(e.method, e.path, a.root, map[string]string{"Content-Type": "text/plain"}, []byte(e.body()))
			wantProblem(t, rec, http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "application/json")
		})
	}
}

// TestContentEncoding: a gzip body is decoded, with the body limit on the
// decoded bytes; a body labelled gzip that is not, and any other coding,
// are refused, the latter with 415 and Accept-Encoding.
func TestContentEncoding(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	body := func() []byte {
		return []byte(`{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"zipped":true}}]}`)
	}
	for _, r := range []struct {
		name, coding string
		zip          bool
		status       int
		code         eventvault.Code
		detail       string
	}{
		{"gzip", "gzip", true, 201, "", ""},
		{"GZIP", "GZIP", true, 201, "", ""},
		{"x-gzip", "x-gzip", true, 201, "", ""},
		{"identity", "identity", false, 201, "", ""},
		{"gzip then identity", "gzip, identity", true, 201, "", ""},
		{"plain body labelled gzip", "gzip", false, 400, eventvault.EINVALID, "not valid gzip"},
		{"gzip twice", "gzip, gzip", true, 415, codeUnsupportedMediaType, "twice"},
		{"br", "br", false, 415, codeUnsupportedMediaType, `"br"`},
		{"deflate", "deflate", false, 415, codeUnsupportedMediaType, `"deflate"`},
		{"compress", "compress", false, 415, codeUnsupportedMediaType, `"compress"`},
		{"zstd", "zstd", false, 415, codeUnsupportedMediaType, `"zstd"`},
	} {
		t.Run(r.name, func(t *testing.T) {
			b := body()
			if r.zip {
				b = gzipped(t, b)
			}
			rec := a.send("POST", "/v1/streams/order-1/events", tok, map[string]string{"Content-Type": "application/json", "Content-Encoding": r.coding}, b)
			if r.code == "" {
				if rec.Code != r.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, r.status, rec.Body)
				}
				return
			}
			wantProblem(t, rec, r.status, r.code, r.detail)
			if r.status == 415 && rec.Header().Get("Accept-Encoding") != acceptedEncodings {
				t.Fatalf("415 with Accept-Encoding %q, want %q", rec.Header().Get("Accept-Encoding"), acceptedEncodings)
			}
		})
	}
	for _, e := range bodyEndpoints() {
		t.Run(e.name+"/br", func(t *testing.T) {
			rec := a.send(e.method, e.path, a.root, map[string]string{"Content-Type": "application/json", "Content-Encoding": "br"}, []byte(e.body()))
			wantProblem(t, rec, http.StatusUnsupportedMediaType, codeUnsupportedMediaType, `"br"`)
		})
	}
	// A gzip bomb: 64 MiB of zeros in a JSON string, some 64 KiB zipped,
	// is 413 without inflating it all.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write([]byte(`{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":"`))
	zeros := make([]byte, 1<<20)
	for i := range zeros {
		zeros[i] = '0'
	}
	for range 64 {
		zw.Write(zeros)
	}
	zw.Write([]byte(`"}]}`))
	zw.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := a.send("POST", "/v1/streams/order-1/events", tok, map[string]string{"Content-Encoding": "gzip"}, bomb.Bytes())
	runtime.ReadMemStats(&after)
	wantProblem(t, rec, http.StatusRequestEntityTooLarge, eventvault.ETOOLARGE, fmt.Sprint(MaxBodyBytes))
	// Reading up to the limit costs a few times MaxBodyBytes (buffer
	// growth, the race detector); inflating it all would cost 64 MiB.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("a %d-byte gzip bomb of 64 MiB allocated %d bytes", bomb.Len(), grew)
	}
	// The zipped body itself is bounded too.
	big := gzipped(t, []byte(`"`+strings.Repeat(uuid.NewString(), MaxBodyBytes/36*2)+`"`))
	if len(big) > MaxBodyBytes {
		wantProblem(t, a.send("POST", "/v1/streams/order-1/events", tok, map[string]string{"Content-Encoding": "gzip"}, big), http.StatusRequestEntityTooLarge, eventvault.ETOOLARGE)
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// send sends a request with the given headers (an empty value leaves the
// header out).
func (a *testAPI) send(method, path, token string, headers map[string]string, body []byte) *httptest.ResponseRecorder {
	a.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.serve(req)
}

// FuzzDecodeStrict: whatever the body, decodeStrict does not panic, and
// what it accepts encoding/json accepts, is UTF-8 and has no duplicate key.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{`{"events":[]}`, `{"a":1,"a":2}`, `{"s":"\ud800"}`, "{\"s\":\"\xff\"}", `{"events":[{"data":{"k":[1,{"k":2}]}}]}`, `[]`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req appendRequest
		if err := decodeStrict(body, &req); err != nil {
			if eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Fatalf("code %s for %q: %v", eventvault.ErrorCode(err), body, err)
			}
			return
		}
		var again appendRequest
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		if !json.Valid(body) || !bytes.Equal(bytes.ToValidUTF8(body, nil), body) {
			t.Fatalf("accepted %q", body)
		}
	})
}

// TestStrictTypesLeaveSelfDecodingTypesAlone: the field type check takes
// what encoding/json takes for types that decode themselves (a UUID from
// a string, bytes from base64, a time), and refuses a wrong JSON type.
func TestStrictTypesLeaveSelfDecodingTypesAlone(t *testing.T) {
	type req struct {
		ID    uuid.UUID  `json:"id"`
		Bytes []byte     `json:"bytes"`
		At    time.Time  `json:"at"`
		N     int64      `json:"n"`
		P     *string    `json:"p"`
		List  []string   `json:"list"`
		Opt   *time.Time `json:"opt"`
	}
	var r req
	if err := decodeStrict([]byte(`{"id":"3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55","bytes":"AQI=","at":"2026-01-01T00:00:00Z","n":-3,"list":["a"]}`), &r); err != nil {
		t.Fatalf("decodeStrict: %v", err)
	}
	for body, want := range map[string]string{
		`{"n":1.5}`:                  `field "n" (at /n) must be an integer`,
		`{"n":"1"}`:                  `field "n" (at /n) must be an integer`,
		`{"n":99999999999999999999}`: `field "n" (at /n) is too large`,
		`{"list":[1]}`:               `the value at /list/0 must be a string`,
		`{"p":true}`:                 `field "p" (at /p) must be a string`,
		// A field held by pointer tells left out from given: null is
		// neither.
		`{"p":null}`:   `field "p" (at /p) is null: send a value, or leave the field out`,
		`{"opt":null}`: `field "opt" (at /opt) is null`,
		`[]`:           `the body must be an object`,
	} {
		err := decodeStrict([]byte(body), &r)
		if eventvault.ErrorCode(err) != eventvault.EINVALID || !strings.Contains(eventvault.ErrorMessage(err), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// TestNullInPlaceOfAnObjectIsToldSo: null as an item of a list of objects
// or a map's value (an event, a token's rule, a pii mark) is refused as
// not an object, by pointer, rather than read as an empty object and
// refused for a missing member ("subject is empty"). It tries
// "events":[null], "rules":[null] and "pii":{"/email":null}.
func TestNullInPlaceOfAnObjectIsToldSo(t *testing.T) {
	a := newTestAPI(t)
	for _, c := range []struct{ path, body, says string }{
		{"/v1/streams/order-1/events", `{"events":[null]}`, "the value at /events/0 must be an object, not null"},
		{"/v1/tokens", `{"tenant":"acme","name":"n","rules":[null]}`, "the value at /rules/0 must be an object"},
		{"/v1/streams/order-1/events", `{"events":[{"id":"` + uuid.NewString() + `","type":"A","data":{"email":"x"},"pii":{"/email":null}}]}`,
			`field "/email" (at /events/0/pii/~1email) must be an object {"subject": ..., "class": ...}, not null`},
	} {
		wantProblem(t, a.do(http.MethodPost, c.path, a.root, []byte(c.body)), http.StatusBadRequest, eventvault.EINVALID, c.says)
	}
}

// TestNestingPastTheLimitSaysTheLimitAndWhere: a body nested deeper than
// MaxJSONDepth is 400 stating the limit and the pointer where it goes
// past it, not the decoder's "exceeded max depth". It tries data nested
// 200000 deep (arrays), MaxJSONDepth+1 deep counting the body's own
// levels (objects under a key with a '/'), and exactly MaxJSONDepth deep,
// which is taken.
func TestNestingPastTheLimitSaysTheLimitAndWhere(t *testing.T) {
	a := newTestAPI(t)
	appendWith := func(data string) *httptest.ResponseRecorder {
		return a.do(http.MethodPost, "/v1/streams/order-1/events", a.root,
			[]byte(`{"events":[{"id":"`+uuid.NewString()+`","type":"A","data":`+data+`}]}`))
	}
	// The body itself is 4 levels deep at data: {, [, {, data.
	deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	p := wantProblem(t, appendWith(deep), http.StatusBadRequest, eventvault.EINVALID,
		"the body nests arrays and objects more than 10000 deep (at /events/0/data/0/0/0/", "the limit is 10000 levels")
	if strings.Contains(p.Detail, "invalid character") || strings.Contains(p.Detail, "exceeded") {
		t.Fatalf("the decoder's words: %s", p.Detail)
	}
	objects := func(n int) string {
		return strings.Repeat(`{"a/b":`, n) + "1" + strings.Repeat("}", n)
	}
	wantProblem(t, appendWith(objects(MaxJSONDepth-3+1)), http.StatusBadRequest, eventvault.EINVALID,
		"more than 10000 deep (at /events/0/data/a~1b/a~1b/")
	if rec := appendWith(objects(MaxJSONDepth - 3)); rec.Code != http.StatusCreated {
		t.Fatalf("data nested to the limit: %d %s", rec.Code, eventvault.Truncate(rec.Body.String(), 300))
	}
}

// TestNumbersBeyondADoubleAreRefused: I-JSON (RFC 7493) numbers fit an
// IEEE 754 double; one beyond (in data, metadata or a field) is 400 naming
// its pointer, never echoing it. It tries 1e400, -1e400, 1E+309 and a
// 400-digit integer (refused), and 1.7976931348623157e308, 1e-400, a
// 299-digit integer and -0.0 (taken).
func TestNumbersBeyondADoubleAreRefused(t *testing.T) {
	a := newTestAPI(t)
	big := "1" + strings.Repeat("0", 399)
	appendWith := func(data, metadata string) *httptest.ResponseRecorder {
		return a.do(http.MethodPost, "/v1/streams/order-1/events", a.root,
			[]byte(`{"events":[{"id":"`+uuid.NewString()+`","type":"A","data":`+data+`,"metadata":`+metadata+`}]}`))
	}
	for _, c := range []struct{ data, metadata, names string }{
		{`{"x":1e400}`, `{}`, `field "x" (at /events/0/data/x)`},
		{`[0,-1e400]`, `{}`, "the value at /events/0/data/1"},
		{`1`, `{"t":1E+309}`, `field "t" (at /events/0/metadata/t)`},
		{`{"n":` + big + `}`, `{}`, `field "n" (at /events/0/data/n)`},
	} {
		p := wantProblem(t, appendWith(c.data, c.metadata), http.StatusBadRequest, eventvault.EINVALID, c.names+" is a number beyond the range of a double", "I-JSON (RFC 7493)")
		if strings.Contains(p.Detail, "e400") || strings.Contains(p.Detail, "309") || strings.Contains(p.Detail, "0000") {
			t.Fatalf("the problem echoes the number: %s", p.Detail)
		}
	}
	for _, n := range []string{"1.7976931348623157e308", "1e-400", "1" + strings.Repeat("0", 298), "-0.0"} {
		if rec := appendWith(`{"x":`+n+`}`, `{}`); rec.Code != http.StatusCreated {
			t.Fatalf("data %s: %d %s", eventvault.Truncate(n, 30), rec.Code, rec.Body)
		}
	}
}

// TestPointerOfInvalidTextEndsOnAnyBody: the pointer of the string that
// holds invalid text is found by a walk that ends on any body: nested
// past MaxJSONDepth (it gives up there), or not JSON at all. A fuzz run of
// FuzzDecodeStrict found the walk looping at that depth once.
func TestPointerOfInvalidTextEndsOnAnyBody(t *testing.T) {
	for _, b := range []string{
		strings.Repeat("[", MaxJSONDepth+10) + "\"\xff\"",
		strings.Repeat(`{"a":`, MaxJSONDepth+10) + "\"\xff\"",
		"{{{{\"\xff", "[[[,,,]]]\"\xff", `{"a" "b":"` + "\xff\"}", `{:::"` + "\xff\"", "]]]}}}\"\xff\"",
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := decodeStrict([]byte(b), &appendRequest{}); eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Errorf("%.40q: %v, want EINVALID", b, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("decodeStrict does not end on %.40q", b)
		}
	}
	for _, c := range []struct {
		body string
		off  int
		want string
	}{
		{`{"events":[{"data":{"k":["x","` + "\xff" + `"]}}]}`, 31, "/events/0/data/k/1, byte 31"},
		{`{"events":[{"data":{"` + "\xff" + `":1}}]}`, 21, "a key of /events/0/data, byte 21"},
		{`{"` + "\xff" + `":1}`, 2, "a key of the body, byte 2"},
		{`"` + "\xff" + `"`, 1, "the body's top-level string, byte 1"},
		{`{"a/b~c":["` + "\xff" + `"]}`, 11, "/a~1b~0c/0, byte 11"},
	} {
		if got, _, _ := where([]byte(c.body), c.off); got != c.want {
			t.Errorf("where(%q, %d) = %q, want %q", c.body, c.off, got, c.want)
		}
	}
}
