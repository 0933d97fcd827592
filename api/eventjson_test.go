package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault"
)

// The read responses as encoding/json rendered them before eventjson.go:
// the reference the hand-written writer must match byte for byte.

type eventOut struct {
	ID             string          `json:"id"`
	Stream         string          `json:"stream"`
	Type           string          `json:"type"`
	Position       int64           `json:"position"`
	GlobalPosition int64           `json:"global_position"`
	RecordedAt     time.Time       `json:"recorded_at"`
	Data           json.RawMessage `json:"data,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Erased         bool            `json:"erased,omitempty"`
}

func toEventOut(e eventvault.Event) eventOut {
	return eventOut{
		ID:             e.ID.String(),
		Stream:         string(e.Stream),
		Type:           e.Type,
		Position:       e.Position,
		GlobalPosition: e.GlobalPosition,
		RecordedAt:     e.RecordedAt.UTC(),
		Data:           e.Data,
		Metadata:       e.Metadata,
		Erased:         e.Erased,
	}
}

type streamResponse struct {
	Stream    string     `json:"stream"`
	Version   int64      `json:"version"`
	Direction string     `json:"direction"`
	Events    []eventOut `json:"events"`
	Next      *int64     `json:"next,omitempty"`
}

type allResponse struct {
	Events []eventOut `json:"events"`
	Next   int64      `json:"next"`
}

func eventsOut(events []eventvault.Event) []eventOut {
	out := make([]eventOut, len(events))
	for i, e := range events {
		out[i] = toEventOut(e)
	}
	return out
}

// sameAsEncodingJSON renders events both ways, as a stream page and as a
// page of all events, and fails unless the bytes are equal.
func sameAsEncodingJSON(t *testing.T, events []eventvault.Event, next *int64) {
	t.Helper()
	want, err := json.Marshal(streamResponse{Stream: "order-42", Version: 7, Direction: "backward", Events: eventsOut(events), Next: next})
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	got, err := appendStreamJSON([]byte("prefix"), "order-42", 7, "backward", events, next)
	if err != nil {
		t.Fatalf("appendStreamJSON: %v", err)
	}
	if !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("stream page differs from encoding/json:\n got %s\nwant %s", got[len("prefix"):], want)
	}
	n := int64(-3)
	if next != nil {
		n = *next
	}
	want, err = json.Marshal(allResponse{Events: eventsOut(events), Next: n})
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	got, err = appendAllJSON(nil, events, n)
	if err != nil {
		t.Fatalf("appendAllJSON: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("page of all events differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func testEvent(data, metadata string) eventvault.Event {
	e := eventvault.Event{
		ID:             uuid.MustParse("3f1c1c9e-9f8e-4a1d-8a4b-6f0d7f2c1e55"),
		Stream:         "order-42",
		Type:           "OrderPlaced",
		Position:       3,
		GlobalPosition: 1 << 40,
		RecordedAt:     time.Date(2026, 11, 23, 7, 50, 15, 123456789, time.UTC),
	}
	if data != "" {
		e.Data = []byte(data)
	}
	if metadata != "" {
		e.Metadata = []byte(metadata)
	}
	return e
}

func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	erased := testEvent("", "")
	erased.Erased = true
	otherZone := testEvent(`{"a":1}`, "")
	otherZone.RecordedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	millis := testEvent(`1`, "")
	millis.RecordedAt = time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)
	odd := testEvent(`{}`, `{}`)
	odd.Stream = "we<ird>-\"1\"&\\"
	odd.Type = "t\u2028\x00\x7f\xffé\t\b\f"
	emptyButNotNil := testEvent("", "")
	emptyButNotNil.Data, emptyButNotNil.Metadata = []byte{}, []byte{}
	next, zero := int64(12), int64(0)

	cases := []struct {
		name   string
		events []eventvault.Event
		next   *int64
	}{
		{"empty page", []eventvault.Event{}, nil},
		{"nil page", nil, &zero},
		{"data without metadata", []eventvault.Event{testEvent(`{"total":42,"items":[1,2.5,-3e10],"ok":true,"none":null}`, "")}, nil},
		{"data and metadata", []eventvault.Event{testEvent(`{"total":42}`, `{"trace":"t-1"}`)}, &next},
		{"erased", []eventvault.Event{erased, testEvent(`"after"`, "")}, &next},
		{"unicode in data", []eventvault.Event{testEvent(`{"name":"Zoë 日本 🎉","line":"a\u2028b\u2029c","raw":"x y"}`, `{"é":"ü"}`)}, nil},
		{"characters encoding/json escapes", []eventvault.Event{testEvent(`{"html":"<script>alert('&')</script>","sep":"a b","€":"—"}`, `["<",">","&"]`)}, nil},
		{"escapes already in data", []eventvault.Event{testEvent(`{"q":"\"\\\n\u0000\u003c\ud83d\ude00"}`, "")}, nil},
		{"scalars", []eventvault.Event{testEvent(`0`, `null`), testEvent(`"s"`, `false`), testEvent(`[]`, `-1.5E+3`)}, nil},
		{"times", []eventvault.Event{otherZone, millis}, nil},
		{"strings needing escapes", []eventvault.Event{odd}, nil},
		{"empty data and metadata", []eventvault.Event{emptyButNotNil}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { sameAsEncodingJSON(t, tc.events, tc.next) })
	}
}

func TestEventJSONRefusesTimesEncodingJSONRefuses(t *testing.T) {
	e := testEvent(`1`, "")
	e.RecordedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := json.Marshal(toEventOut(e)); err == nil {
		t.Fatal("encoding/json accepted year 10000; the test's premise no longer holds")
	}
	b, err := appendAllJSON(nil, []eventvault.Event{e}, 0)
	if err == nil {
		t.Fatalf("appendAllJSON rendered year 10000 as %s; want an error, as encoding/json gives", b)
	}
}

// TestReadResponsesKeepTheirHeaders reads through the whole server: the
// body is the JSON encoding/json would write, sent as application/json,
// not to be cached, with its length.
func TestReadResponsesKeepTheirHeaders(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	// Written by hand: json.Marshal would escape '<' and '&' on the way in.
	body := `{"events": [
		{"id": "` + uuid.NewString() + `", "type": "OrderPlaced", "data": {"note": "<b>fish & chips</b>", "who": "Zoë` + "\u2028" + `"}},
		{"id": "` + uuid.NewString() + `", "type": "OrderPaid", "data": 1, "metadata": {"trace": "t-1"}}]}`
	if rec := a.do(http.MethodPost, "/v1/streams/order-42/events", tok, []byte(body)); rec.Code != http.StatusCreated {
		t.Fatalf("append: status %d: %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v1/streams/order-42/events", "/v1/streams/order-42/events?limit=1", "/v1/events?from=0", "/v1/events?from=2"} {
		rec := a.do(http.MethodGet, path, tok, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s", path, rec.Code, rec.Body)
		}
		h := rec.Header()
		if h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s: Content-Type %q, Cache-Control %q", path, h.Get("Content-Type"), h.Get("Cache-Control"))
		}
		if cl := h.Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("GET %s: Content-Length %q for a body of %d bytes", path, cl, rec.Body.Len())
		}
		// Decoding into the reference types and encoding again gives the
		// same bytes: the shape and escaping are encoding/json's.
		var again []byte
		var err error
		if strings.HasPrefix(path, "/v1/events") {
			var r allResponse
			if err = json.Unmarshal(rec.Body.Bytes(), &r); err == nil {
				again, err = json.Marshal(r)
			}
		} else {
			var r streamResponse
			if err = json.Unmarshal(rec.Body.Bytes(), &r); err == nil {
				again, err = json.Marshal(r)
			}
		}
		if err != nil || !bytes.Equal(again, rec.Body.Bytes()) {
			t.Fatalf("GET %s: body %s is not what encoding/json writes (%s, %v)", path, rec.Body, again, err)
		}
	}
	if b := a.do(http.MethodGet, "/v1/streams/order-42/events", tok, nil).Body.String(); !strings.Contains(b, `\u003cb\u003efish \u0026 chips`) {
		t.Fatalf("data is not HTML-escaped as encoding/json escapes it: %s", b)
	}
}

// FuzzEventJSON compares the writer with encoding/json for any JSON value
// as data (compacted, as the API stores it) and any type string.
func FuzzEventJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a": [1, 2, {"b": null}]}`, `"<&>"`, "\"\u2028\u2029\"", `"\u2028"`, `1e400`, `"é\ud800"`, "\"\xff\xfe\"", `[true,false]`} {
		f.Add([]byte(s), "OrderPlaced")
	}
	f.Add([]byte(`{"x":"<"}`), "a<b>\"&\u2028\xff")
	f.Fuzz(func(t *testing.T, data []byte, typ string) {
		if !json.Valid(data) {
			return
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatalf("json.Compact of valid JSON %q: %v", data, err)
		}
		e := testEvent(compact.String(), compact.String())
		e.Type = typ
		sameAsEncodingJSON(t, []eventvault.Event{e, testEvent(`{}`, "")}, nil)
	})
}

// TestNDJSONReadsAreTheJSONEventsOneALine: with Accept listing
// application/x-ndjson, both reads answer the events of the JSON answer,
// byte for byte, one a line, with next and the stream's version in
// headers; q=0 refuses NDJSON.
func TestNDJSONReadsAreTheJSONEventsOneALine(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	body := `{"events": [
		{"id": "` + uuid.NewString() + `", "type": "OrderPlaced", "data": {"note": "<b>fish & chips</b>"}},
		{"id": "` + uuid.NewString() + `", "type": "OrderPaid", "data": 1, "metadata": {"trace": "t-1"}},
		{"id": "` + uuid.NewString() + `", "type": "OrderShipped", "data": [true]}]}`
	if rec := a.do(http.MethodPost, "/v1/streams/order-42/events", tok, []byte(body)); rec.Code != http.StatusCreated {
		t.Fatalf("append: status %d: %s", rec.Code, rec.Body)
	}
	get := func(path, accept string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := a.serve(req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s (Accept %q): status %d: %s", path, accept, rec.Code, rec.Body)
		}
		return rec
	}
	for _, tc := range []struct {
		path, next, version string
	}{
		{"/v1/streams/order-42/events", "", "2"},
		{"/v1/streams/order-42/events?limit=2", "2", "2"},
		{"/v1/streams/order-42/events?direction=backward&limit=1", "1", "2"},
		{"/v1/events?from=1", "3", ""},
		{"/v1/events?from=3", "3", ""}, // the end: an empty page
	} {
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(get(tc.path, "").Body.Bytes(), &page); err != nil {
			t.Fatalf("GET %s as JSON: %v", tc.path, err)
		}
		rec := get(tc.path, "application/json;q=0.5, application/x-ndjson")
		h := rec.Header()
		if h.Get("Content-Type") != NDJSONContentType || h.Get("Cache-Control") != "no-store" || h.Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
			t.Errorf("GET %s as NDJSON: headers %v for %d bytes", tc.path, h, rec.Body.Len())
		}
		if h.Get(NextHeader) != tc.next || h.Get(VersionHeader) != tc.version {
			t.Errorf("GET %s as NDJSON: %s %q, %s %q; want %q, %q", tc.path, NextHeader, h.Get(NextHeader), VersionHeader, h.Get(VersionHeader), tc.next, tc.version)
		}
		var lines [][]byte
		for line := range bytes.Lines(rec.Body.Bytes()) {
			lines = append(lines, bytes.TrimSuffix(line, []byte("\n")))
		}
		if len(lines) != len(page.Events) {
			t.Fatalf("GET %s: %d NDJSON lines for %d JSON events: %s", tc.path, len(lines), len(page.Events), rec.Body)
		}
		for i := range lines {
			if !bytes.Equal(lines[i], page.Events[i]) {
				t.Errorf("GET %s: line %d is %s, the JSON answer's event %s", tc.path, i, lines[i], page.Events[i])
			}
		}
	}
	// q=0 refuses NDJSON; with anything else taken, the answer is JSON
	// (NDJSON refused alone is 406: TestAcceptIsNegotiated).
	if ct := get("/v1/events", "application/x-ndjson;q=0, */*;q=0.1").Header().Get("Content-Type"); ct != jsonContentType {
		t.Errorf("Accept application/x-ndjson;q=0, */*;q=0.1 answered %q, want JSON", ct)
	}
}

// TestFramesReadsAreTheJSONEvents: with Accept listing
// application/vnd.eventvault.frames, both reads answer the JSON answer's
// events as frames, field for field, with the paging headers.
func TestFramesReadsAreTheJSONEvents(t *testing.T) {
	a := newTestAPI(t)
	tok := a.tokenFor("acme")
	body := `{"events": [
		{"id": "` + uuid.NewString() + `", "type": "OrderPlaced", "data": {"note": "<b>fish & chips</b>"}},
		{"id": "` + uuid.NewString() + `", "type": "OrderPaid", "data": 1, "metadata": {"trace": "t-1"}}]}`
	if rec := a.do(http.MethodPost, "/v1/streams/order-42/events", tok, []byte(body)); rec.Code != http.StatusCreated {
		t.Fatalf("append: status %d: %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v1/streams/order-42/events?limit=1", "/v1/streams/order-42/events", "/v1/events"} {
		var page struct {
			Events []struct {
				ID             uuid.UUID       `json:"id"`
				Stream         string          `json:"stream"`
				Type           string          `json:"type"`
				Position       int64           `json:"position"`
				GlobalPosition int64           `json:"global_position"`
				RecordedAt     time.Time       `json:"recorded_at"`
				Data           json.RawMessage `json:"data"`
				Metadata       json.RawMessage `json:"metadata"`
			} `json:"events"`
			Next *int64 `json:"next"`
		}
		if err := json.Unmarshal(a.do(http.MethodGet, path, tok, nil).Body.Bytes(), &page); err != nil {
			t.Fatalf("GET %s as JSON: %v", path, err)
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/x-ndjson;q=0.5, "+FramesContentType)
		rec := a.serve(req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != FramesContentType {
			t.Fatalf("GET %s as frames: %d %q", path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if page.Next != nil && rec.Header().Get(NextHeader) != strconv.FormatInt(*page.Next, 10) {
			t.Errorf("GET %s as frames: %s %q, want %d", path, NextHeader, rec.Header().Get(NextHeader), *page.Next)
		}
		rest := rec.Body.Bytes()
		for i, want := range page.Events {
			n := int(binary.BigEndian.Uint32(rest))
			got, err := ParseFrame(rest[4 : 4+n])
			if err != nil {
				t.Fatalf("GET %s: frame %d: %v", path, i, err)
			}
			rest = rest[4+n:]
			same := func(x, y []byte) bool {
				var a, b any
				if len(x) == 0 || len(y) == 0 {
					return len(x) == len(y)
				}
				return json.Unmarshal(x, &a) == nil && json.Unmarshal(y, &b) == nil && reflect.DeepEqual(a, b)
			}
			if got.ID != want.ID || got.Stream != want.Stream || got.Type != want.Type || got.Position != want.Position ||
				got.GlobalPosition != want.GlobalPosition || !got.RecordedAt.Equal(want.RecordedAt) || !same(got.Data, want.Data) || !same(got.Metadata, want.Metadata) {
				t.Errorf("GET %s: frame %d is %+v, the JSON answer's event %+v", path, i, got, want)
			}
		}
		if len(rest) != 0 {
			t.Errorf("GET %s: %d bytes after the frames of the %d events", path, len(rest), len(page.Events))
		}
	}
}
