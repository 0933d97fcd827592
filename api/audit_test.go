package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/audit"
)

// exportAndVerify flushes the read log, publishes checkpoints, exports
// tenant's log as the root token and verifies the bundle against the
// pinned key, returning its records.
func (a *testAPI) exportAndVerify(t *testing.T, tenant string) []audit.Record {
	t.Helper()
	if err := a.reads.Flush(t.Context()); err != nil {
		t.Fatalf("flush reads: %v", err)
	}
	if _, err := a.checkpoints.PublishOnce(t.Context()); err != nil {
		t.Fatalf("publish checkpoints: %v", err)
	}
	rec := a.do(http.MethodGet, "/v1/audit/export?tenant="+tenant, a.root, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != BundleContentType {
		t.Fatalf("export: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	pinned, err := audit.PinVerifierKey(a.checkpoints.Signer.VerifierKey(tenant))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyBundle(bytes.NewReader(rec.Body.Bytes()), pinned, nil); err != nil {
		t.Fatalf("the exported bundle does not verify: %v", err)
	}
	var out []audit.Record
	sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Type   string          `json:"type"`
			Record json.RawMessage `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == "record" {
			r, err := audit.ParseLine(l.Record)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	return out
}

func findRecord(recs []audit.Record, action, resource string) (audit.Record, bool) {
	for _, r := range recs {
		if r.Action == action && (resource == "" || r.Resource == resource || strings.HasSuffix(resource, ":") && strings.HasPrefix(r.Resource, resource)) {
			return r, true
		}
	}
	return audit.Record{}, false
}

func TestEveryActionIsRecordedAndExportVerifies(t *testing.T) {
	onBothStores(t, testEveryActionIsRecordedAndExportVerifies)
}

func testEveryActionIsRecordedAndExportVerifies(t *testing.T, a *testAPI) {
	const secret, subject = "card-4111-secret", "alice@example.com"
	dpo := a.eraser("acme")
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", dpo, map[string]any{"events": []any{
		map[string]any{"id": uuid.NewString(), "type": "OrderPlaced", "data": map[string]any{"card": secret}},
		map[string]any{"id": uuid.NewString(), "type": "OrderPaid", "data": 2},
	}}, http.StatusCreated, nil)
	a.doJSON(http.MethodPost, "/v1/streams/owned-1/events", dpo, map[string]any{"subject": subject, "events": []any{map[string]any{"id": uuid.NewString(), "type": "A", "data": 1}}}, http.StatusCreated, nil)
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", dpo, nil, http.StatusOK, nil)
	a.putPolicy("acme", "reader", `permit (principal, action == Action::"read", resource);`, http.StatusCreated)
	reader := a.policyToken("acme", "reader")
	wantProblem(t, a.do(http.MethodPost, "/v1/streams/order-1/events", reader, []byte(mustJSON(appendOne("X")))), http.StatusForbidden, eventvault.EFORBIDDEN)
	a.doJSON(http.MethodPut, "/v1/holds", dpo, map[string]any{"subject": "bob", "reason": "litigation"}, http.StatusOK, nil)
	a.doJSON(http.MethodPost, "/v1/erasure-requests", dpo, map[string]any{"subject": subject}, http.StatusCreated, nil)
	a.doJSON(http.MethodDelete, "/v1/streams/order-1", dpo, nil, http.StatusOK, nil)

	recs := a.exportAndVerify(t, "acme")
	for i, r := range recs {
		if r.Index != int64(i) || r.Tenant != "acme" || r.Time.IsZero() {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	app, ok := findRecord(recs, "append", "stream:order-1")
	if !ok || app.Detail["count"] != int64(2) || app.Detail["first_position"] != int64(0) || app.Outcome != "ok" || !strings.HasPrefix(app.Actor, "tok_") || app.RequestID == "" {
		t.Errorf("the append's record: %+v (found %v)", app, ok)
	}
	for _, want := range []struct{ action, resource string }{
		{"read", "stream:order-1"},
		{"token_issued", "token:"},
		{"policy_written", "policy:reader"},
		{"denied", "route:POST /v1/streams/:stream/events"},
		{"hold_placed", ""},
		{"erasure_requested", ""},
		{"erasure_state", ""},
		{"shred", "stream:owned-1"},
		{"shred", "stream:order-1"},
	} {
		if _, ok := findRecord(recs, want.action, want.resource); !ok {
			t.Errorf("no %s record on %q among %d records", want.action, want.resource, len(recs))
		}
	}
	// Never data, never a subject id, never a token.
	all, _ := json.Marshal(recs)
	for _, leak := range []string{secret, subject, "bob", dpo, reader} {
		if strings.Contains(string(all), leak) {
			t.Errorf("the audit log holds %q", leak)
		}
	}
	// A DPO's review of one subject: the pseudonym, then the records about
	// it alone, each with its inclusion proof.
	var ps pseudonymResponse
	a.doJSON(http.MethodPost, "/v1/audit/pseudonym?tenant=acme", a.root, map[string]any{"subject": subject}, http.StatusOK, &ps)
	if !strings.HasPrefix(ps.Resource, "subject:") || strings.Contains(ps.Resource, subject) {
		t.Fatalf("pseudonym: %+v", ps)
	}
	rec := a.do(http.MethodGet, "/v1/audit/export?tenant=acme&resource="+ps.Resource, a.root, nil)
	pinned, _ := audit.PinVerifierKey(a.checkpoints.Signer.VerifierKey("acme"))
	v, err := audit.VerifyBundle(bytes.NewReader(rec.Body.Bytes()), pinned, nil)
	if rec.Code != http.StatusOK || err != nil || !v.Header.Filtered || v.Header.Count < 2 {
		t.Fatalf("the export of one subject's records: %d, %v, %+v", rec.Code, err, v)
	}
	// Client mistakes are 400s that write no export record; a tenant
	// without a log is 404; the deployment's own log is the root's.
	before := a.exportAndVerify(t, "acme")
	for _, q := range []string{"from=5&to=5", "from=3&to=2", "to=100000", "old_size=100000", "resource=%ff", "resource=nocolon", "resource=subject:%00", "from=x"} {
		wantProblem(t, a.do(http.MethodGet, "/v1/audit/export?tenant=acme&"+q, a.root, nil), http.StatusBadRequest, eventvault.EINVALID)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/audit/export?tenant=nobody", a.root, nil), http.StatusNotFound, eventvault.ENOTFOUND, "no audit records")
	wantProblem(t, a.do(http.MethodGet, "/v1/audit/export?tenant=_deployment", dpo, nil), http.StatusBadRequest, eventvault.EINVALID)
	after := a.exportAndVerify(t, "acme")
	exports := func(recs []audit.Record) (n int) {
		for _, r := range recs {
			if r.Action == "export" {
				n++
			}
		}
		return n
	}
	if exports(after) != exports(before)+1 {
		t.Errorf("refused exports were recorded: %d export records, then %d", exports(before), exports(after))
	}
	// The records of processing: who wrote and read which categories.
	var proc audit.Processing
	a.doJSON(http.MethodGet, "/v1/audit/processing?tenant=acme", a.root, nil, http.StatusOK, &proc)
	cat := map[string]audit.CategoryUse{}
	for _, c := range proc.Categories {
		cat[c.Category] = c
	}
	if o := cat["order"]; o.EventsWritten != 2 || len(o.Writers) != 1 || o.EventsRead != 2 || len(o.Readers) != 1 {
		t.Errorf("processing of category order: %+v", o)
	}
	if proc.Erasures != 1 || proc.Holds != 1 || proc.Shreds < 2 || proc.Denials < 1 || proc.Exports < 1 {
		t.Errorf("processing: %+v", proc)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/audit/processing?from=yesterday", a.root, nil), http.StatusBadRequest, eventvault.EINVALID, "RFC 3339")
	wantProblem(t, a.do(http.MethodGet, "/v1/audit/processing?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", a.root, nil), http.StatusBadRequest, eventvault.EINVALID)
	// The export itself is recorded in the log it exports.
	if recs := a.exportAndVerify(t, "acme"); len(recs) == 0 {
		t.Fatal("second export is empty")
	} else if _, ok := findRecord(recs, "export", "audit_log"); !ok {
		t.Errorf("the export is not recorded")
	}
}

// TestAnActionThatCannotBeRecordedDoesNotHappen revokes the app role's
// INSERT on audit_records, as a broken grant or an attacker would: then
// appends, shreds and token changes fail with 503 and write nothing; once
// the grant is back they work.
func TestAnActionThatCannotBeRecordedDoesNotHappen(t *testing.T) {
	store, url := newPostgresStoreURL(t)
	a := newTestAPIOver(t, store, nil)
	admin := a.capToken("acme", eventvault.CapAdmin)
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", admin, appendOne("A"), http.StatusCreated, nil)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `REVOKE INSERT ON audit_records FROM eventvault_app`); err != nil {
		t.Fatal(err)
	}
	var before tokenList
	a.doJSON(http.MethodGet, "/v1/tokens", admin, nil, http.StatusOK, &before)
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/streams/order-1/events", mustJSON(appendOne("B"))},
		{"POST", "/v1/streams/order-2/events", mustJSON(appendOne("B"))},
		{"DELETE", "/v1/streams/order-1", ""},
		{"POST", "/v1/tokens", `{"name":"new"}`},
		{"PUT", "/v1/policies/app", `{"policy":"permit (principal, action, resource);"}`},
	} {
		var body []byte
		if r.body != "" {
			body = []byte(r.body)
		}
		wantProblem(t, a.do(r.method, r.path, admin, body), http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "audit log")
	}
	var page streamOut
	a.doJSON(http.MethodGet, "/v1/streams/order-1/events", admin, nil, http.StatusOK, &page)
	if len(page.Events) != 1 {
		t.Fatalf("order-1 holds %d events after refused appends and shred; want 1, readable", len(page.Events))
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/order-2/events", admin, nil), http.StatusNotFound, eventvault.ENOTFOUND)
	var after tokenList
	a.doJSON(http.MethodGet, "/v1/tokens", admin, nil, http.StatusOK, &after)
	if len(after.Tokens) != len(before.Tokens) {
		t.Fatalf("a token was issued without its record: %d tokens, was %d", len(after.Tokens), len(before.Tokens))
	}
	if _, err := conn.Exec(t.Context(), `GRANT INSERT ON audit_records TO eventvault_app`); err != nil {
		t.Fatal(err)
	}
	a.doJSON(http.MethodPost, "/v1/streams/order-1/events", admin, appendOne("C"), http.StatusCreated, nil)
	// A record rewritten in the database by its owner breaks the export.
	a.exportAndVerify(t, "acme")
	if _, err := conn.Exec(t.Context(), `UPDATE audit_records SET line = convert_to(replace(convert_from(line, 'UTF8'), '"outcome":"ok"', '"outcome":"failed"'), 'UTF8') WHERE tenant_id = 'acme' AND idx = 0`); err != nil {
		t.Fatal(err)
	}
	rec := a.do(http.MethodGet, "/v1/audit/export?tenant=acme", a.root, nil)
	pinned, _ := audit.PinVerifierKey(a.checkpoints.Signer.VerifierKey("acme"))
	if rec.Code != http.StatusOK {
		t.Fatalf("export after the rewrite: %d %s", rec.Code, rec.Body)
	}
	var verr *audit.VerifyError
	if _, err := audit.VerifyBundle(bytes.NewReader(rec.Body.Bytes()), pinned, nil); !errors.As(err, &verr) || verr.Failure != audit.Tampered {
		t.Fatalf("a record rewritten in the database: verify says %v, want tampered", err)
	}
}

// TestReadsAPolicyMarksAreRecordedOneByOne: a read permitted by a
// statement annotated @audit("each") is recorded before it is answered,
// not gathered; on PostgreSQL with the log unwritable it fails 503.
func TestReadsAPolicyMarksAreRecordedOneByOne(t *testing.T) {
	store, url := newPostgresStoreURL(t)
	a := newTestAPIOver(t, store, nil)
	writer := a.capToken("acme", eventvault.CapAppend)
	a.doJSON(http.MethodPost, "/v1/streams/hr-1/events", writer, appendOne("Hired"), http.StatusCreated, nil)
	a.putPolicy("acme", "hr", `@audit("each")
@id("hr-reads")
permit (principal, action == Action::"read", resource is Stream) when { resource.category == "hr" };`, http.StatusCreated)
	reader := a.policyToken("acme", "hr")
	before, _ := store.AuditSize(t.Context(), "acme")
	a.doJSON(http.MethodGet, "/v1/streams/hr-1/events", reader, nil, http.StatusOK, nil)
	after, _ := store.AuditSize(t.Context(), "acme")
	if after != before+1 {
		t.Fatalf("a read marked @audit(\"each\") left %d records, want 1 before the answer", after-before)
	}
	recs, _ := store.AuditRecords(t.Context(), "acme", before, after)
	if r, err := audit.ParseLine(recs[0]); err != nil || r.Action != "read" || r.Detail["by"] != "hr#hr-reads" {
		t.Fatalf("the read's record: %+v %v", r, err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `REVOKE INSERT ON audit_records FROM eventvault_app`); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, a.do(http.MethodGet, "/v1/streams/hr-1/events", reader, nil), http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "audit log")
}

// TestAnExportFilterNamesASubjectOnlyByItsPseudonym tries the export
// filters a DPO may mistype: the subject id itself
// (subject:jane.doe@example.com, subject:customer-881), a pseudonym cut
// short (63 hex digits) or in upper case, an id under a kind records never
// use (email:…, customer:…), and malformed names of the other kinds
// (stream:jane@x.io, token:alice, policy:Jane.Doe, consumer:jane@x), and
// then a subject id as a token id in a path (404) and in a pseudonym
// lookup (200). Each filter is 400 problem+json, the subject ones pointing
// to POST /v1/audit/pseudonym; none of the ids is recorded (no export record, and no raw
// value in the log, in the bundle or in the server's log lines). The
// pseudonym itself still filters.
func TestAnExportFilterNamesASubjectOnlyByItsPseudonym(t *testing.T) {
	onBothStores(t, testAnExportFilterNamesASubjectOnlyByItsPseudonym)
}

func testAnExportFilterNamesASubjectOnlyByItsPseudonym(t *testing.T, a *testAPI) {
	const subject = "jane.doe@example.com"
	dpo := a.eraser("acme")
	a.doJSON(http.MethodPost, "/v1/streams/owned-1/events", dpo, map[string]any{"subject": subject, "events": []any{event("A", 1)}}, http.StatusCreated, nil)
	var ps pseudonymResponse
	a.doJSON(http.MethodPost, "/v1/audit/pseudonym?tenant=acme", a.root, map[string]any{"subject": subject}, http.StatusOK, &ps)
	before := a.exportAndVerify(t, "acme")
	for _, c := range []struct{ resource, detail string }{
		{"subject:" + subject, "POST /v1/audit/pseudonym"},
		{"subject:customer-881", "POST /v1/audit/pseudonym"},
		{"subject:" + ps.Pseudonym[:63], "POST /v1/audit/pseudonym"},
		{"subject:" + strings.ToUpper(ps.Pseudonym), "POST /v1/audit/pseudonym"},
		{"email:" + subject, "subject, stream, token, policy or consumer"},
		{"customer:jane.doe", "subject, stream, token, policy or consumer"},
		{"stream:jane@x.io", "stream name"},
		{"token:alice", "token id"},
		{"policy:Jane.Doe", "policy name"},
		{"consumer:jane@x", "consumer name"},
	} {
		p := wantProblem(t, a.do(http.MethodGet, "/v1/audit/export?tenant=acme&resource="+url.QueryEscape(c.resource), a.root, nil), http.StatusBadRequest, eventvault.EINVALID, c.detail)
		if _, value, _ := strings.Cut(c.resource, ":"); strings.Contains(p.Detail, value) {
			t.Errorf("the problem for %s echoes its value: %s", c.resource, p.Detail)
		}
	}
	// Other ids a caller gives: a token id in a path that names a subject,
	// a subject id given to the pseudonym lookup (recorded by pseudonym).
	wantProblem(t, a.do(http.MethodDelete, "/v1/tokens/"+url.PathEscape("jane.doe@example.com")+"?tenant=acme", a.root, nil), http.StatusNotFound, eventvault.ENOTFOUND)
	a.doJSON(http.MethodPost, "/v1/audit/pseudonym?tenant=acme", a.root, map[string]any{"subject": "customer-881"}, http.StatusOK, nil)
	after := a.exportAndVerify(t, "acme")
	if n, m := countAction(before, "export"), countAction(after, "export"); m != n+1 {
		t.Errorf("refused filters were recorded: %d export records, then %d", n, m)
	}
	all, _ := json.Marshal(after)
	for _, leak := range []string{subject, "customer-881", "jane@x", "jane.doe", "alice", "Jane.Doe", "%40"} {
		if strings.Contains(string(all), leak) {
			t.Errorf("the audit log holds %q", leak)
		}
		if strings.Contains(a.logs.String(), leak) {
			t.Errorf("the server's log holds %q", leak)
		}
	}
	rec := a.do(http.MethodGet, "/v1/audit/export?tenant=acme&resource="+ps.Resource, a.root, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"filter":"resource=`+ps.Resource+`"`) {
		t.Fatalf("the export filtered by the pseudonym: %d %.300s", rec.Code, rec.Body)
	}
}

func countAction(recs []audit.Record, action string) (n int) {
	for _, r := range recs {
		if r.Action == action {
			n++
		}
	}
	return n
}
