package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/policies"
)

const policyUsage = `usage:
  eventvault policy validate -dir <dir>
      parse and validate every document of a policy folder, laid out as
      <dir>/<tenant>/<name>.cedar, as the server's -policy-dir loads it;
      prints each document's statements, or the file, line and reason of
      the first that fails; a folder with no document there fails too
  eventvault policy explain -dir <dir> -tenant <t> [-policies a,b] [-rules '<json>']
                            -action <action> [-stream <stream>] [-event-type <type>]
                            [-pointer <JSON Pointer>] [-class <class>]
      decide one request offline, as a server would for a caller holding
      those documents (all of the tenant's in -dir when -policies is not
      given) and those inline rules, and name the statement that decided;
      exits 0 when the request is allowed and 3 when it is denied
  eventvault policy from-rules -rules '<json>'
      print the policy document equivalent to an API token's inline rules,
      to move a token from rules to a named document

Actions: append, read, shred (stream actions: give -stream; append also
takes -event-type), read_pii, read_pii_masked, read_restricted_pii (per
field: -stream and -event-type optional), read_all, erase, hold,
subject_rights, audit_export, manage_tokens, manage_policies, manage_keys
(tenant-wide). The schema the
documents are validated against is served at GET /v1/policy-schema.
Nothing here opens the database or the root of trust.
`

// errDenied makes the command exit with exitDenied.
var errDenied = errors.New("denied")

const exitDenied = 3

func runPolicy(args []string, stdout, stderr io.Writer) error {
	commands := []string{"validate", "explain", "from-rules"}
	if len(args) == 0 || !slices.Contains(commands, args[0]) {
		fmt.Fprint(stderr, policyUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("say what to do: validate, explain or from-rules")
	}
	what := args[0]
	fs := flag.NewFlagSet("policy "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, policyUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	var dir, tenant, names, rulesJSON, action, stream, eventType string
	var field piiField
	switch what {
	case "validate":
		fs.StringVar(&dir, "dir", "", "the policy folder (required)")
	case "explain":
		fs.StringVar(&dir, "dir", "", "the policy folder, <dir>/<tenant>/<name>.cedar")
		fs.StringVar(&tenant, "tenant", "", "the caller's tenant (required)")
		fs.StringVar(&names, "policies", "", "the caller's documents, comma-separated; without it, all of the tenant's in -dir, or none when -rules is given")
		fs.StringVar(&rulesJSON, "rules", "", `the caller's inline rules, as JSON: [{"capabilities":["read"],"streams":"order-*"}]`)
		fs.StringVar(&action, "action", "", "the action to decide (required)")
		fs.StringVar(&stream, "stream", "", "the stream, for stream actions")
		fs.StringVar(&eventType, "event-type", "", "the type of the appended events, for append; of the event holding the value, for the personal data actions")
		fs.StringVar(&field.pointer, "pointer", "", "the value's JSON Pointer in the event's data, for the personal data actions")
		fs.StringVar(&field.class, "class", "", "the value's class (email, phone, address, free_text), for the personal data actions")
	case "from-rules":
		fs.StringVar(&rulesJSON, "rules", "", "the token's rules, as JSON (required)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch what {
	case "validate":
		return policyValidate(dir, stdout)
	case "from-rules":
		rules, err := parseRules(rulesJSON)
		if err != nil {
			return err
		}
		if rules == nil {
			return errors.New("-rules is required")
		}
		fmt.Fprintln(stdout, policies.FromRules(rules))
		return nil
	}
	return policyExplain(dir, tenant, names, rulesJSON, action, stream, eventType, field, stdout, stderr)
}

func parseRules(text string) ([]eventvault.Rule, error) {
	if text == "" {
		return nil, nil
	}
	var rules []eventvault.Rule
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf(`-rules must be a JSON array of rules such as [{"capabilities":["read"],"streams":"order-*"}]: %w`, err)
	}
	if len(rules) == 0 {
		return nil, errors.New("-rules is an empty list, which would grant nothing: name at least one rule")
	}
	if err := policies.ValidateRules(rules); err != nil {
		return nil, fmt.Errorf("-rules: %w", err)
	}
	return rules, nil
}

func policyValidate(dir string, stdout io.Writer) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	docs, err := readPolicyDir(dir)
	if err != nil {
		return err
	}
	for _, d := range docs {
		parsed, _ := policies.Parse(d.Name, d.Body)
		fmt.Fprintf(stdout, "%s: tenant %s, policy %s, %d statements: valid\n", d.Path, d.Tenant, d.Name, parsed.Len())
	}
	fmt.Fprintf(stdout, "%d documents valid\n", len(docs))
	return nil
}

// readPolicyDir reads the documents of a policy folder for the offline
// commands, which check what a server would load: a folder in which they
// find none is an error, since a CI gate that passes on a wrong path (the
// repository's root, a folder without tenant folders) checks nothing.
func readPolicyDir(dir string) ([]policies.FileDocument, error) {
	docs, err := policies.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s holds no policy document: documents are read from %s, one folder per tenant (the files at its top, such as a README.md, are skipped)", dir, policies.Layout(dir))
	}
	return docs, nil
}

// piiField is the field a personal data action is decided for.
type piiField struct{ pointer, class string }

func policyExplain(dir, tenant, names, rulesJSON, action, stream, eventType string, field piiField, stdout, stderr io.Writer) error {
	if tenant == "" || action == "" {
		return errors.New("-tenant and -action are required")
	}
	if err := eventvault.ValidateTenant(eventvault.TenantID(tenant)); err != nil {
		return err
	}
	a := policies.Action(action)
	if !slices.Contains(policies.Actions, a) {
		return fmt.Errorf("unknown -action %q: use one of %s", action, actionNames())
	}
	if a.OnStream() {
		if stream == "" {
			return fmt.Errorf("-stream is required: %s is a stream action", action)
		}
		if err := eventvault.ValidateStream(eventvault.StreamName(stream)); err != nil {
			return fmt.Errorf("-stream: %w", err)
		}
	} else if stream != "" && !a.IsPII() {
		return fmt.Errorf("%s is a tenant-wide action: it takes no -stream", action)
	}
	if eventType != "" && a != policies.Append && !a.IsPII() {
		return errors.New("-event-type is for -action append and the personal data actions only")
	}
	if (field.pointer != "" || field.class != "") && !a.IsPII() {
		return errors.New("-pointer and -class are for the personal data actions only")
	}
	if !eventvault.ValidPIIClass(eventvault.PIIClass(field.class)) {
		return errors.New("-class must be email, phone, address or free_text")
	}
	if eventType == "" && a == policies.Append {
		return errors.New("-event-type is required with -action append: an append is decided per event type")
	}
	rules, err := parseRules(rulesJSON)
	if err != nil {
		return err
	}
	var docs []*policies.Document
	if dir != "" {
		files, err := readPolicyDir(dir)
		if err != nil {
			return err
		}
		// Without -policies, the tenant's every document, unless -rules
		// models a token that has rules only.
		want := map[string]bool{}
		if names == "" && rules != nil {
			names = "-"
		}
		if names != "" && names != "-" {
			for _, n := range strings.Split(names, ",") {
				want[n] = true
			}
		}
		for _, f := range files {
			if string(f.Tenant) != tenant || names != "" && !want[f.Name] {
				continue
			}
			d, _ := policies.Parse(f.Name, f.Body)
			docs = append(docs, d)
			delete(want, f.Name)
		}
		for n := range want {
			return fmt.Errorf("-policies names %s, which is not in %s", n, filepath.Join(dir, tenant))
		}
	} else if names != "" {
		return errors.New("-policies needs -dir, the folder that holds them")
	}
	if len(docs) == 0 && rules == nil {
		fmt.Fprintln(stderr, "eventvault policy explain: the caller holds no document and no rule, so every request is denied")
	}
	set := policies.RulesSet(rules, docs...)
	p := eventvault.Principal{Tenant: eventvault.TenantID(tenant), TokenID: "tok_explain", Name: "explain", Grants: set}
	d := policies.Decide(p, policies.Request{Tenant: p.Tenant, Action: a, Stream: eventvault.StreamName(stream), EventType: eventType,
		Pointer: field.pointer, Class: eventvault.PIIClass(field.class)})
	fmt.Fprintf(stdout, "documents: %s\n", listOrNone(set.Documents()))
	if d.Allowed {
		fmt.Fprintln(stdout, "decision: ALLOW")
	} else {
		fmt.Fprintln(stdout, "decision: DENY")
	}
	slices.Sort(d.By)
	for _, id := range d.By {
		effect, line, _ := set.Statement(id)
		doc, _, _ := strings.Cut(id, "#")
		fmt.Fprintf(stdout, "decided by: %s (%s, %s.cedar line %d)\n", id, effect, doc, line)
	}
	for _, id := range d.Errors {
		fmt.Fprintf(stdout, "failed to evaluate, which denies: %s\n", id)
	}
	if len(d.By) == 0 && len(d.Errors) == 0 {
		fmt.Fprintf(stdout, "reason: %s\n", d.Reason)
	}
	if !d.Allowed {
		return errDenied
	}
	return nil
}

func actionNames() string {
	var out []string
	for _, a := range policies.Actions {
		out = append(out, string(a))
	}
	return strings.Join(out, ", ")
}
