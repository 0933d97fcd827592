package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// TestSubjectCommands serves a subject's rights from the command line
// beside a production server on PostgreSQL: the export (subject id read
// from stdin) holds the value the server stored; a rectification and a
// restriction made by the command change what the server answers at once;
// a subject with nothing held gets an empty export, not an error.
func TestSubjectCommands(t *testing.T) {
	url := pgtest.URL(t)
	rootFile := filepath.Join(t.TempDir(), "root.key")
	storeFlags := []string{"-database-url", url, "-insecure-local-root-key", "-root-key-file", rootFile}
	for _, cmd := range [][]string{{"migrate", "-database-url", url}, append([]string{"init"}, storeFlags...)} {
		if code, stdout, stderr := runCLI(t, cmd...); code != 0 {
			t.Fatalf("eventvault %s: exit %d\n%s%s", cmd[0], code, stdout, stderr)
		}
	}
	prod := startServer(t, storeFlags...)
	code, stdout, stderr := runCLI(t, append([]string{"token", "create", "-tenant", "acme", "-name", "dpo", "-rules", `[{"capabilities":["admin"],"streams":"*"}]`}, storeFlags...)...)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, stderr)
	}
	token := strings.TrimSpace(stdout)
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Registered","data":{"email":"jane@example.com","n":1},"pii":{"/email":{"subject":"jane","class":"email"}}}]}`, uuid.NewString())
	if code, b := call(t, "POST", prod.base+"/v1/streams/customer-1/events", token, body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}

	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("jane\n")
	out := filepath.Join(t.TempDir(), "jane.json")
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "export", "-tenant", "acme", "-subject", "-", "-o", out}, storeFlags...)...); code != 0 {
		t.Fatalf("subject export: %d %s %s", code, stdout, stderr)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		Format       string `json:"format"`
		PersonalData []struct {
			Token   string          `json:"token"`
			Current json.RawMessage `json:"current"`
		} `json:"personal_data"`
	}
	if err := json.Unmarshal(raw, &x); err != nil || x.Format != "eventvault.subject-export.v1" || len(x.PersonalData) != 1 || string(x.PersonalData[0].Current) != `"jane@example.com"` {
		t.Fatalf("export: %v\n%s", err, raw)
	}
	if strings.Contains(stderr, "jane@") {
		t.Fatalf("the command's log holds the value: %s", stderr)
	}

	// A text value without JSON quotes: the message says how to quote it,
	// and does not echo the value.
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "rectify", "-tenant", "acme", "-subject", "jane", "-token", x.PersonalData[0].Token, "-value", `jane@new.example`}, storeFlags...)...); code != 1 || !strings.Contains(stderr, `-value '"sam@new.example"'`) || strings.Contains(stderr, "jane@new.example") {
		t.Fatalf("subject rectify with an unquoted value: %d %s %s; want the quoting explained, the value not echoed", code, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "rectify", "-tenant", "acme", "-subject", "jane", "-token", x.PersonalData[0].Token, "-value", `"jane@new.example"`}, storeFlags...)...); code != 0 || !strings.Contains(stdout, "version 2") {
		t.Fatalf("subject rectify: %d %s %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/customer-1/events", token, ""); code != 200 || !strings.Contains(b, "jane@new.example") {
		t.Fatalf("the server after the rectification: %d %s", code, b)
	}
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "restrict", "-tenant", "acme", "-subject", "jane", "-reason", "accuracy contested"}, storeFlags...)...); code != 0 {
		t.Fatalf("subject restrict: %d %s %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/customer-1/events", token, ""); code != 200 || strings.Contains(b, "jane@new.example") || !strings.Contains(b, `"redacted":true`) {
		t.Fatalf("the server after the restriction: %d %s", code, b)
	}
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "unrestrict", "-tenant", "acme", "-subject", "jane"}, storeFlags...)...); code != 0 {
		t.Fatalf("subject unrestrict: %d %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "unrestrict", "-tenant", "acme", "-subject", "jane"}, storeFlags...)...); code == 0 || !strings.Contains(stderr, "not restricted") {
		t.Fatalf("lifting twice: %d %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, append([]string{"subject", "export", "-tenant", "acme", "-subject", "nobody"}, storeFlags...)...); code != 0 || !strings.Contains(stdout, `"personal_data": []`) {
		t.Fatalf("export of a subject with nothing held: %d %s %s", code, stdout, stderr)
	}
	if code, _, stderr = runCLI(t, append([]string{"subject", "export", "-tenant", "acme"}, storeFlags...)...); code == 0 || !strings.Contains(stderr, "-subject") {
		t.Fatalf("export without -subject: %d %s", code, stderr)
	}
}
