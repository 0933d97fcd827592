// Package policies decides what a principal may do. Deny by default: a
// principal may exercise a capability on a stream only if one of its rules
// grants that capability on a pattern the stream's name matches, and only
// within its own tenant. The dev root token is admin over every tenant.
//
// This is the seam later issues refine (declarative policy documents, PII,
// erasure and audit capabilities); today rules travel with the API token.
package policies

import (
	"regexp"
	"strings"

	"github.com/eventvault/eventvault"
)

// DefaultRules are given to a token created without rules: append and read
// on every stream of its tenant.
var DefaultRules = []eventvault.Rule{{
	Capabilities: []eventvault.Capability{eventvault.CapAppend, eventvault.CapRead},
	Streams:      "*",
}}

var known = map[eventvault.Capability]bool{
	eventvault.CapAppend:      true,
	eventvault.CapRead:        true,
	eventvault.CapReadPII:     true,
	eventvault.CapErase:       true,
	eventvault.CapAuditExport: true,
	eventvault.CapAdmin:       true,
}

// MaxRules bounds the rules of one token.
const MaxRules = 64

// patternRE is the alphabet of stream names plus '*': a pattern with any
// other byte could never match a stream, and a NUL byte could not even be
// stored by PostgreSQL.
var patternRE = regexp.MustCompile(`^[A-Za-z0-9_.:*-]+$`)

// ValidateRules returns EINVALID for an unknown capability, an empty or
// over-long pattern, a pattern with a byte no stream name holds, or too
// many rules.
func ValidateRules(rules []eventvault.Rule) error {
	if len(rules) > MaxRules {
		return eventvault.Errorf(eventvault.EINVALID, "%d rules given; the limit is %d", len(rules), MaxRules)
	}
	for i, r := range rules {
		if r.Streams == "" || len(r.Streams) > eventvault.MaxStreamNameLength {
			return eventvault.Errorf(eventvault.EINVALID, "rules[%d].streams must be a pattern of 1 to %d characters, such as \"order-*\" or \"*\"", i, eventvault.MaxStreamNameLength)
		}
		if !patternRE.MatchString(r.Streams) {
			return eventvault.Errorf(eventvault.EINVALID, "rules[%d].streams %q holds a character no stream name has: use letters, digits, '_', '.', ':', '-' and '*'", i, eventvault.Truncate(r.Streams, 40))
		}
		if len(r.Capabilities) == 0 {
			return eventvault.Errorf(eventvault.EINVALID, "rules[%d].capabilities is empty: name at least one of append, read, read_pii, erase, audit_export, admin", i)
		}
		for _, c := range r.Capabilities {
			if !known[c] {
				return eventvault.Errorf(eventvault.EINVALID, "rules[%d]: unknown capability %q: use append, read, read_pii, erase, audit_export or admin", i, eventvault.Truncate(string(c), 40))
			}
		}
	}
	return nil
}

// Allows reports whether p may exercise c on stream within tenant. An empty
// stream asks for a tenant-wide grant: a rule whose pattern is "*".
func Allows(p eventvault.Principal, tenant eventvault.TenantID, c eventvault.Capability, stream eventvault.StreamName) bool {
	if p.Root {
		return true
	}
	if p.Tenant != tenant || p.Tenant == "" {
		return false
	}
	for _, r := range p.Rules {
		if !grants(r, c) {
			continue
		}
		if stream == "" {
			if r.Streams == "*" {
				return true
			}
			continue
		}
		if Match(r.Streams, string(stream)) {
			return true
		}
	}
	return false
}

// Authorize returns nil if Allows, and otherwise EFORBIDDEN with a message
// naming the missing capability (not the principal's other grants).
func Authorize(p eventvault.Principal, tenant eventvault.TenantID, c eventvault.Capability, stream eventvault.StreamName) error {
	if Allows(p, tenant, c, stream) {
		return nil
	}
	if stream == "" {
		return eventvault.Errorf(eventvault.EFORBIDDEN, "this token lacks the %q capability on this tenant: a tenant-wide action needs it on every stream, a rule with \"streams\": \"*\"", c)
	}
	return eventvault.Errorf(eventvault.EFORBIDDEN, "this token lacks the %q capability on stream %s", c, stream)
}

func grants(r eventvault.Rule, c eventvault.Capability) bool {
	for _, have := range r.Capabilities {
		if have == c || have == eventvault.CapAdmin {
			return true
		}
	}
	return false
}

// Match reports whether name matches pattern, where '*' matches any run of
// characters (including none) and every other character matches itself.
func Match(pattern, name string) bool {
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
