package policies

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// TestDocumentedExamplesValidate parses every Cedar block of
// docs/access.md, so that the documented examples cannot drift from the
// schema, and checks the decisions the page states.
func TestDocumentedExamplesValidate(t *testing.T) {
	page, err := os.ReadFile("../docs/access.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(page), "```cedar\n")[1:] {
		block, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("an unterminated cedar block in docs/access.md")
		}
		blocks = append(blocks, block)
	}
	if len(blocks) < 5 {
		t.Fatalf("docs/access.md has %d cedar blocks; want the app, analyst, DPO, admin and support desk examples", len(blocks))
	}
	docs := map[string]*Document{}
	for i, name := range []string{"app", "analyst", "dpo", "admin", "support"} {
		d, err := Parse(name, blocks[i])
		if err != nil {
			t.Fatalf("the %s example does not validate: %v\n%s", name, err, blocks[i])
		}
		docs[name] = d
	}
	p := func(name string) eventvault.Principal {
		return eventvault.Principal{Tenant: "acme", TokenID: "tok_doc", Grants: NewSet(docs[name])}
	}
	cases := []struct {
		doc  string
		r    Request
		want bool
		by   string
	}{
		{"app", Request{Tenant: "acme", Action: Append, Stream: "order-7", EventType: "OrderPlaced"}, true, "app#orders"},
		{"app", Request{Tenant: "acme", Action: Append, Stream: "order-7", EventType: "OrderRefunded"}, false, "app#no-refunds"},
		{"app", Request{Tenant: "acme", Action: Append, Stream: "order-7", EventType: "InvoiceSent"}, false, "app#order-events-only"},
		{"app", Request{Tenant: "acme", Action: Append, Stream: "invoice-7", EventType: "OrderPlaced"}, false, ""},
		{"analyst", Request{Tenant: "acme", Action: Read, Stream: "invoice-1"}, true, "analyst#read-sales"},
		{"analyst", Request{Tenant: "acme", Action: Read, Stream: "hr-1"}, false, ""},
		{"analyst", Request{Tenant: "acme", Action: ReadAll}, false, ""},
		{"dpo", Request{Tenant: "acme", Action: Erase}, true, "dpo#requests-and-holds"},
		{"dpo", Request{Tenant: "acme", Action: SubjectRights}, true, "dpo#requests-and-holds"},
		{"dpo", Request{Tenant: "acme", Action: Shred, Stream: "hr-1"}, true, "dpo#read-and-shred-streams"},
		{"dpo", Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "X"}, false, ""},
		{"dpo", Request{Tenant: "acme", Action: ManageTokens}, false, ""},
		{"admin", Request{Tenant: "acme", Action: ManageKeys}, true, "admin#0"},
		{"admin", Request{Tenant: "globex", Action: Read, Stream: "order-1"}, false, ""},
		{"support", Request{Tenant: "acme", Action: ReadPII, Stream: "order-1", EventType: "OrderPlaced", Pointer: "/customer/phone", Class: eventvault.PIIPhone}, true, "support#phones"},
		{"support", Request{Tenant: "acme", Action: ReadPII, Stream: "order-1", EventType: "OrderPlaced", Pointer: "/customer/email", Class: eventvault.PIIEmail}, false, ""},
		{"support", Request{Tenant: "acme", Action: ReadPIIMasked, Stream: "order-1", Pointer: "/customer/email", Class: eventvault.PIIEmail}, true, "support#emails-masked"},
		{"support", Request{Tenant: "acme", Action: ReadPIIMasked, Stream: "order-1", Pointer: "/gift_to/email"}, true, "support#emails-masked"},
		{"support", Request{Tenant: "acme", Action: ReadPIIMasked, Stream: "order-1", Pointer: "/note", Class: eventvault.PIIFreeText}, false, ""},
		{"support", Request{Tenant: "acme", Action: ReadRestrictedPII, Stream: "order-1", Pointer: "/customer/phone", Class: eventvault.PIIPhone}, false, ""},
	}
	for _, c := range cases {
		d := Decide(p(c.doc), c.r)
		if d.Allowed != c.want || (c.by != "" && (len(d.By) == 0 || d.By[0] != c.by)) {
			t.Errorf("%s: %+v decided %+v; want allowed=%v by %s", c.doc, c.r, d, c.want, c.by)
		}
	}
}

// TestDocumentedCapabilitiesGrantWhatRulesGrant reads the table of
// docs/access.md that says what each capability of an inline rule grants,
// on a matching stream and, with the pattern "*", on the tenant, and
// compares it with the actions the rules are decided by (capStreamActions,
// capTenantActions): a capability or action added to one and not the
// other fails here. admin's row says "every" action, so its actions must
// hold every other capability's.
func TestDocumentedCapabilitiesGrantWhatRulesGrant(t *testing.T) {
	page, err := os.ReadFile("../docs/access.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([^|]*)\\| ([^|]*)\\|$")
	ticked := regexp.MustCompile("`([a-z_]+)`")
	actions := func(cell string) []string {
		var out []string
		for _, m := range ticked.FindAllStringSubmatch(cell, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return out
	}
	names := func(as []Action) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = string(a)
		}
		slices.Sort(out)
		return out
	}
	seen := map[eventvault.Capability]bool{}
	for _, m := range row.FindAllStringSubmatch(string(page), -1) {
		c := eventvault.Capability(m[1])
		if _, ok := capStreamActions[c]; !ok {
			if _, ok := capTenantActions[c]; !ok {
				continue // another table's row
			}
		}
		seen[c] = true
		if c == eventvault.CapAdmin {
			for other, as := range capStreamActions {
				for _, a := range as {
					if !slices.Contains(capStreamActions[c], a) {
						t.Errorf("admin's row says every stream action, but admin lacks %s, which %s grants", a, other)
					}
				}
			}
			for other, as := range capTenantActions {
				for _, a := range as {
					if !slices.Contains(capTenantActions[c], a) {
						t.Errorf("admin's row says every tenant action, but admin lacks %s, which %s grants", a, other)
					}
				}
			}
			continue
		}
		if got, want := actions(m[2]), names(capStreamActions[c]); !slices.Equal(got, want) {
			t.Errorf("docs/access.md: %s on a matching stream grants %v; the rules grant %v", c, got, want)
		}
		if got, want := actions(m[3]), names(capTenantActions[c]); !slices.Equal(got, want) {
			t.Errorf("docs/access.md: %s on \"*\" grants %v on the tenant; the rules grant %v", c, got, want)
		}
	}
	for c := range capStreamActions {
		if !seen[c] {
			t.Errorf("docs/access.md's table has no row for capability %s", c)
		}
	}
	for c := range capTenantActions {
		if !seen[c] {
			t.Errorf("docs/access.md's table has no row for capability %s", c)
		}
	}
}
