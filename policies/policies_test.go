package policies

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eventvault/eventvault"
)

// legacyAllows is how inline rules decided before policy documents (the
// code this package had), kept here as the oracle that FromRules must
// match: a capability on a stream needs a rule granting it (or admin) on a
// matching pattern; a tenant-wide capability (stream "") needs it on "*".
func legacyAllows(p eventvault.Principal, tenant eventvault.TenantID, c eventvault.Capability, stream eventvault.StreamName) bool {
	if p.Root {
		return true
	}
	if p.Tenant != tenant || p.Tenant == "" {
		return false
	}
	for _, r := range p.Rules {
		granted := false
		for _, have := range r.Capabilities {
			if have == c || have == eventvault.CapAdmin {
				granted = true
			}
		}
		if !granted {
			continue
		}
		if stream == "" {
			if r.Streams == "*" {
				return true
			}
			continue
		}
		if legacyMatch(r.Streams, string(stream)) {
			return true
		}
	}
	return false
}

func legacyMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(name, part)
		if i < 0 {
			return false
		}
		name = name[i+len(part):]
	}
	return strings.HasSuffix(name, last)
}

// legacyRequests are the actions each old capability check became: the
// same call sites now ask for these.
var legacyRequests = []struct {
	c      eventvault.Capability
	stream bool
	action Action
}{
	{eventvault.CapAppend, true, Append},
	{eventvault.CapRead, true, Read},
	{eventvault.CapErase, true, Shred},
	{eventvault.CapReadPII, true, ReadPII},
	{eventvault.CapRead, false, ReadAll},
	{eventvault.CapErase, false, Erase},
	{eventvault.CapErase, false, Hold},
	{eventvault.CapAuditExport, false, AuditExport},
	{eventvault.CapReadPII, false, ReadPII},
	{eventvault.CapAdmin, false, ManageTokens},
	{eventvault.CapAdmin, false, ManagePolicies},
	{eventvault.CapAdmin, false, ManageKeys},
}

// TestRulesKeepTheirMeaning generates rule lists and requests and checks
// that the policy FromRules writes decides every request as the rules did.
func TestRulesKeepTheirMeaning(t *testing.T) {
	caps := []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead, eventvault.CapReadPII, eventvault.CapErase, eventvault.CapAuditExport, eventvault.CapAdmin}
	patterns := []string{"*", "order-*", "order-42", "*-42", "a*b*c", "order-4*2", "inv*"}
	streams := []eventvault.StreamName{"order-42", "order-1", "invoice-42", "axxbyyc", "axxcyyb", "order-4x2", "order", "inv"}
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for i := 0; i < 300; i++ {
		var rules []eventvault.Rule
		for n := rng.IntN(3) + 1; n > 0; n-- {
			var cs []eventvault.Capability
			for m := rng.IntN(2) + 1; m > 0; m-- {
				cs = append(cs, caps[rng.IntN(len(caps))])
			}
			rules = append(rules, eventvault.Rule{Capabilities: cs, Streams: patterns[rng.IntN(len(patterns))]})
		}
		if err := ValidateRules(rules); err != nil {
			t.Fatalf("generated invalid rules %v: %v", rules, err)
		}
		p := eventvault.Principal{Tenant: "acme", TokenID: "tok", Rules: rules}
		for _, tenant := range []eventvault.TenantID{"acme", "globex"} {
			for _, lr := range legacyRequests {
				targets := []eventvault.StreamName{""}
				if lr.stream {
					targets = streams
				}
				for _, s := range targets {
					want := legacyAllows(p, tenant, lr.c, s)
					got := Decide(p, Request{Tenant: tenant, Action: lr.action, Stream: s, EventType: "OrderPlaced"})
					if got.Allowed != want {
						t.Fatalf("rules %+v, %s on %q in %s: policy says %v, rules said %v\npolicy:\n%s", rules, lr.action, s, tenant, got.Allowed, want, FromRules(rules))
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d decisions compared", checked)
}

func TestFromRulesWritesAValidDocument(t *testing.T) {
	rules := []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead}, Streams: "order-*"},
		{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"},
	}
	text := FromRules(rules)
	if _, err := Parse("migrated", text); err != nil {
		t.Fatalf("FromRules wrote a document that does not validate: %v\n%s", err, text)
	}
	for _, want := range []string{`resource.name like "order-*"`, `Action::"manage_tokens"`, `@id("rule-0")`} {
		if !strings.Contains(text, want) {
			t.Errorf("FromRules lacks %s:\n%s", want, text)
		}
	}
}

func mustParse(t *testing.T, name, body string) *Document {
	t.Helper()
	d, err := Parse(name, body)
	if err != nil {
		t.Fatalf("Parse %s: %v", name, err)
	}
	return d
}

func withDocs(t *testing.T, docs ...*Document) eventvault.Principal {
	t.Helper()
	return eventvault.Principal{Tenant: "acme", TokenID: "tok_1", Name: "app", Grants: NewSet(docs...)}
}

func TestDocumentsDecide(t *testing.T) {
	app := mustParse(t, "app", `
@id("orders")
permit (principal, action in [Action::"append", Action::"read"], resource is Stream)
when { resource.category == "order" };

@id("no-refunds")
forbid (principal, action == Action::"append", resource)
when { context.event_type == "RefundIssued" };
`)
	analyst := mustParse(t, "analyst", `
permit (principal, action == Action::"read", resource);
`)
	types := mustParse(t, "types", `
permit (principal, action == Action::"append", resource is Stream)
when { resource.name like "order-*" && context.event_type like "Order*" };
`)
	cases := []struct {
		name string
		p    eventvault.Principal
		r    Request
		want bool
		by   string
	}{
		{"permit by category", withDocs(t, app), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "OrderPlaced"}, true, "app#orders"},
		{"other category", withDocs(t, app), Request{Tenant: "acme", Action: Append, Stream: "invoice-1", EventType: "OrderPlaced"}, false, ""},
		{"forbid overrides permit", withDocs(t, app), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "RefundIssued"}, false, "app#no-refunds"},
		{"forbid does not touch read", withDocs(t, app), Request{Tenant: "acme", Action: Read, Stream: "order-1"}, true, "app#orders"},
		{"read is not read_all", withDocs(t, analyst), Request{Tenant: "acme", Action: ReadAll}, false, ""},
		{"read any stream", withDocs(t, analyst), Request{Tenant: "acme", Action: Read, Stream: "invoice-9"}, true, "analyst#0"},
		{"analyst cannot append", withDocs(t, analyst), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "X"}, false, ""},
		{"event type allowed", withDocs(t, types), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "OrderShipped"}, true, "types#0"},
		{"event type refused", withDocs(t, types), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "Shipped"}, false, ""},
		{"documents add up", withDocs(t, analyst, types), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "OrderShipped"}, true, "types#0"},
		{"forbid of one document beats permit of another", withDocs(t, analyst, types, app), Request{Tenant: "acme", Action: Append, Stream: "order-1", EventType: "RefundIssued"}, false, "app#no-refunds"},
		{"never another tenant", withDocs(t, analyst), Request{Tenant: "globex", Action: Read, Stream: "order-1"}, false, ""},
		{"no documents: deny", withDocs(t), Request{Tenant: "acme", Action: Read, Stream: "order-1"}, false, ""},
		{"no tenant: deny", eventvault.Principal{Grants: NewSet(analyst)}, Request{Tenant: "", Action: Read, Stream: "order-1"}, false, ""},
		{"root everywhere", eventvault.Principal{Root: true}, Request{Tenant: "globex", Action: ManageKeys}, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.p, c.r)
			if d.Allowed != c.want {
				t.Fatalf("Decide = %+v, want allowed=%v", d, c.want)
			}
			if c.by != "" && (len(d.By) != 1 || d.By[0] != c.by) {
				t.Errorf("decided by %v, want %s", d.By, c.by)
			}
			err := Authorize(c.p, c.r)
			if c.want != (err == nil) {
				t.Fatalf("Authorize = %v, want allowed=%v", err, c.want)
			}
			if err != nil {
				if eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
					t.Errorf("code %s, want forbidden", eventvault.ErrorCode(err))
				}
				if c.by != "" && !strings.Contains(err.Error(), c.by) {
					t.Errorf("the error %q does not name the forbid %s", err, c.by)
				}
			}
		})
	}
}

// TestParseRefusesBadDocuments: each input is 400 material, with the
// line and a reason.
func TestParseRefusesBadDocuments(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
	}{
		{"syntax", "permit (principal, action, resource)\nwhen { resource.name == ", []string{"does not parse", "line 2"}},
		{"empty", "  // nothing\n", []string{"holds no statement"}},
		{"unknown action", `permit (principal, action == Action::"fly", resource);`, []string{"line 1", `unrecognized action`}},
		{"event type on read", "\n\npermit (principal, action == Action::\"read\", resource)\nwhen { context.event_type == \"X\" };", []string{"line 3", "event_type"}},
		{"stream attribute on a tenant action", `permit (principal, action == Action::"read_all", resource) when { resource.name == "x" };`, []string{"name", "Tenant"}},
		{"unknown attribute", `permit (principal, action == Action::"read", resource) when { resource.owner == "x" };`, []string{"owner"}},
		{"wrong type", `permit (principal, action == Action::"read", resource) when { resource.name == 1 };`, []string{"does not validate"}},
		{"duplicate id", "@id(\"a\")\npermit (principal, action, resource);\n@id(\"a\")\nforbid (principal, action, resource);", []string{"used twice"}},
		{"NUL", "permit (principal, action, resource);\x00", []string{"NUL"}},
		{"too large", strings.Repeat("// padding\n", MaxDocumentBytes/10), []string{"limit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("doc", c.body)
			if eventvault.ErrorCode(err) != eventvault.EINVALID {
				t.Fatalf("Parse = %v, want EINVALID", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	for _, name := range []string{"", "App", "a b", "../x", strings.Repeat("a", MaxDocumentNameLength+1), "-x"} {
		if _, err := Parse(name, `permit (principal, action, resource);`); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("Parse(name %q) = %v, want EINVALID", name, err)
		}
	}
}

// TestParseErrorsAreSentences: cedar-go's parse errors come out as what
// was expected, where (line and column of the culprit) and what was found,
// never as the parser's own words ("exact got  want )"). It tries an
// unclosed scope, a missing ';', a missing ',', a wrong effect, a
// truncated condition, an unclosed string, a bad escape, an annotation
// without a string, a list without ',', a statement cut after unless, a
// number out of range and a reason it does not translate (a duplicate
// key), on line 1 and on line 3.
func TestParseErrorsAreSentences(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`permit (principal, action, resource`, "expected ')' at line 1, column 36, where the policy ends"},
		{`permit (principal, action, resource)`, "expected ';' at line 1, column 37, where the policy ends"},
		{`permit (principal action, resource);`, "expected ',' at line 1, column 19, found 'action'"},
		{"\n\nallow (principal, action, resource);", "a statement starts with permit or forbid, found 'allow' at line 3, column 1"},
		{"permit (principal, action, resource)\nwhen { resource.name == ", "expected a value (a literal, an entity such as Stream::\"order-1\", principal, action, resource or context) at line 2, column 25, where the policy ends"},
		{`permit (principal, action, resource) when { resource.name == "x };`, `a string is not closed with '"' at line 1, column 62`},
		{`permit (principal, action, resource) when { "\q" };`, `a string holds an invalid escape after '\' at line 1, column 45`},
		{`@id(1) permit (principal, action, resource);`, "expected a string in double quotes just before ')' at line 1, column 6"},
		{`permit (principal, action, resource) when { [1 2] };`, "expected ',' at line 1, column 48, found '2'"},
		{"permit (principal, action, resource)\n\nunless resource;", "expected '{' at line 3, column 8, found 'resource'"},
		{`permit (principal, action, resource) when { 99999999999999999999 };`, "an integer is out of range: Cedar's integers are 64-bit"},
		{`permit (principal, action, resource) when { {a:1, a:2} };`, "duplicate key: a just before '}' at line 1, column 54"},
	} {
		_, err := Parse("doc", c.body)
		if eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Fatalf("Parse(%q) = %v, want EINVALID", c.body, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "policy doc does not parse: "+c.want) {
			t.Errorf("Parse(%q):\n got %q\nwant %q", c.body, msg, c.want)
		}
		for _, raw := range []string{"exact got", " want ", "  ", "<input>", "parse error at"} {
			if strings.Contains(msg, raw) {
				t.Errorf("Parse(%q) = %q: holds the parser's %q", c.body, msg, raw)
			}
		}
	}
}

func TestValidateRules(t *testing.T) {
	bad := [][]eventvault.Rule{
		{{Capabilities: []eventvault.Capability{"fly"}, Streams: "*"}},
		{{Capabilities: nil, Streams: "*"}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: ""}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "order-\x00*"}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "order-é*"}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: `order-"*`}},
	}
	for i, rules := range bad {
		if err := ValidateRules(rules); eventvault.ErrorCode(err) != eventvault.EINVALID {
			t.Errorf("case %d: ValidateRules = %v, want EINVALID", i, err)
		}
	}
	if err := ValidateRules(DefaultRules); err != nil {
		t.Errorf("DefaultRules invalid: %v", err)
	}
}

// TestPersonalDataActions: the per-field actions of personal data decide
// on the field's context; inline rules keep their meaning (read_pii on
// the pattern's streams, whatever the field) and grant neither masking nor
// restricted values; the root token reads everything but a restricted
// subject's values; the field context exists for the PII actions only.
func TestPersonalDataActions(t *testing.T) {
	field := Request{Tenant: "acme", Stream: "order-1", EventType: "OrderPlaced", Pointer: "/email", Class: eventvault.PIIEmail}
	with := func(a Action) Request { r := field; r.Action = a; return r }
	rules := eventvault.Principal{Tenant: "acme", TokenID: "tok", Rules: []eventvault.Rule{{Capabilities: []eventvault.Capability{eventvault.CapRead, eventvault.CapReadPII}, Streams: "order-*"}}}
	root := eventvault.Principal{Root: true, Tenant: "acme"}
	byClass := withDocs(t, mustParse(t, "desk", `permit (principal, action == Action::"read_pii", resource) when { context.class == "phone" && context.event_type == "OrderPlaced" };`))
	for _, c := range []struct {
		name string
		p    eventvault.Principal
		r    Request
		want bool
	}{
		{"rules read_pii", rules, with(ReadPII), true},
		{"rules read_pii elsewhere", rules, func() Request { r := with(ReadPII); r.Stream = "invoice-1"; return r }(), false},
		{"rules never mask", rules, with(ReadPIIMasked), false},
		{"rules never restricted", rules, with(ReadRestrictedPII), false},
		{"root reads", root, with(ReadPII), true},
		{"root not restricted", root, with(ReadRestrictedPII), false},
		{"by class: email", byClass, with(ReadPII), false},
		{"by class: phone", byClass, func() Request { r := with(ReadPII); r.Class = eventvault.PIIPhone; return r }(), true},
	} {
		if got := Decide(c.p, c.r).Allowed; got != c.want {
			t.Errorf("%s: allowed %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := Parse("bad", `permit (principal, action == Action::"read", resource) when { context.pointer == "/email" };`); err == nil {
		t.Error("context.pointer on read validated; it exists for the personal data actions only")
	}
}

// FuzzParseErrorDescription: whatever the document, Parse never panics
// describing cedar-go's error (findBefore and offsetOf index the body by
// the error's line and column), and never passes on the parser's raw
// words for the errors it translates.
func FuzzParseErrorDescription(f *testing.F) {
	for _, s := range []string{`permit (principal, action, resource`, "permit (principal action, resource);", "\n\nallow (principal, action, resource);",
		`permit (principal, action, resource) when { "\q" };`, "permit (principal, action, resource)\n\nunless resource;", "é\n\tpermit (", "permit (principal, action, resource) when { [1 2] };"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		_, err := Parse("doc", body)
		if err != nil && strings.Contains(err.Error(), "exact got") {
			t.Fatalf("Parse(%q) = %q: the parser's raw words", body, err)
		}
	})
}

// TestRememberedDecisionsAreThePrincipalsAndTheRequests decides, on one
// Set shared by several principals (JWT users of one group share one), for
// principals and requests that differ in one part each, in both orders:
// a decision remembered for one is never the answer to another, and a
// caller changing a decision it got does not change the next.
func TestRememberedDecisionsAreThePrincipalsAndTheRequests(t *testing.T) {
	doc, err := Parse("who", `permit (principal == Token::"tok_a", action == Action::"read_pii", resource) when { context.pointer == "/email" };
permit (principal == User::"iss#bob", action == Action::"read_pii", resource) when { context.class == "phone" };
permit (principal, action == Action::"read", resource) when { principal.name == "reader" };`)
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(doc)
	a := eventvault.Principal{Tenant: "acme", TokenID: "tok_a", Grants: set}
	b := eventvault.Principal{Tenant: "acme", TokenID: "tok_b", Grants: set}
	bob := eventvault.Principal{Tenant: "acme", Subject: "iss#bob", Grants: set}
	eve := eventvault.Principal{Tenant: "acme", Subject: "iss#eve", Grants: set}
	reader := eventvault.Principal{Tenant: "acme", TokenID: "tok_c", Name: "reader", Grants: set}
	writer := eventvault.Principal{Tenant: "acme", TokenID: "tok_c", Name: "writer", Grants: set}
	email := Request{Tenant: "acme", Action: ReadPII, Stream: "customer-1", Pointer: "/email", Class: eventvault.PIIEmail}
	phone := Request{Tenant: "acme", Action: ReadPII, Stream: "customer-1", Pointer: "/phone", Class: eventvault.PIIPhone}
	read := Request{Tenant: "acme", Action: Read, Stream: "customer-1"}
	cases := []struct {
		name string
		p    eventvault.Principal
		r    Request
		want bool
	}{
		{"tok_a, email", a, email, true},
		{"tok_b, email", b, email, false},
		{"tok_a, phone", a, phone, false},
		{"bob, phone", bob, phone, true},
		{"eve, phone", eve, phone, false},
		{"bob, email", bob, email, false},
		{"reader, read", reader, read, true},
		{"writer, read", writer, read, false},
	}
	for round := range 3 {
		for i := range cases {
			c := cases[(i*(round+1))%len(cases)] // another order each round
			d := Decide(c.p, c.r)
			if d.Allowed != c.want {
				t.Fatalf("round %d, %s: allowed %v, want %v", round, c.name, d.Allowed, c.want)
			}
			if d.Allowed {
				d.By[0] = "changed by the caller"
			}
		}
	}
	if d := Decide(a, email); len(d.By) != 1 || !strings.HasPrefix(d.By[0], "who#") {
		t.Fatalf("a remembered decision changed by a caller: %+v", d)
	}
}
