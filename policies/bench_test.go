package policies

import (
	"path/filepath"
	"testing"

	"github.com/eventvault/eventvault"
	"github.com/eventvault/eventvault/store/bolt"
)

// BenchmarkDecide is one append decision for a token with the app example
// document and inline rules: the cost authorization adds to a request.
func BenchmarkDecide(b *testing.B) {
	d, err := Parse("app", `@id("orders")
permit (principal, action in [Action::"append", Action::"read"], resource is Stream)
when { resource.category == "order" };
@id("no-refunds")
forbid (principal, action == Action::"append", resource)
when { context.event_type == "RefundIssued" };`)
	if err != nil {
		b.Fatal(err)
	}
	p := eventvault.Principal{Tenant: "acme", TokenID: "tok_1", Grants: RulesSet(DefaultRules, d)}
	r := Request{Tenant: "acme", Action: Append, Stream: "order-42", EventType: "OrderPlaced"}
	b.ReportAllocs()
	for b.Loop() {
		if !Decide(p, r).Allowed {
			b.Fatal("denied")
		}
	}
}

// BenchmarkResolveAndDecide is what a request pays: attaching the
// caller's documents (cached) and one decision.
func BenchmarkResolveAndDecide(b *testing.B) {
	store, err := bolt.Open(filepath.Join(b.TempDir(), "eventvault.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	r := NewResolver(store, DefaultCacheTTL, nil)
	if _, _, err := r.Put(b.Context(), eventvault.Principal{Root: true}, "acme", "app", `permit (principal, action in [Action::"append", Action::"read"], resource is Stream) when { resource.category == "order" };`); err != nil {
		b.Fatal(err)
	}
	p := eventvault.Principal{Tenant: "acme", TokenID: "tok_1", Rules: DefaultRules, Policies: []string{"app"}}
	req := Request{Tenant: "acme", Action: Append, Stream: "order-42", EventType: "OrderPlaced"}
	b.ReportAllocs()
	for b.Loop() {
		rp, err := r.Resolve(b.Context(), p)
		if err != nil || !Decide(rp, req).Allowed {
			b.Fatal(err)
		}
	}
}
