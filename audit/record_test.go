package audit

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleRecord() Record {
	return Record{
		Version: 1, Tenant: "acme", Index: 7,
		Time:  time.Date(2026, 11, 30, 7, 42, 41, 123456789, time.UTC),
		Actor: "tok_3f9a", Action: ActionAppend, Resource: "stream:order-1", Outcome: OutcomeOK,
		RequestID: "req-1",
		Detail:    map[string]any{"count": int64(2), "first": int64(0), "reason": "tab\t\"quote\" \x01 é"},
	}
}

// golden is sampleRecord's line: the leaf bytes are pinned, since a change
// would make every stored tree unverifiable.
const golden = `{"version":1,"tenant":"acme","index":7,"time":"2026-11-30T07:42:41.123456Z","actor":"tok_3f9a","action":"append","resource":"stream:order-1","outcome":"ok","request_id":"req-1","detail":{"count":2,"first":0,"reason":"tab\t\"quote\" \u0001 é"}}`

func TestMarshalLineIsCanonicalAndParsesBack(t *testing.T) {
	line, err := sampleRecord().MarshalLine()
	if err != nil {
		t.Fatal(err)
	}
	if string(line) != golden {
		t.Fatalf("line:\n%s\nwant:\n%s", line, golden)
	}
	r, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRecord()
	want.Time = want.Time.Truncate(time.Microsecond)
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("parsed %+v\nwant   %+v", r, want)
	}
	// No detail: an empty object, and Version 0 means 1.
	r = Record{Tenant: "acme", Time: time.Unix(0, 0), Actor: "operator", Action: ActionNodeStarted, Resource: "node:n1", Outcome: OutcomeOK}
	line, err = r.MarshalLine()
	if err != nil || !strings.HasSuffix(string(line), `"request_id":"","detail":{}}`) || !strings.HasPrefix(string(line), `{"version":1,`) {
		t.Fatalf("%s, %v", line, err)
	}
}

func TestParseLineRejectsAnythingButTheCanonicalForm(t *testing.T) {
	cases := map[string]string{
		"unknown key":           strings.Replace(golden, `"request_id"`, `"extra":"x","request_id"`, 1),
		"wrong version":         strings.Replace(golden, `"version":1`, `"version":2`, 1),
		"keys reordered":        strings.Replace(golden, `"actor":"tok_3f9a","action":"append"`, `"action":"append","actor":"tok_3f9a"`, 1),
		"space after colon":     strings.Replace(golden, `"index":7`, `"index": 7`, 1),
		"trailing newline":      golden + "\n",
		"leading zero":          strings.Replace(golden, `"index":7`, `"index":07`, 1),
		"negative index":        strings.Replace(golden, `"index":7`, `"index":-7`, 1),
		"escaped letter":        strings.Replace(golden, `tok_3f9a`, `tok_\u0033f9a`, 1),
		"upper-case hex escape": strings.Replace(golden, `\u0001`, `\u000A`, 1),
		"long form of \\n":      strings.Replace(golden, `\t`, `\u0009`, 1),
		"escaped slash":         strings.Replace(golden, `order-1`, `order\/1`, 1),
		"unsorted detail":       strings.Replace(golden, `"count":2,"first":0`, `"first":0,"count":2`, 1),
		"duplicate detail":      strings.Replace(golden, `"count":2,"first":0`, `"count":2,"count":3`, 1),
		"float detail":          strings.Replace(golden, `"count":2`, `"count":2.0`, 1),
		"object detail":         strings.Replace(golden, `"count":2`, `"count":{}`, 1),
		"time without micros":   strings.Replace(golden, `41.123456Z`, `41Z`, 1),
		"time with offset":      strings.Replace(golden, `07:42:41.123456Z`, `08:42:41.123456+01:00`, 1),
		"invalid UTF-8":         strings.Replace(golden, `é`, "\xff", 1),
		"bad outcome":           strings.Replace(golden, `"outcome":"ok"`, `"outcome":"fine"`, 1),
		"bad tenant":            strings.Replace(golden, `"tenant":"acme"`, `"tenant":"Acme"`, 1),
		"raw control character": strings.Replace(golden, `\t`, "\t", 1),
		"empty":                 "",
	}
	for name, line := range cases {
		if line == golden {
			t.Fatalf("%s: the case does not change the line", name)
		}
		if _, err := ParseLine([]byte(line)); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("%s: ParseLine = %v, want ErrMalformedRecord", name, err)
		}
	}
}

func TestMarshalLineRefusesWhatCannotBeALeaf(t *testing.T) {
	for name, edit := range map[string]func(*Record){
		"float detail":  func(r *Record) { r.Detail["x"] = 1.5 },
		"nested detail": func(r *Record) { r.Detail["x"] = map[string]any{} },
		"bad key":       func(r *Record) { r.Detail["X Y"] = "v" },
		"no actor":      func(r *Record) { r.Actor = "" },
		"bad action":    func(r *Record) { r.Action = "Append" },
		"bad outcome":   func(r *Record) { r.Outcome = "" },
		"no time":       func(r *Record) { r.Time = time.Time{} },
		"version 2":     func(r *Record) { r.Version = 2 },
	} {
		r := sampleRecord()
		edit(&r)
		if _, err := r.MarshalLine(); !errors.Is(err, ErrMalformedRecord) {
			t.Errorf("%s: MarshalLine = %v, want ErrMalformedRecord", name, err)
		}
	}
}

// FuzzParseLine: whatever parses marshals back to the very same bytes, so a
// leaf has exactly one encoding.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(golden))
	f.Add([]byte(`{"version":1,"tenant":"a","index":0,"time":"0001-01-01T00:00:00.000001Z","actor":"x","action":"a","resource":"","outcome":"ok","request_id":"","detail":{}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line)
		if _, _, cerr := checkLine(line); (cerr == nil) != (err == nil) {
			t.Fatalf("ParseLine and checkLine disagree on %q: %v, %v", line, err, cerr)
		}
		if err != nil {
			return
		}
		again, err := r.MarshalLine()
		if err != nil {
			t.Fatalf("parsed %q but cannot marshal it: %v", line, err)
		}
		if string(again) != string(line) {
			t.Fatalf("parsed %q, marshals to %q", line, again)
		}
	})
}
