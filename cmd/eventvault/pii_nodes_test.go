package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestPersonalDataChangesOnOneNodeAreHonouredByAnother runs two server
// processes on one database, each warming its caches of subject keys, of
// subject states and of ciphertext by reading: a rectification, a
// restriction and an erasure
// made through the first are honoured at once by the second, which never
// serves a value from before.
func TestPersonalDataChangesOnOneNodeAreHonouredByAnother(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildServer(t)
	dataDir := t.TempDir()
	const root = "pii-nodes-root"
	first := startNode(t, bin, dbURL, dataDir, root)
	second := startNode(t, bin, dbURL, dataDir, root)
	appendJane := func(n *node, stream string) (int, string) {
		body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Registered","data":{"email":"jane@example.com","n":1},"pii":{"/email":{"subject":"jane","class":"email"}}}]}`, uuid.NewString())
		return call(t, "POST", n.base+"/v1/streams/"+stream+"/events", root, body)
	}
	if code, b := appendJane(first, "customer-1"); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	read := func(n *node) string {
		t.Helper()
		code, b := call(t, "GET", n.base+"/v1/streams/customer-1/events", root, "")
		if code != 200 {
			t.Fatalf("read on %s: %d %s", n.base, code, b)
		}
		return b
	}
	for _, n := range []*node{first, second} {
		if b := read(n); !strings.Contains(b, `"email":"jane@example.com"`) {
			t.Fatalf("read on %s: %s", n.base, b)
		}
	}
	code, b := call(t, "POST", first.base+"/v1/subject-exports", root, `{"subject":"jane"}`)
	var x struct {
		PersonalData []struct {
			Token string `json:"token"`
		} `json:"personal_data"`
	}
	if code != 200 || json.Unmarshal([]byte(b), &x) != nil || len(x.PersonalData) != 1 {
		t.Fatalf("export: %d %s", code, b)
	}
	rect := fmt.Sprintf(`{"subject":"jane","token":%q,"value":"jane@new.example"}`, x.PersonalData[0].Token)
	if code, b := call(t, "POST", first.base+"/v1/rectifications", root, rect); code != 200 {
		t.Fatalf("rectify: %d %s", code, b)
	}
	if b := read(second); !strings.Contains(b, `"email":"jane@new.example"`) {
		t.Fatalf("the second node after a rectification on the first: %s", b)
	}
	if code, b := call(t, "PUT", first.base+"/v1/restrictions", root, `{"subject":"jane","reason":"contested"}`); code != 200 {
		t.Fatalf("restrict: %d %s", code, b)
	}
	if b := read(second); strings.Contains(b, "jane@") || !strings.Contains(b, `"redacted":true`) {
		t.Fatalf("the second node after a restriction on the first: %s", b)
	}
	if code, b := call(t, "GET", second.base+"/v1/events", root, ""); code != 200 || strings.Contains(b, "jane@") || !strings.Contains(b, `"redacted":true`) {
		t.Fatalf("read-all on the second node after a restriction on the first: %d %s", code, b)
	}
	if code, b := call(t, "DELETE", second.base+"/v1/restrictions", root, `{"subject":"jane"}`); code != 204 {
		t.Fatalf("lift: %d %s", code, b)
	}
	if b := read(first); !strings.Contains(b, `"email":"jane@new.example"`) {
		t.Fatalf("the first node after the restriction was lifted on the second: %s", b)
	}
	if code, b := call(t, "POST", first.base+"/v1/erasure-requests", root, `{"subject":"jane"}`); code != 201 {
		t.Fatalf("erase: %d %s", code, b)
	}
	if b := read(second); strings.Contains(b, "jane@") || !strings.Contains(b, `"email":{"erased":true}`) {
		t.Fatalf("the second node after an erasure on the first: %s", b)
	}
	if code, b := appendJane(second, "customer-2"); code != 409 {
		t.Fatalf("the second node gave an erased subject a value: %d %s", code, b)
	}
}
