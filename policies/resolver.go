package policies

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventvault/eventvault"
)

// DefaultCacheTTL is how long a node keeps a document it loaded: the bound
// on how long a change made through another node takes to reach this one.
// A change made through this node takes effect here at once.
const DefaultCacheTTL = 5 * time.Second

// Resolver attaches each principal's documents, loaded from the store and
// kept for CacheTTL, and manages the documents (Put, Delete, Get, List).
type Resolver struct {
	store    eventvault.PolicyStore
	ttl      time.Duration
	now      func() time.Time
	logger   *slog.Logger
	mu       sync.Mutex
	cache    map[docKey]cachedDoc
	sets     map[string]*Set
	maxCache int
	// Audit, when set, records every document written and deleted in the
	// tenant's audit log, in the same transaction.
	Audit eventvault.AuditRecorder
}

type docKey struct {
	tenant eventvault.TenantID
	name   string
}

type cachedDoc struct {
	doc     *Document // nil: no such document (or deleted)
	expires time.Time
}

// NewResolver returns a Resolver over store that keeps documents for ttl
// (0 or less: loads them on every request). logger may be nil.
func NewResolver(store eventvault.PolicyStore, ttl time.Duration, logger *slog.Logger) *Resolver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{store: store, ttl: ttl, now: time.Now, logger: logger, cache: map[docKey]cachedDoc{}, sets: map[string]*Set{}, maxCache: 10000}
}

// MaxPrincipalPolicies bounds the documents of one principal (attached to
// a token, or named by a JWT's groups claim).
const MaxPrincipalPolicies = 32

// Resolve returns p with its documents compiled into p.Grants. Names that
// match no document of p's tenant grant nothing (a JWT's groups claim
// names many groups that are not policies; a document may be deleted
// after a token named it). A root principal is returned as it is.
// Errors: the store's (EUNAVAILABLE).
func (r *Resolver) Resolve(ctx context.Context, p eventvault.Principal) (eventvault.Principal, error) {
	if p.Root {
		return p, nil
	}
	names := p.Policies
	if len(names) > MaxPrincipalPolicies {
		names = names[:MaxPrincipalPolicies]
	}
	docs := make([]*Document, 0, len(names))
	for _, name := range names {
		if ValidateName(name) != nil {
			continue
		}
		d, err := r.document(ctx, p.Tenant, name)
		if err != nil {
			return p, err
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(p.Rules) == 0 && len(docs) == 0 {
		p.Grants = NewSet()
		return p, nil
	}
	p.Grants = r.compiled(p, docs)
	return p, nil
}

// compiled returns the Set of p's rules and docs, compiled once per tenant,
// token (whose rules never change) or rule list, and document versions:
// compiling parses the rules' document, which a request must not pay for,
// nor for writing the rules' text to look the Set up.
func (r *Resolver) compiled(p eventvault.Principal, docs []*Document) *Set {
	var key strings.Builder
	// The tenant first: two tenants' documents may share a name and a
	// version, and a JWT principal has neither a token id nor rules.
	key.WriteString(string(p.Tenant) + "\x00")
	if p.TokenID != "" {
		key.WriteString("token\x00" + p.TokenID)
	} else {
		key.WriteString("rules\x00" + FromRules(p.Rules))
	}
	for _, d := range docs {
		fmt.Fprintf(&key, "\x00%s@%d", d.Name, d.Version)
	}
	k := key.String()
	r.mu.Lock()
	s, ok := r.sets[k]
	r.mu.Unlock()
	if ok {
		return s
	}
	s = RulesSet(p.Rules, docs...)
	r.mu.Lock()
	if len(r.sets) >= r.maxCache {
		clear(r.sets)
	}
	r.sets[k] = s
	r.mu.Unlock()
	return s
}

// document returns the current version of a document, nil if there is
// none, from the cache while fresh.
func (r *Resolver) document(ctx context.Context, tenant eventvault.TenantID, name string) (*Document, error) {
	k := docKey{tenant, name}
	now := r.now()
	r.mu.Lock()
	c, ok := r.cache[k]
	r.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.doc, nil
	}
	v, err := r.store.LatestPolicyVersion(ctx, tenant, name)
	var d *Document
	switch {
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
	case err != nil:
		return nil, fmt.Errorf("load policy %s: %w", name, err)
	case !v.Deleted && ok && c.doc != nil && c.doc.Version == v.Version:
		// Unchanged since it was parsed: parsing again would cost a large
		// document's parse at every expiry.
		d = c.doc
	case !v.Deleted:
		if d, err = Parse(name, v.Body); err != nil {
			// Stored documents were valid when written; a schema change
			// that refuses one must not grant what it no longer means.
			r.logger.ErrorContext(ctx, "a stored policy no longer validates; it grants nothing until it is rewritten",
				slog.String("tenant", string(tenant)), slog.String("policy", name), slog.Int64("version", v.Version), slog.Any("error", err))
			d = nil
		} else {
			d.Version = v.Version
		}
	}
	r.remember(k, d, now)
	return d, nil
}

func (r *Resolver) remember(k docKey, d *Document, now time.Time) {
	if r.ttl <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= r.maxCache {
		clear(r.cache)
	}
	r.cache[k] = cachedDoc{doc: d, expires: now.Add(r.ttl)}
}

func (r *Resolver) forget(tenant eventvault.TenantID, name string) {
	r.mu.Lock()
	delete(r.cache, docKey{tenant, name})
	r.mu.Unlock()
}

// Put stores body as the next version of document name of tenant and
// returns it, with written false when body is the current text already
// (no version is made then). Errors: EFORBIDDEN without manage_policies on tenant;
// EINVALID for a document that does not parse or validate (naming the
// line and the reason); ECONFLICT if another write of the name won the
// race.
func (r *Resolver) Put(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name, body string) (v eventvault.PolicyVersion, written bool, err error) {
	if err := r.manage(p, tenant); err != nil {
		return eventvault.PolicyVersion{}, false, err
	}
	if err := ValidateName(name); err != nil {
		return eventvault.PolicyVersion{}, false, err
	}
	if _, err := Parse(name, body); err != nil {
		// The text is the policy member of PUT /v1/policies/{name}'s body.
		return eventvault.PolicyVersion{}, false, eventvault.AtPointer(err, "/policy")
	}
	return r.addVersion(ctx, p, tenant, name, body, false)
}

// Delete records the deletion of document name as its next version; the
// earlier versions stay. Tokens and groups that name it then get nothing
// from it. Errors: EFORBIDDEN; ENOTFOUND if there is no such document.
func (r *Resolver) Delete(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name string) (eventvault.PolicyVersion, error) {
	if err := r.manage(p, tenant); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	if err := ValidateName(name); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	v, _, err := r.addVersion(ctx, p, tenant, name, "", true)
	return v, err
}

func (r *Resolver) addVersion(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name, body string, deleted bool) (eventvault.PolicyVersion, bool, error) {
	latest, err := r.store.LatestPolicyVersion(ctx, tenant, name)
	switch {
	case eventvault.ErrorCode(err) == eventvault.ENOTFOUND:
		if deleted {
			return eventvault.PolicyVersion{}, false, eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no policy %s", tenant, name)
		}
	case err != nil:
		return eventvault.PolicyVersion{}, false, fmt.Errorf("load policy %s: %w", name, err)
	case deleted && latest.Deleted:
		return eventvault.PolicyVersion{}, false, eventvault.Errorf(eventvault.ENOTFOUND, "policy %s of tenant %s is already deleted", name, tenant)
	case !deleted && latest.Deleted:
		// Tokens issued for the deleted document still name it: writing
		// the name again would hand them whatever the new text grants.
		return eventvault.PolicyVersion{}, false, eventvault.Errorf(eventvault.ECONFLICT, "policy %s of tenant %s was deleted (version %d), and a deleted name is never written again, so that tokens issued for the old document do not gain the new one: choose another name", name, tenant, latest.Version)
	case !deleted && !latest.Deleted && latest.Body == body:
		// The same document again (a restart loading its files): no new
		// version.
		return latest, false, nil
	}
	v := eventvault.PolicyVersion{
		Tenant: tenant, Name: name, Version: latest.Version + 1,
		Body: body, Deleted: deleted, CreatedBy: p.Actor(), CreatedAt: r.now().UTC().Truncate(time.Microsecond), // as PostgreSQL keeps it
	}
	action := "policy_written"
	if deleted {
		action = "policy_deleted"
	}
	ctx, err = eventvault.WithAuditEvents(ctx, r.Audit, eventvault.AuditEvent{Tenant: tenant, Actor: p.Actor(), Action: action, Resource: "policy:" + name, Outcome: "ok",
		Detail: map[string]any{"version": v.Version}})
	if err != nil {
		return eventvault.PolicyVersion{}, false, err
	}
	if err := r.store.AddPolicyVersion(ctx, v); err != nil {
		if eventvault.ErrorCode(err) == eventvault.ECONFLICT {
			return eventvault.PolicyVersion{}, false, eventvault.Errorf(eventvault.ECONFLICT, "policy %s changed while this write was made: read it again and retry", name)
		}
		return eventvault.PolicyVersion{}, false, fmt.Errorf("store policy %s: %w", name, err)
	}
	r.forget(tenant, name)
	what := "policy written"
	if deleted {
		what = "policy deleted"
	}
	r.logger.InfoContext(ctx, what, slog.String("tenant", string(tenant)), slog.String("policy", name), slog.Int64("version", v.Version), slog.String("by", p.Actor()))
	return v, true, nil
}

// Get returns the current version of a document, or version when it is
// positive (a deleted version too, so that history can be read).
// Errors: EFORBIDDEN; ENOTFOUND.
func (r *Resolver) Get(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID, name string, version int64) (eventvault.PolicyVersion, error) {
	if err := r.manage(p, tenant); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	if err := ValidateName(name); err != nil {
		return eventvault.PolicyVersion{}, err
	}
	if version > 0 {
		v, err := r.store.PolicyVersion(ctx, tenant, name, version)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND {
			return eventvault.PolicyVersion{}, eventvault.Errorf(eventvault.ENOTFOUND, "policy %s of tenant %s has no version %d", name, tenant, version)
		}
		return v, err
	}
	v, err := r.store.LatestPolicyVersion(ctx, tenant, name)
	if eventvault.ErrorCode(err) == eventvault.ENOTFOUND || err == nil && v.Deleted {
		return eventvault.PolicyVersion{}, eventvault.Errorf(eventvault.ENOTFOUND, "tenant %s has no policy %s", tenant, name)
	}
	if err != nil {
		return eventvault.PolicyVersion{}, fmt.Errorf("load policy %s: %w", name, err)
	}
	return v, nil
}

// List returns the current version of each document of tenant, by name.
// Errors: EFORBIDDEN.
func (r *Resolver) List(ctx context.Context, p eventvault.Principal, tenant eventvault.TenantID) ([]eventvault.PolicyVersion, error) {
	if err := r.manage(p, tenant); err != nil {
		return nil, err
	}
	vs, err := r.store.ListPolicies(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return vs, nil
}

// Exist returns EINVALID naming the first of names that is not a current
// document of tenant: a token must not name a policy that does not exist.
// The error's pointer is /policies/<index> (the whole list, /policies,
// when it is too long).
func (r *Resolver) Exist(ctx context.Context, tenant eventvault.TenantID, names []string) error {
	if len(names) > MaxPrincipalPolicies {
		return eventvault.FieldErrorf("/policies", "%d policies named; the limit is %d", len(names), MaxPrincipalPolicies)
	}
	for i, name := range names {
		at := fmt.Sprintf("/policies/%d", i)
		if err := ValidateName(name); err != nil {
			return eventvault.FieldErrorf(at, "policies[%d]: %v", i, err)
		}
		if slices.Contains(names[:i], name) {
			return eventvault.FieldErrorf(at, "policies[%d]: %s is named twice", i, name)
		}
	}
	for i, name := range names {
		at := fmt.Sprintf("/policies/%d", i)
		v, err := r.store.LatestPolicyVersion(ctx, tenant, name)
		if eventvault.ErrorCode(err) == eventvault.ENOTFOUND || err == nil && v.Deleted {
			return eventvault.FieldErrorf(at, "policies[%d]: tenant %s has no policy %s: create it first with PUT /v1/policies/%s", i, tenant, name, name)
		}
		if err != nil {
			return fmt.Errorf("load policy %s: %w", name, err)
		}
	}
	return nil
}

func (r *Resolver) manage(p eventvault.Principal, tenant eventvault.TenantID) error {
	if err := eventvault.ValidateTenant(tenant); err != nil {
		return err
	}
	return Authorize(p, Request{Tenant: tenant, Action: ManagePolicies})
}
