package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Admission control: how many appends and reads a node works on at once,
// and how long a request may wait for its turn. Past its capacity a node
// does more work per request, not more requests (issue 16: 674 appends/s
// answered at 800/s offered, 296/s at 1,600/s, callers waiting seconds),
// so the excess is refused at the door, quickly, with a Retry-After, and
// what is admitted stays fast.
//
// Bounds are per class (appends, reads), apart, so that a flood of one
// leaves the other served:
//
//   - Node: requests of the class in flight on this node. A request past it
//     waits up to QueueWait for a slot, then gets 503; with Queue requests
//     already waiting it gets 503 at once.
//   - Tenant: one tenant's share of the Node slots, in flight and waiting
//     together. The bound is work-conserving: a tenant past its share is
//     still admitted to a slot that is free, so that a lone tenant may use
//     the whole node; but it never waits for one. With the node full, a
//     request past its tenant's share gets 429 at once, while a request
//     within its share waits in the queue, and a slot that frees goes to
//     the longest waiter (Go's channel hand-off) before any new request.
//     So a tenant flooding the node cannot starve another: the other's
//     requests wait at most about one request's service time for a slot.
//
// An admitted request runs under the class's Timeout. A request whose
// caller went away, or whose deadline passed, while it waited is never
// started: it leaves without touching the store. A caller that disconnects
// while its request runs cancels the request's context; the store gives
// the connection back and the slot is freed as the handler returns.
//
// Admission is opt-in per route: Server.admit is one gin handler placed
// in a route's chain (server.go, New). A route without it (token, policy and
// admin endpoints; a long-lived subscription such as an SSE stream, which
// must never hold an append or read slot for its lifetime) is not bounded
// by it. To exempt a route, leave admit out of its chain.

// Admission classes.
const (
	ClassAppend = "append"
	ClassRead   = "read"
)

// Refusal reasons, as metrics label them.
const (
	// RefusedTenant: the tenant holds its share of the class (429).
	RefusedTenant = "tenant_full"
	// RefusedNode: no slot came free within QueueWait (503).
	RefusedNode = "node_full"
	// RefusedQueue: Queue requests already wait for a slot (503 at once).
	RefusedQueue = "queue_full"
	// RefusedGone: the caller went away or its deadline passed before the
	// request started; nothing was done.
	RefusedGone = "gone"
)

// Limits bound one class of requests on one node. Zero values: Node 0 is
// no bound at all (the class is not admitted through a gate); Tenant 0 is
// Node; Queue 0 refuses at once whenever the Node slots are taken.
type Limits struct {
	// Node is how many requests of the class this node serves at once.
	Node int
	// Tenant is one tenant's share: how many of its requests of the class
	// may be in flight or waiting at once when the node is full (past it,
	// a request is admitted only to a free slot, else refused with 429).
	Tenant int
	// Queue is how many requests may wait for a Node slot at once.
	Queue int
	// Timeout is the deadline of an admitted request, from its admission
	// (0: none but the caller's).
	Timeout time.Duration
}

// AdmissionConfig configures admission control. The zero value bounds
// nothing.
type AdmissionConfig struct {
	Appends Limits
	Reads   Limits
	// QueueWait is the longest a request waits for a Node slot before it
	// is refused (503); 0 refuses at once.
	QueueWait time.Duration
	// RetryAfter is what a refusal's Retry-After says, in whole seconds
	// (RFC 9110, section 10.2.3), at least 1.
	RetryAfter time.Duration
}

// DefaultAdmission is the server's admission control unless configured
// otherwise, chosen from `make bench`'s overload workload on a 2-CPU
// machine with PostgreSQL fsync on (docs/performance.md, "Overload"):
// a node's append goodput stops rising past about 16 appends in flight
// (group commit carries what waits), so a node admits twice that, and a
// tenant half; reads, which hold a connection each, half as many.
var DefaultAdmission = AdmissionConfig{
	Appends:    Limits{Node: 32, Tenant: 16, Queue: 64, Timeout: 10 * time.Second},
	Reads:      Limits{Node: 16, Tenant: 8, Queue: 64, Timeout: 10 * time.Second},
	QueueWait:  50 * time.Millisecond,
	RetryAfter: time.Second,
}

// AdmissionMetrics learns of admission by route template (never a raw
// path): metrics.Registry implements it. Its counters must be quick and
// safe for concurrent use; they are called on every admitted request.
type AdmissionMetrics interface {
	// AdmissionCounters returns the counters of one method and route
	// template, once per route at start.
	AdmissionCounters(method, route string) AdmissionCounters
}

// AdmissionCounters count one route's admissions.
type AdmissionCounters interface {
	// InFlight adds delta to the route's requests admitted and running.
	InFlight(delta int)
	// Queued adds delta to the route's requests waiting for a slot.
	Queued(delta int)
	// Refused counts one refusal, by reason (RefusedTenant, ...).
	Refused(reason string)
	// Waited observes how long a request waited in the queue for a slot,
	// once it leaves the queue: admitted (a slot came free) or not.
	Waited(d time.Duration, admitted bool)
}

type noAdmissionCounters struct{}

func (noAdmissionCounters) InFlight(int)               {}
func (noAdmissionCounters) Queued(int)                 {}
func (noAdmissionCounters) Refused(string)             {}
func (noAdmissionCounters) Waited(time.Duration, bool) {}

// gate admits one class of requests within its Limits. Its zero value
// (slots nil) admits everything.
type gate struct {
	limits  Limits
	wait    time.Duration
	slots   chan struct{}
	waiting atomic.Int64

	mu      sync.Mutex
	tenants map[string]int
}

func newGate(l Limits, wait time.Duration) *gate {
	g := &gate{limits: l, wait: wait}
	if l.Node <= 0 {
		return g
	}
	if g.limits.Tenant <= 0 || g.limits.Tenant > l.Node {
		g.limits.Tenant = l.Node
	}
	g.slots = make(chan struct{}, l.Node)
	g.tenants = make(map[string]int)
	return g
}

// acquire takes a slot of the gate for tenant, waiting up to the gate's
// wait for one. It returns "" once admitted (the caller then calls
// release), or the reason it refused; a refused request holds nothing.
func (g *gate) acquire(ctx context.Context, tenant string, m AdmissionCounters) string {
	if ctx.Err() != nil {
		return RefusedGone
	}
	if g.slots == nil {
		return ""
	}
	g.mu.Lock()
	over := g.tenants[tenant] >= g.limits.Tenant
	g.tenants[tenant]++
	g.mu.Unlock()
	select {
	case g.slots <- struct{}{}:
		return ""
	default:
	}
	if over {
		// Past its share with the node full: refused, never queued, so
		// that the slots that free go to the tenants within theirs.
		g.releaseTenant(tenant)
		return RefusedTenant
	}
	if reason := g.await(ctx, m); reason != "" {
		g.releaseTenant(tenant)
		return reason
	}
	return ""
}

// await waits for a Node slot, within the queue's bound and the wait.
func (g *gate) await(ctx context.Context, m AdmissionCounters) string {
	if g.wait <= 0 {
		return RefusedNode
	}
	if g.waiting.Add(1) > int64(g.limits.Queue) {
		g.waiting.Add(-1)
		return RefusedQueue
	}
	m.Queued(1)
	start := time.Now()
	defer func() { g.waiting.Add(-1); m.Queued(-1) }()
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-timer.C:
		m.Waited(time.Since(start), false)
		return RefusedNode
	case <-ctx.Done():
		m.Waited(time.Since(start), false)
		return RefusedGone
	}
	// The caller may have gone in the same instant: do not start its work.
	if ctx.Err() != nil {
		<-g.slots
		m.Waited(time.Since(start), false)
		return RefusedGone
	}
	m.Waited(time.Since(start), true)
	return ""
}

// release gives back the slot tenant's request held.
func (g *gate) release(tenant string) {
	if g.slots == nil {
		return
	}
	<-g.slots
	g.releaseTenant(tenant)
}

func (g *gate) releaseTenant(tenant string) {
	g.mu.Lock()
	if n := g.tenants[tenant] - 1; n > 0 {
		g.tenants[tenant] = n
	} else {
		delete(g.tenants, tenant)
	}
	g.mu.Unlock()
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
