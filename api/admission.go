package api

import (
	"container/list"
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
//     the whole node. With the node full, a request within its share
//     waits in the queue (at most Queue such waiters); a request past its
//     share may wait too, but only in a place of Queue/4 for such
//     requests, and gets 429 at once when that is taken or 429 when its
//     wait runs out. A slot that frees goes to the longest waiter within
//     its share, then to the longest waiter past it, before any new
//     request. So a tenant flooding the node cannot starve another: the
//     other's requests wait at most about one request's service time for a
//     slot; and a lone tenant's burst (a WAL flush or a pause holding every
//     slot for a few ms) waits instead of being refused.
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
	// a request is admitted to a free slot, or waits behind every request
	// within its share, Queue/4 such at most, else refused with 429).
	Tenant int
	// Queue is how many requests within their tenant's share may wait for
	// a Node slot at once; Queue/4 (at least 1 if Queue is not 0) more
	// past their share may wait behind them.
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
// (bounded false) admits everything.
//
// Waiting requests are in two FIFO lists: those within their tenant's
// share, at most Limits.Queue, and those past it, at most overQueue
// (Queue/4), so that a burst of a lone tenant (a WAL flush or a pause
// holding every slot for a few ms) is absorbed instead of refused. A slot
// that frees goes to the longest waiter within its share first, then to
// the longest waiter past it, before any new request: a tenant flooding
// the node waits behind every other tenant's requests.
type gate struct {
	limits    Limits
	wait      time.Duration
	bounded   bool
	overQueue int
	// waiting counts both lists (tests and the queue gauge read it).
	waiting atomic.Int64

	mu           sync.Mutex
	inFlight     int
	tenants      map[string]int // in flight and waiting, by tenant
	within, over list.List      // of *waiter
}

// waiter is a request waiting for a slot: granted receives the slot that
// release hands over; elem is its place in its list until then.
type waiter struct {
	granted chan struct{}
	elem    *list.Element
	list    *list.List
}

func newGate(l Limits, wait time.Duration) *gate {
	g := &gate{limits: l, wait: wait}
	if l.Node <= 0 {
		return g
	}
	if g.limits.Tenant <= 0 || g.limits.Tenant > l.Node {
		g.limits.Tenant = l.Node
	}
	g.bounded = true
	g.overQueue = g.limits.Queue / 4
	if g.overQueue == 0 && g.limits.Queue > 0 {
		g.overQueue = 1
	}
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
	if !g.bounded {
		return ""
	}
	g.mu.Lock()
	over := g.tenants[tenant] >= g.limits.Tenant
	// Requests wait only while every slot is taken: a free slot is
	// taken at once.
	if g.inFlight < g.limits.Node {
		g.inFlight++
		g.tenants[tenant]++
		g.mu.Unlock()
		return ""
	}
	q, refused := &g.within, ""
	switch {
	case over && (g.wait <= 0 || g.over.Len() >= g.overQueue):
		// Past its share with the node full and the place for such
		// waiters taken: refused, so that the slots that free go to
		// the tenants within theirs.
		refused = RefusedTenant
	case over:
		q = &g.over
	case g.wait <= 0:
		refused = RefusedNode
	case g.within.Len() >= g.limits.Queue:
		refused = RefusedQueue
	}
	if refused != "" {
		g.mu.Unlock()
		return refused
	}
	w := &waiter{granted: make(chan struct{}, 1), list: q}
	w.elem = q.PushBack(w)
	g.tenants[tenant]++
	g.waiting.Add(1)
	g.mu.Unlock()
	return g.await(ctx, w, tenant, over, m)
}

// await waits for w's slot, up to the gate's wait.
func (g *gate) await(ctx context.Context, w *waiter, tenant string, over bool, m AdmissionCounters) string {
	m.Queued(1)
	start := time.Now()
	defer m.Queued(-1)
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	reason := RefusedNode
	if over {
		reason = RefusedTenant
	}
	select {
	case <-w.granted:
		// The caller may have gone in the same instant: do not start
		// its work.
		if ctx.Err() != nil {
			g.release(tenant)
			m.Waited(time.Since(start), false)
			return RefusedGone
		}
		m.Waited(time.Since(start), true)
		return ""
	case <-timer.C:
	case <-ctx.Done():
		reason = RefusedGone
	}
	g.mu.Lock()
	if w.elem != nil {
		w.list.Remove(w.elem)
		w.elem = nil
		g.waiting.Add(-1)
		g.releaseTenant(tenant)
		g.mu.Unlock()
	} else {
		// Granted in the same instant: give the slot back.
		g.mu.Unlock()
		<-w.granted
		g.release(tenant)
	}
	m.Waited(time.Since(start), false)
	return reason
}

// release gives back the slot tenant's request held: to the longest
// waiter within its share, else to the longest waiter past it, else free.
func (g *gate) release(tenant string) {
	if !g.bounded {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseTenant(tenant)
	e := g.within.Front()
	if e == nil {
		e = g.over.Front()
	}
	if e == nil {
		g.inFlight--
		return
	}
	w := e.Value.(*waiter)
	w.list.Remove(e)
	w.elem = nil
	g.waiting.Add(-1)
	w.granted <- struct{}{} // buffered: the slot passes to w
}

// releaseTenant forgets one of tenant's requests; g.mu is held.
func (g *gate) releaseTenant(tenant string) {
	if n := g.tenants[tenant] - 1; n > 0 {
		g.tenants[tenant] = n
	} else {
		delete(g.tenants, tenant)
	}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
