package policies

import (
	"testing"

	"github.com/eventvault/eventvault"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "order-42", true},
		{"order-*", "order-42", true},
		{"order-*", "orders-42", false},
		{"order-42", "order-42", true},
		{"order-42", "order-420", false},
		{"*-42", "order-42", true},
		{"*-42", "order-421", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"ab*ba", "aba", false}, // prefix and suffix must not overlap
		{"", "order-1", false},
	}
	for _, c := range cases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestAllowsDeniesByDefaultAndAcrossTenants(t *testing.T) {
	orders := eventvault.Principal{Tenant: "acme", Rules: []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "order-*"},
	}}
	all := eventvault.Principal{Tenant: "acme", Rules: DefaultRules}
	admin := eventvault.Principal{Tenant: "acme", Rules: []eventvault.Rule{
		{Capabilities: []eventvault.Capability{eventvault.CapAdmin}, Streams: "*"},
	}}
	root := eventvault.Principal{Tenant: "default", Root: true}
	cases := []struct {
		name   string
		p      eventvault.Principal
		tenant eventvault.TenantID
		c      eventvault.Capability
		stream eventvault.StreamName
		want   bool
	}{
		{"no rules", eventvault.Principal{Tenant: "acme"}, "acme", eventvault.CapRead, "order-1", false},
		{"granted pattern", orders, "acme", eventvault.CapRead, "order-1", true},
		{"other capability", orders, "acme", eventvault.CapAppend, "order-1", false},
		{"other pattern", orders, "acme", eventvault.CapRead, "invoice-1", false},
		{"tenant-wide needs *", orders, "acme", eventvault.CapRead, "", false},
		{"tenant-wide with *", all, "acme", eventvault.CapRead, "", true},
		{"other tenant", all, "globex", eventvault.CapRead, "order-1", false},
		{"admin implies read", admin, "acme", eventvault.CapRead, "order-1", true},
		{"admin stays in tenant", admin, "globex", eventvault.CapRead, "order-1", false},
		{"root everywhere", root, "globex", eventvault.CapAdmin, "", true},
		{"empty tenant never matches", eventvault.Principal{Rules: DefaultRules}, "", eventvault.CapRead, "order-1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Allows(c.p, c.tenant, c.c, c.stream); got != c.want {
				t.Errorf("Allows = %v, want %v", got, c.want)
			}
			err := Authorize(c.p, c.tenant, c.c, c.stream)
			if c.want != (err == nil) {
				t.Errorf("Authorize = %v, want allowed=%v", err, c.want)
			}
			if err != nil && eventvault.ErrorCode(err) != eventvault.EFORBIDDEN {
				t.Errorf("Authorize code = %s, want %s", eventvault.ErrorCode(err), eventvault.EFORBIDDEN)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	bad := [][]eventvault.Rule{
		{{Capabilities: []eventvault.Capability{"fly"}, Streams: "*"}},
		{{Capabilities: nil, Streams: "*"}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: ""}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "order-\x00*"}},
		{{Capabilities: []eventvault.Capability{eventvault.CapRead}, Streams: "order-é*"}},
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
