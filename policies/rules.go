package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/eventvault/eventvault"
)

// DefaultRules are given to a token created with neither rules nor
// policies: append and read on every stream of its tenant.
var DefaultRules = []eventvault.Rule{{
	Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead},
	Streams:      "*",
}}

// The actions each capability of an inline rule grants: on the streams its
// pattern matches, and, for the pattern "*", on the tenant as well. This
// is the meaning rules had before policy documents: a tenant-wide action
// needed the capability on "*", and admin granted every capability.
var (
	capStreamActions = map[eventvault.Capability][]Action{
		eventvault.CapAppend:  {Append},
		eventvault.CapRead:    {Read},
		eventvault.CapReadPII: {ReadPII},
		eventvault.CapErase:   {Shred},
		eventvault.CapAdmin:   {Append, Read, ReadPII, Shred},
	}
	capTenantActions = map[eventvault.Capability][]Action{
		eventvault.CapRead:        {ReadAll, Subscribe},
		eventvault.CapReadPII:     {ReadPII},
		eventvault.CapErase:       {Erase, Hold, SubjectRights},
		eventvault.CapAuditExport: {AuditExport},
		eventvault.CapAdmin:       {ReadAll, ReadPII, Erase, Hold, SubjectRights, AuditExport, ManageTokens, ManagePolicies, ManageKeys, Subscribe, ManageSubscriptions},
	}
)

// MaxRules bounds the rules of one token.
const MaxRules = 64

// patternRE is the alphabet of stream names plus '*': a pattern with any
// other byte could never match a stream, and a NUL byte could not even be
// stored by PostgreSQL. It also keeps a pattern safe to write into a Cedar
// string literal.
var patternRE = regexp.MustCompile(`^[A-Za-z0-9_.:*-]+$`)

// ValidateRules returns EINVALID for an unknown capability, an empty or
// over-long pattern, a pattern with a byte no stream name holds, or too
// many rules, naming the rule's field by its JSON Pointer in a token
// request's body (Fields["pointer"], such as "/rules/0/streams").
func ValidateRules(rules []eventvault.Rule) error {
	if len(rules) > MaxRules {
		return eventvault.FieldErrorf("/rules", "%d rules given; the limit is %d", len(rules), MaxRules)
	}
	for i, r := range rules {
		if r.Streams == "" || len(r.Streams) > eventvault.MaxStreamNameLength {
			return eventvault.FieldErrorf(fmt.Sprintf("/rules/%d/streams", i), "rules[%d].streams must be a pattern of 1 to %d characters, such as \"order-*\" or \"*\"", i, eventvault.MaxStreamNameLength)
		}
		if !patternRE.MatchString(r.Streams) {
			return eventvault.FieldErrorf(fmt.Sprintf("/rules/%d/streams", i), "rules[%d].streams holds a character no stream name has: use letters, digits, '_', '.', ':', '-' and '*'", i)
		}
		if len(r.Capabilities) == 0 {
			return eventvault.FieldErrorf(fmt.Sprintf("/rules/%d/capabilities", i), "rules[%d].capabilities is empty: name at least one of append, read, read_pii, erase, audit_export, admin", i)
		}
		for j, c := range r.Capabilities {
			if _, ok := capTenantActions[c]; !ok {
				if _, ok := capStreamActions[c]; !ok {
					return eventvault.FieldErrorf(fmt.Sprintf("/rules/%d/capabilities/%d", i, j), "rules[%d]: unknown capability %q: use append, read, read_pii, erase, audit_export or admin", i, eventvault.Truncate(string(c), 40))
				}
			}
		}
	}
	return nil
}

// RulesDocumentName names the document FromRules writes in decisions
// ("token-rules#rule-0").
const RulesDocumentName = "token-rules"

// FromRules writes the policy document equivalent to an API token's
// inline rules: for each rule, one permit of the actions its capabilities
// grant on the streams its pattern matches (Cedar's like, where '*'
// matches any run of characters, as in rules), and for a rule on "*" one
// more of its tenant-wide actions. rules must be valid (ValidateRules).
// The document is how `eventvault token list` shows a token's rules and
// how a tenant moves them into a named document.
func FromRules(rules []eventvault.Rule) string {
	var b strings.Builder
	for i, r := range rules {
		var streamActs, tenantActs []Action
		for _, c := range r.Capabilities {
			streamActs = append(streamActs, capStreamActions[c]...)
			if r.Streams == "*" {
				tenantActs = append(tenantActs, capTenantActions[c]...)
			}
		}
		if len(streamActs) > 0 {
			fmt.Fprintf(&b, "@id(\"rule-%d\")\npermit (\n  principal,\n  action in %s,\n  resource is Stream\n)", i, actionList(streamActs))
			if r.Streams != "*" {
				fmt.Fprintf(&b, "\nwhen { resource.name like %q }", r.Streams)
			}
			b.WriteString(";\n\n")
		}
		if len(tenantActs) > 0 {
			fmt.Fprintf(&b, "@id(\"rule-%d-tenant\")\npermit (\n  principal,\n  action in %s,\n  resource is Tenant\n);\n\n", i, actionList(tenantActs))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func actionList(acts []Action) string {
	slices.Sort(acts)
	acts = slices.Compact(acts)
	parts := make([]string, len(acts))
	for i, a := range acts {
		parts[i] = fmt.Sprintf("Action::%q", string(a))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// rulesCache holds the compiled Set of each distinct rule list a token
// has presented, keyed by the list's text: tokens share a handful of rule
// lists, so it stays small; it is bounded all the same.
var rulesCache struct {
	sync.Mutex
	m map[string]*Set
}

const maxRulesCache = 4096

// rulesSet returns the compiled Set of rules; an empty Set (which denies
// everything) for none.
func rulesSet(rules []eventvault.Rule) *Set {
	text := FromRules(rules)
	rulesCache.Lock()
	s, ok := rulesCache.m[text]
	rulesCache.Unlock()
	if ok {
		return s
	}
	s = NewSet()
	if text != "" {
		d, err := Parse(RulesDocumentName, text)
		if err != nil {
			// Unreachable for valid rules; deny rather than guess.
			return NewSet()
		}
		s = NewSet(d)
	}
	rulesCache.Lock()
	if rulesCache.m == nil || len(rulesCache.m) >= maxRulesCache {
		rulesCache.m = map[string]*Set{}
	}
	rulesCache.m[text] = s
	rulesCache.Unlock()
	return s
}

// RulesSet compiles a token's inline rules with the documents docs: the
// Set of a principal that has both.
func RulesSet(rules []eventvault.Rule, docs ...*Document) *Set {
	if len(rules) == 0 {
		return NewSet(docs...)
	}
	text := FromRules(rules)
	d, err := Parse(RulesDocumentName, text)
	if err != nil {
		return NewSet(docs...)
	}
	return NewSet(append([]*Document{d}, docs...)...)
}
