package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault/store/postgres/pgtest"
)

// onDatabase is url with its database swapped for the one in other.
func onDatabase(t *testing.T, u, other string) string {
	t.Helper()
	a, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := url.Parse(other)
	if err != nil {
		t.Fatal(err)
	}
	a.Path = b.Path
	return a.String()
}

func pgTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: install Debian's postgresql-client (make test installs postgresql, which brings it)", name)
	}
	return p
}

// backupRole creates docs/operations.md's backup role (LOGIN BYPASSRLS,
// a member of pg_read_all_data, nothing else), dropped when t ends, and
// returns dbURL as that role.
func backupRole(t *testing.T, dbURL string) string {
	t.Helper()
	name := "evbackup_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{
		"CREATE ROLE " + name + " LOGIN BYPASSRLS",
		"GRANT pg_read_all_data TO " + name,
	} {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), os.Getenv(pgtest.EnvURL))
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+name)
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(name)
	return u.String()
}

// appendSubject appends one event with a secret to stream, owned by
// subject when it is not empty.
func appendSubject(t *testing.T, base, token, stream, subject, secret string) {
	t.Helper()
	owner := ""
	if subject != "" {
		owner = fmt.Sprintf(`"subject":%q,`, subject)
	}
	body := fmt.Sprintf(`{%s"events":[{"id":%q,"type":"Noted","data":{"secret":%q}}]}`, owner, uuid.NewString(), secret)
	code, _, b := do(t, "POST", base+"/v1/streams/"+stream+"/events", token, body)
	expectStatus(t, "append to "+stream, 201, code, b)
}

// TestBackupAndRestoreAsDocumented runs docs/operations.md's "Backup and
// restore" on real parts, the server as its least-privileged login role:
// the login role cannot pg_dump; pg_dump as a backup role (BYPASSRLS and
// pg_read_all_data), erasures on
// the live database after the dump, pg_restore into a new database,
// `eventvault erasure reapply` (as the login role, twice: the second run
// does nothing), then the server, with the same data directory (root key,
// pseudonym and signing keys), reads the restored database: the streams
// erased since the backup as erased, everything else as before, and the
// erasure request with the certificate the live database gave.
func TestBackupAndRestoreAsDocumented(t *testing.T) {
	live := migratedURL(t)
	login := pgtest.AppLogin(t, live)
	dataDir := t.TempDir()
	token := issueToken(t, live, filepath.Join(dataDir, "root.key"), "acme")
	bin := buildServer(t)
	base := startProduction(t, bin, login, dataDir)

	appendSubject(t, base, token, "order-1", "", "kept-order")
	appendSubject(t, base, token, "order-2", "", "shredded-order")
	appendSubject(t, base, token, "profile-ann", "ann", "ann-secret")
	appendSubject(t, base, token, "profile-bob", "bob", "bob-secret")
	_, _, order1Before := do(t, "GET", base+"/v1/streams/order-1/events", token, "")

	// The server's role cannot take the backup: it holds nothing itself.
	dump := filepath.Join(t.TempDir(), "eventvault.dump")
	if out, err := exec.Command(pgTool(t, "pg_dump"), "--format=custom", "-f", dump, "-d", login).CombinedOutput(); err == nil {
		t.Fatalf("pg_dump as the server's login role succeeded:\n%s", out)
	} else if !strings.Contains(string(out), "permission denied") {
		t.Fatalf("pg_dump as the login role: %v\n%s; want permission denied", err, out)
	}
	backup := backupRole(t, live)
	if out, err := exec.Command(pgTool(t, "pg_dump"), "--format=custom", "-f", dump, "-d", backup).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump as the backup role: %v\n%s", err, out)
	}

	// After the backup: ann is erased, order-2 shredded; late-1 is born
	// and shredded, so the backup never held it.
	code, _, b := do(t, "POST", base+"/v1/erasure-requests", token, `{"subject":"ann"}`)
	if code != 200 && code != 201 && code != 202 {
		t.Fatalf("erasure request: %d %s", code, b)
	}
	var req struct {
		ID          string          `json:"id"`
		State       string          `json:"state"`
		Certificate json.RawMessage `json:"certificate"`
	}
	if err := json.Unmarshal([]byte(b), &req); err != nil || req.State != "completed" || len(req.Certificate) == 0 {
		t.Fatalf("erasure request: %s; want completed with a certificate", b)
	}
	code, _, b = do(t, "DELETE", base+"/v1/streams/order-2", token, "")
	expectStatus(t, "shred order-2", 200, code, b)
	appendSubject(t, base, token, "late-1", "", "late-secret")
	code, _, b = do(t, "DELETE", base+"/v1/streams/late-1", token, "")
	expectStatus(t, "shred late-1", 200, code, b)

	// Restore into a new database, as the owner.
	restored := pgtest.URL(t)
	if out, err := exec.Command(pgTool(t, "pg_restore"), "--exit-on-error", "-d", restored, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	restoredLogin := onDatabase(t, login, restored)

	code, stdout, stderr := runCLI(t, "erasure", "reapply", "-from", login, "-database-url", restoredLogin)
	if code != 0 {
		t.Fatalf("erasure reapply: exit %d\n%s%s", code, stdout, stderr)
	}
	// ann owned a stream but had no personal value marked: her erasure
	// destroyed no subject key, so no subject is fenced or erased here.
	if want := "0 tenants and 2 streams shredded, 0 subjects' personal data erased, 1 erasure requests recorded; 0 tenants and 1 streams were not in the restored database"; !strings.Contains(stdout, want) {
		t.Fatalf("erasure reapply said:\n%s\nwant %q", stdout, want)
	}
	code, stdout, stderr = runCLI(t, "erasure", "reapply", "-from", login, "-database-url", restoredLogin)
	if code != 0 || !strings.Contains(stdout, "0 tenants and 0 streams shredded, 0 subjects' personal data erased, 0 erasure requests recorded") {
		t.Fatalf("a second erasure reapply: exit %d\n%s%s; want nothing done", code, stdout, stderr)
	}

	rbase := startProduction(t, bin, restoredLogin, dataDir)
	for _, stream := range []string{"profile-ann", "order-2"} {
		code, _, b := do(t, "GET", rbase+"/v1/streams/"+stream+"/events", token, "")
		if code != 410 || strings.Contains(b, "secret") {
			t.Errorf("restored %s: %d %s; want 410 with no data", stream, code, b)
		}
	}
	code, _, b = do(t, "GET", rbase+"/v1/streams/order-1/events", token, "")
	if code != 200 || b != order1Before {
		t.Errorf("restored order-1: %d %s; want as before: %s", code, b, order1Before)
	}
	code, _, b = do(t, "GET", rbase+"/v1/streams/profile-bob/events", token, "")
	if code != 200 || !strings.Contains(b, "bob-secret") {
		t.Errorf("restored profile-bob: %d %s; want its event", code, b)
	}
	code, _, b = do(t, "GET", rbase+"/v1/streams/late-1/events", token, "")
	if code != 410 {
		t.Errorf("restored late-1: %d %s; want 410 (never in the backup, erased since: fenced)", code, b)
	}
	code, _, b = do(t, "GET", rbase+"/v1/erasure-requests/"+req.ID, token, "")
	var got struct {
		State       string          `json:"state"`
		Certificate json.RawMessage `json:"certificate"`
	}
	if code != 200 || json.Unmarshal([]byte(b), &got) != nil || got.State != "completed" || string(got.Certificate) != string(req.Certificate) {
		t.Errorf("restored erasure request: %d %s; want completed with the live certificate", code, b)
	}
	// Appends to a stream erased since the backup stay refused.
	body := fmt.Sprintf(`{"events":[{"id":%q,"type":"Noted","data":{}}]}`, uuid.NewString())
	if code, _, b := do(t, "POST", rbase+"/v1/streams/order-2/events", token, body); code != 409 {
		t.Errorf("append to the restored order-2: %d %s; want 409 (erased)", code, b)
	}
}

// TestErasureReapplyRefusesBadInput: both URLs are required and must
// differ, and -h shows no URL from the environment.
func TestErasureReapplyRefusesBadInput(t *testing.T) {
	t.Setenv("EVENTVAULT_DATABASE_URL", "postgres://u:s3cret@127.0.0.1:1/x")
	t.Setenv("EVENTVAULT_ERASURE_FROM_URL", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"erasure"}, "want reapply"},
		{[]string{"erasure", "replay"}, "want reapply"},
		{[]string{"erasure", "reapply"}, "-from (the live database) and -database-url (the restored one) are both required"},
		{[]string{"erasure", "reapply", "-from", "postgres://u:s3cret@127.0.0.1:1/x"}, "name the same database"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "s3cret") {
			t.Errorf("%q: exit %d, stderr %q; want a refusal saying %q, without the password", c.args, code, stderr, c.want)
		}
	}
	code, stdout, stderr := runCLI(t, "erasure", "reapply", "-h")
	if code != 0 || strings.Contains(stdout+stderr, "s3cret") || !strings.Contains(stderr, "-from") {
		t.Errorf("-h: exit %d, %s%s; want the flags and no URL", code, stdout, stderr)
	}
}
