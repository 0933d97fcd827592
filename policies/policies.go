// Package policies decides what a principal may do, by Cedar policy
// documents (https://docs.cedarpolicy.com) validated against one schema
// (schema.cedarschema). Deny by default: a request is allowed only if a
// permit statement of one of the principal's documents matches it and no
// forbid statement does; a forbid always overrides a permit, and a
// statement that fails to evaluate denies. Nothing crosses tenants: a
// principal acts only within its own tenant whatever its documents say,
// and only the dev root token (and the operator at the command line)
// acts on every tenant.
//
// A principal's documents are the named documents of its tenant attached
// to its API token or mapped from its JWT's groups claim, plus, for API
// tokens made before documents existed, the statements FromRules writes
// from the token's inline rules.
package policies

import (
	"fmt"
	"strings"

	"github.com/eventvault/eventvault"
)

// Action is what a request does; each is a Cedar action of the schema
// (Action::"append", ...).
type Action string

// The actions. Stream actions take the stream as resource; the others the
// tenant.
const (
	Append         Action = "append"          // append events to a stream (per event type)
	Read           Action = "read"            // read one stream
	Shred          Action = "shred"           // shred (and purge) one stream
	ReadAll        Action = "read_all"        // read every stream in global order
	Erase          Action = "erase"           // request a subject's erasure and read the requests
	Hold           Action = "hold"            // place and lift legal holds
	AuditExport    Action = "audit_export"    // export the audit log
	ManageTokens   Action = "manage_tokens"   // issue, list and revoke API tokens
	ManagePolicies Action = "manage_policies" // write, read and delete policy documents
	ManageKeys     Action = "manage_keys"     // rotate the tenant's KEK
	ReadPII        Action = "read_pii"        // decrypt a personal value (per field: context event_type, pointer, class)
	// ReadPIIMasked shows a personal value masked (docs/pii.md) to a
	// caller that read_pii does not permit it to.
	ReadPIIMasked Action = "read_pii_masked"
	// ReadRestrictedPII lets a caller see values of a subject under a
	// restriction of processing (GDPR Art. 18), as read_pii and
	// read_pii_masked decide; without it they are redacted. Only a permit
	// of a policy document grants it: neither the root token nor a
	// token's inline rules do.
	ReadRestrictedPII Action = "read_restricted_pii"
	// SubjectRights serves a data subject's rights: the export (GDPR Art.
	// 15, 20), rectification (Art. 16) and restriction (Art. 18).
	SubjectRights Action = "subject_rights"
	// Subscribe registers, reads and acknowledges durable consumers of
	// the feed; the feed's events themselves take ReadAll, as read-all.
	Subscribe           Action = "subscribe"
	ManageSubscriptions Action = "manage_subscriptions" // remove any consumer (audited)
)

// Actions lists every action, stream actions first.
var Actions = []Action{Append, Read, Shred, ReadPII, ReadPIIMasked, ReadRestrictedPII, ReadAll, Erase, Hold, SubjectRights, AuditExport, ManageTokens, ManagePolicies, ManageKeys, Subscribe, ManageSubscriptions}

// IsPII reports whether a decides a personal value: its resource is the
// stream the value was read from (the tenant when there is none) and its
// context the field (event_type, pointer, class).
func (a Action) IsPII() bool { return a == ReadPII || a == ReadPIIMasked || a == ReadRestrictedPII }

// OnStream reports whether a takes a stream as resource.
func (a Action) OnStream() bool { return a == Append || a == Read || a == Shred }

// Request is one access decision to make: Action on Stream (stream
// actions, and the PII actions when a stream is named) or on the tenant
// (the others), within Tenant. EventType is the type of the events
// appended, for Append, or of the event holding the value, for the PII
// actions; Pointer (RFC 6901) and Class name the value, for the PII
// actions only.
type Request struct {
	Tenant    eventvault.TenantID
	Action    Action
	Stream    eventvault.StreamName
	EventType string
	Pointer   string
	Class     eventvault.PIIClass
}

// Authorize returns nil if p may make r, and otherwise EFORBIDDEN with a
// message naming the action and, when a forbid decided, the statement; it
// never lists the principal's other grants. p's documents are those
// Resolver.Resolve attached; a principal never resolved is decided by its
// inline rules alone.
func Authorize(p eventvault.Principal, r Request) error {
	d := Decide(p, r)
	if d.Allowed {
		return nil
	}
	return forbidden(p, r, d)
}

// Check is Authorize that also returns the decision, so that a caller can
// honour what the deciding statements ask (AuditEach).
func Check(p eventvault.Principal, r Request) (Decision, error) {
	d := Decide(p, r)
	if d.Allowed {
		return d, nil
	}
	return d, forbidden(p, r, d)
}

// Decision is the outcome of a request with the statements that decided
// it: the permits that allowed it, or the forbids that denied it; none
// when nothing permitted it (deny by default) or the tenant is another's.
type Decision struct {
	Allowed bool
	By      []string // "document#statement"
	// Errors are statements that failed to evaluate, which deny.
	Errors []string
	// Reason says why in words when no statement decided.
	Reason string
	// AuditEach is set when a permit that allowed the request carries the
	// annotation @audit("each"): the request must be recorded on its own,
	// before it is answered, and fail if it cannot be.
	AuditEach bool
}

// Decide returns the decision on r for p.
func Decide(p eventvault.Principal, r Request) Decision {
	if p.Root && r.Action == ReadRestrictedPII {
		return Decision{Reason: "a restriction of processing yields only to an explicit permit of a policy document"}
	}
	if p.Root {
		return Decision{Allowed: true, Reason: "the root token acts on every tenant"}
	}
	if p.Tenant == "" || p.Tenant != r.Tenant {
		return Decision{Reason: otherTenant}
	}
	set, ok := p.Grants.(*Set)
	if !ok || set == nil {
		return rulesSet(p.Rules).decide(p, r)
	}
	return set.decideMemo(p, r)
}

const otherTenant = "a caller acts only within its own tenant"

// ruleCapability is the capability of an inline rule that grants an
// action: named in a refusal to a token that has rules.
var ruleCapability = map[Action]eventvault.Capability{
	Append: eventvault.CapAppend, Read: eventvault.CapRead, Shred: eventvault.CapErase, ReadPII: eventvault.CapReadPII,
	ReadAll: eventvault.CapRead, Erase: eventvault.CapErase, Hold: eventvault.CapErase, SubjectRights: eventvault.CapErase, AuditExport: eventvault.CapAuditExport,
	ManageTokens: eventvault.CapAdmin, ManagePolicies: eventvault.CapAdmin, ManageKeys: eventvault.CapAdmin,
	Subscribe: eventvault.CapRead, ManageSubscriptions: eventvault.CapAdmin,
}

func forbidden(p eventvault.Principal, r Request, d Decision) error {
	what := string(r.Action)
	if r.Action.OnStream() {
		what += " on stream " + string(r.Stream)
		if r.EventType != "" {
			what += fmt.Sprintf(" (event type %q)", eventvault.Truncate(r.EventType, 60))
		}
	} else {
		what += " on this tenant"
	}
	if d.Reason == otherTenant {
		return eventvault.Errorf(eventvault.EFORBIDDEN, "%s is denied: %s (tenant %s), and no policy grants more", strings.Replace(what, "this tenant", "tenant "+string(r.Tenant), 1), otherTenant, p.Tenant)
	}
	hint := ""
	if len(p.Rules) > 0 {
		if r.Action.OnStream() {
			hint = fmt.Sprintf("; in this token's rules it takes the %q capability on a pattern the stream matches", ruleCapability[r.Action])
		} else {
			hint = fmt.Sprintf("; in this token's rules a tenant-wide action takes the %q capability on every stream, a rule with \"streams\": \"*\"", ruleCapability[r.Action])
		}
	}
	switch {
	case len(d.Errors) > 0:
		return eventvault.Errorf(eventvault.EFORBIDDEN, "%s is denied: policy statement %s failed to evaluate, and a failing statement denies", what, d.Errors[0])
	case len(d.By) > 0:
		return eventvault.Errorf(eventvault.EFORBIDDEN, "%s is denied by forbid statement %s", what, strings.Join(d.By, ", "))
	default:
		return eventvault.Errorf(eventvault.EFORBIDDEN, "%s is not permitted by any policy of this caller (deny by default)%s", what, hint)
	}
}
