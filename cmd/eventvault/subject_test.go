package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// subjectRig migrates a fresh PostgreSQL database, creates its deployment
// keys under a local root key in dir and starts a production server on it;
// it returns the store and root flags the commands take, the server, and
// an admin token of tenant acme.
func subjectRig(t *testing.T, dir string) ([]string, *server, string) {
	t.Helper()
	url := pgtest.URL(t)
	storeFlags := []string{"-database-url", url, "-insecure-local-root-key", "-root-key-file", filepath.Join(dir, "root.key")}
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
	return storeFlags, prod, strings.TrimSpace(stdout)
}

// TestSubjectCommands serves a subject's rights from the command line
// beside a production server on PostgreSQL: the export (subject id read
// from stdin) holds the value the server stored; a rectification and a
// restriction made by the command change what the server answers at once;
// a subject with nothing held gets an empty export, not an error.
func TestSubjectCommands(t *testing.T) {
	dir := t.TempDir()
	storeFlags, prod, token := subjectRig(t, dir)
	var code int
	var stdout, stderr string
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

// TestSubjectEraseCommand erases a data subject from the command line
// beside a production server on PostgreSQL that has the subject's stream
// key and value in its caches: under a legal hold the command refuses,
// names the hold and erases nothing; once the hold is lifted it erases
// (subject id read from stdin) and the server answers the stream as
// erased at once; with a consumer behind the tombstone the command says
// the request is propagating and names the consumer, and once it has
// passed, writes a certificate that 'certificate verify' accepts with the
// server's signing key. Asked again, it
// returns the subject's completed request. No output names the subject.
func TestSubjectEraseCommand(t *testing.T) {
	dir := t.TempDir()
	storeFlags, prod, token := subjectRig(t, dir)
	var code int
	var stdout, stderr string
	body := fmt.Sprintf(`{"subject":"sam-4711","events":[{"id":%q,"type":"Registered","data":{"email":"sam@example.com"},"pii":{"/email":{"subject":"sam-4711","class":"email"}}}]}`, uuid.NewString())
	if code, b := call(t, "POST", prod.base+"/v1/streams/customer-7/events", token, body); code != 201 {
		t.Fatalf("append: %d %s", code, b)
	}
	// The server reads the stream: its key and the value's are cached.
	if code, b := call(t, "GET", prod.base+"/v1/streams/customer-7/events", token, ""); code != 200 || !strings.Contains(b, "sam@example.com") {
		t.Fatalf("read before: %d %s", code, b)
	}
	erase := append([]string{"subject", "erase", "-tenant", "acme", "-subject", "sam-4711"}, storeFlags...)

	// Under a legal hold: refused, the hold named, nothing erased.
	if code, b := call(t, "PUT", prod.base+"/v1/holds", token, `{"subject":"sam-4711","reason":"litigation"}`); code/100 != 2 {
		t.Fatalf("hold: %d %s", code, b)
	}
	code, stdout, stderr = runCLI(t, erase...)
	if code != 1 || !strings.Contains(stderr, "rejected under a") || !strings.Contains(stderr, "litigation") || !strings.Contains(stderr, "DELETE /v1/holds") {
		t.Fatalf("erase under a hold: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if code, b := call(t, "GET", prod.base+"/v1/streams/customer-7/events", token, ""); code != 200 || !strings.Contains(b, "sam@example.com") {
		t.Fatalf("read after the refused erasure: %d %s", code, b)
	}
	if code, b := call(t, "DELETE", prod.base+"/v1/holds", token, `{"subject":"sam-4711"}`); code/100 != 2 {
		t.Fatalf("lift the hold: %d %s", code, b)
	}

	// A consumer of the category: the erasure waits for it to pass its
	// tombstone, and the command says so, naming the consumer.
	if code, b := call(t, "PUT", prod.base+"/v1/subscriptions/mailer", token, `{"filter":{"categories":["customer"]}}`); code/100 != 2 {
		t.Fatalf("register a consumer: %d %s", code, b)
	}
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("sam-4711\n")
	cert := filepath.Join(dir, "cert.json")
	code, stdout, stderr = runCLI(t, append([]string{"subject", "erase", "-tenant", "acme", "-subject", "-", "-o", cert}, storeFlags...)...)
	if code != 0 || !strings.Contains(stdout, "(new): propagating") || !strings.Contains(stdout, "    mailer (checkpoint 0, ") || !strings.Contains(stdout, "run the command again") {
		t.Fatalf("erase with a consumer behind: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if _, err := os.Stat(cert); !os.IsNotExist(err) {
		t.Fatalf("a certificate was written for a request still propagating: %v", err)
	}
	var id string
	if _, err := fmt.Sscanf(stdout, "erasure request %s", &id); err != nil {
		t.Fatalf("no request id in %q: %v", stdout, err)
	}
	first := stdout
	// The server, its caches warm, answers the stream as erased at once:
	// the keys are destroyed before the consumers pass the tombstone.
	if code, b := call(t, "GET", prod.base+"/v1/streams/customer-7/events", token, ""); code != 410 || strings.Contains(b, "sam@example.com") {
		t.Fatalf("read after the erasure: %d %s; want 410", code, b)
	}
	var req struct {
		Propagation struct {
			TombstonePosition int64 `json:"tombstone_position"`
		} `json:"propagation"`
	}
	_, b := call(t, "GET", prod.base+"/v1/erasure-requests/"+id, token, "")
	if err := json.Unmarshal([]byte(b), &req); err != nil || req.Propagation.TombstonePosition == 0 {
		t.Fatalf("GET the propagating request: %v %s", err, b)
	}
	if code, b := call(t, "POST", prod.base+"/v1/subscriptions/mailer/ack", token, fmt.Sprintf(`{"position":%d}`, req.Propagation.TombstonePosition)); code != 200 {
		t.Fatalf("ack past the tombstone: %d %s", code, b)
	}
	code, stdout, stderr = runCLI(t, append(slices.Clone(erase), "-o", cert)...)
	if code != 0 || !strings.Contains(stdout, "erasure request "+id+" (the subject's existing request): completed") || !strings.Contains(stdout, "outcome: erased") {
		t.Fatalf("erase once the consumer passed: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	first += stdout + stderr

	code, b = call(t, "GET", prod.base+"/v1/erasure-requests/"+id, token, "")
	if code != 200 || !strings.Contains(b, `"state":"completed"`) || !strings.Contains(b, `"outcome":"erased"`) {
		t.Fatalf("GET the request: %d %s", code, b)
	}
	// The certificate verifies with the server's signing key.
	code, b = call(t, "GET", prod.base+"/v1/keys/signing", token, "")
	if code != 200 {
		t.Fatalf("signing key: %d %s", code, b)
	}
	keyFile := filepath.Join(dir, "signing.json")
	if err := os.WriteFile(keyFile, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "certificate", "verify", "-public-key", keyFile, cert); code != 0 {
		t.Fatalf("certificate verify: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}

	// A certificate file that cannot be written: the error says the
	// erasure is done and how to get the certificate.
	code, _, stderr = runCLI(t, append(slices.Clone(erase), "-o", filepath.Join(dir, "missing", "cert.json"))...)
	if code != 1 || !strings.Contains(stderr, "is completed, but its certificate could not be written (run the command again with another -o") {
		t.Fatalf("erase -o into a missing folder: exit %d, stderr %s", code, stderr)
	}
	// Bad input: no subject, a bad tenant.
	for _, args := range [][]string{{"subject", "erase", "-tenant", "acme"}, {"subject", "erase", "-tenant", "Not A Tenant", "-subject", "x"}} {
		if code, _, stderr := runCLI(t, append(args, storeFlags...)...); code != 1 || !strings.Contains(stderr, "tenant") {
			t.Fatalf("%v: exit %d, stderr %s", args, code, stderr)
		}
	}

	// Again: the subject's existing, completed request.
	code, stdout2, stderr2 := runCLI(t, erase...)
	if code != 0 || !strings.Contains(stdout2, "erasure request "+id+" (the subject's existing request): completed") {
		t.Fatalf("erase again: exit %d\nstdout %s\nstderr %s", code, stdout2, stderr2)
	}
	for _, out := range []string{first, stdout, stderr, stdout2, stderr2} {
		if strings.Contains(out, "sam-4711") || strings.Contains(out, "sam@") {
			t.Fatalf("the command's output names the subject or the value: %s", out)
		}
	}
}
