package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAuditExportCommandVerifies runs the operator's path: an action
// recorded from the command line and a server started and stopped, then
// 'audit export' of the tenant's log and of the deployment's own, each checked by 'audit verify' against the
// verifier key the export printed.
func TestAuditExportCommandVerifies(t *testing.T) {
	dir := t.TempDir()
	store := []string{"-dev", "-data-dir", dir}
	var out, errb bytes.Buffer
	if code := run(t.Context(), append([]string{"token", "create", "-tenant", "acme", "-name", "ops"}, store...), &out, &errb); code != 0 {
		t.Fatalf("token create: %d %s", code, errb.String())
	}
	// A server's start and stop go to the deployment's own log.
	_, _, stop := startDev(t, dir)
	stop()
	for _, tenant := range []string{"acme", "_deployment"} {
		bundle := exportAndVerifyAudit(t, tenant, store)
		b, _ := os.ReadFile(bundle)
		if tenant == "acme" {
			out.Reset()
			if code := run(t.Context(), append([]string{"audit", "processing", "-tenant", "acme"}, store...), &out, &errb); code != 0 || !strings.Contains(out.String(), `"audit_exports": 1`) {
				t.Errorf("audit processing: %d %s %s", code, out.String(), errb.String())
			}
		}
		want := map[string]string{"acme": `"action":"token_issued","resource":"token:tok_`, "_deployment": `"action":"node_stopped"`}[tenant]
		if !strings.Contains(string(b), want) {
			t.Errorf("the log of %s lacks %s:\n%s", tenant, want, b)
		}
	}
}

var verifierKeyRE = regexp.MustCompile(`verifier key of this log \(pin it once, from a channel you trust\): (\S+)`)

// exportAndVerifyAudit runs 'audit export' of tenant's log with storeArgs
// (the store's flags) and 'audit verify' of the bundle against the
// verifier key the export printed, as an auditor would, failing t unless
// both succeed. It returns the bundle's path.
func exportAndVerifyAudit(t *testing.T, tenant string, storeArgs []string) string {
	t.Helper()
	dir := t.TempDir()
	bundle := filepath.Join(dir, tenant+".jsonl")
	var out, errb bytes.Buffer
	if code := run(t.Context(), append([]string{"audit", "export", "-tenant", tenant, "-o", bundle}, storeArgs...), &out, &errb); code != 0 {
		t.Fatalf("audit export -tenant %s: %d %s", tenant, code, errb.String())
	}
	m := verifierKeyRE.FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("audit export printed no verifier key: %s", errb.String())
	}
	keyFile := filepath.Join(dir, tenant+".vkey")
	if err := os.WriteFile(keyFile, []byte(m[1]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run(t.Context(), []string{"audit", "verify", bundle, "-public-key", keyFile}, &out, &errb); code != 0 {
		t.Fatalf("audit verify of %s: %d %s %s", tenant, code, out.String(), errb.String())
	}
	return bundle
}
