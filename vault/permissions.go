package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/eventvault/eventvault"
	evcrypto "github.com/eventvault/eventvault/crypto"
)

// Policy names, as README.md and docs/operations.md give them: PolicyServer
// is what the server needs, PolicyRotate what root rotation needs on top.
const (
	PolicyServer = "eventvault"
	PolicyRotate = "eventvault-rotate"
)

// need is a permission one root key operation needs: capability on path,
// granted by policy.
type need struct {
	path, capability, policy string
}

func (t *Transit) needs(op evcrypto.RootOperation) []need {
	m, k := t.cfg.mount(), t.cfg.key()
	switch op {
	case evcrypto.RootWrap:
		return []need{{m + "/encrypt/" + k, "update", PolicyServer}}
	case evcrypto.RootUnwrap:
		return []need{{m + "/decrypt/" + k, "update", PolicyServer}}
	case evcrypto.RootRewrap:
		return []need{{m + "/rewrap/" + k, "update", PolicyServer}}
	case evcrypto.RootRotate:
		return []need{{m + "/keys/" + k + "/rotate", "update", PolicyRotate}, {m + "/keys/" + k, "read", PolicyServer}}
	case evcrypto.RootRetire:
		return []need{{m + "/keys/" + k + "/config", "update", PolicyRotate}, {m + "/keys/" + k, "read", PolicyServer}}
	}
	return nil
}

// policyFor names the policy of the documented set that grants access to
// path: PolicyRotate for the key's rotate and config paths, PolicyServer
// for the rest.
func (t *Transit) policyFor(path string) string {
	if strings.HasSuffix(path, "/rotate") || strings.HasSuffix(path, "/config") {
		return PolicyRotate
	}
	return PolicyServer
}

// CheckPermissions asks Vault (sys/capabilities-self, which Vault's default
// policy allows) whether the token holds every capability ops need, without
// using any. It implements crypto.RootPermissionChecker.
// Errors: EFORBIDDEN naming each missing capability, its path and the
// policy that grants it; EFORBIDDEN too if the token may not ask (no default
// policy); EUNAVAILABLE if Vault cannot be reached.
func (t *Transit) CheckPermissions(ctx context.Context, ops ...evcrypto.RootOperation) error {
	const op = "vault.Transit.CheckPermissions"
	var wanted []need
	seen := map[string]bool{}
	for _, o := range ops {
		for _, n := range t.needs(o) {
			if !seen[n.path+" "+n.capability] {
				seen[n.path+" "+n.capability] = true
				wanted = append(wanted, n)
			}
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	paths := make([]string, 0, len(wanted))
	for _, n := range wanted {
		paths = append(paths, n.path)
	}
	s, err := t.write(ctx, "sys/capabilities-self", map[string]any{"paths": paths})
	if err != nil {
		if isStatus(err, 403) {
			return &eventvault.Error{Code: eventvault.EFORBIDDEN, Op: op,
				Message: fmt.Sprintf("Vault at %s: the token may not ask for its own capabilities (permission denied for sys/capabilities-self): give it Vault's default policy, with the %s and %s policies", t.cfg.Address, PolicyServer, PolicyRotate),
				Err:     err}
		}
		return lift(op, t.fail(op, "sys/capabilities-self", "update", err))
	}
	var missing []string
	for _, n := range wanted {
		if !hasCapability(s.Data[n.path], n.capability) {
			missing = append(missing, fmt.Sprintf("%q on %s (policy %s)", n.capability, n.path, n.policy))
		}
	}
	if len(missing) > 0 {
		return &eventvault.Error{Code: eventvault.EFORBIDDEN, Op: op,
			Message: fmt.Sprintf("Vault at %s: the token lacks %s: give it the policy named (docs/operations.md, \"Setting up a real Vault\"), then run again",
				t.cfg.Address, strings.Join(missing, ", "))}
	}
	return nil
}

// hasCapability reports whether a capability list from Vault grants c;
// root grants everything, deny nothing.
func hasCapability(v any, c string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		switch s, _ := x.(string); s {
		case "root":
			return true
		case "deny":
			return false
		case c:
			return true
		}
	}
	return false
}
