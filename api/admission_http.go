package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/eventvault/eventvault"
)

// codeTooManyRequests is the problem code of a 429: the tenant holds its
// share of the node (RFC 6585, section 4).
const codeTooManyRequests eventvault.Code = "too_many_requests"

// Admission is the admission control of one node (admission.go): a gate
// per class. Its methods are safe for concurrent use. A nil *Admission
// admits everything.
type Admission struct {
	appends, reads *gate
	retryAfter     string
	metrics        AdmissionMetrics
	// answers are the refusals' problems, rendered once by class and
	// reason: a refusal is answered without marshalling anything.
	answers map[string]map[string]refusalAnswer
}

// refusalAnswer is a refusal's status and problem body, rendered once:
// the body with an http_request_id is before, the id, after (the id is
// one setRequestID accepted or made, which JSON needs not escape); plain
// is the body without one.
type refusalAnswer struct {
	status               int
	before, after, plain []byte
}

// idMarker stands for the request id in a rendered refusal.
const idMarker = "eventvault-request-id-marker"

func newRefusalAnswer(class, reason string, l Limits) refusalAnswer {
	status, code, detail := refusal(class, reason, l)
	plain, st := problemBody(status, code, detail, nil)
	with, _ := problemBody(status, code, detail, map[string]any{"http_request_id": idMarker})
	before, after, _ := bytes.Cut(with, []byte(idMarker))
	return refusalAnswer{status: st, before: before, after: after, plain: plain}
}

// body is the answer's problem body for request id ("" for none).
func (r refusalAnswer) body(id string) []byte {
	if id == "" {
		return r.plain
	}
	b := make([]byte, 0, len(r.before)+len(id)+len(r.after))
	return append(append(append(b, r.before...), id...), r.after...)
}

// NewAdmission returns the admission control cfg describes; m may be nil.
func NewAdmission(cfg AdmissionConfig, m AdmissionMetrics) *Admission {
	a := &Admission{
		appends:    newGate(cfg.Appends, cfg.QueueWait),
		reads:      newGate(cfg.Reads, cfg.QueueWait),
		retryAfter: strconv.Itoa(retryAfterSeconds(cfg.RetryAfter)),
		metrics:    m,
		answers:    map[string]map[string]refusalAnswer{},
	}
	for _, class := range []string{ClassAppend, ClassRead} {
		a.answers[class] = map[string]refusalAnswer{}
		for _, reason := range []string{RefusedTenant, RefusedNode, RefusedQueue, RefusedGone} {
			a.answers[class][reason] = newRefusalAnswer(class, reason, a.gate(class).limits)
		}
	}
	return a
}

func (a *Admission) gate(class string) *gate {
	if class == ClassAppend {
		return a.appends
	}
	return a.reads
}

func (a *Admission) counters(method, route string) AdmissionCounters {
	if a.metrics == nil {
		return noAdmissionCounters{}
	}
	return a.metrics.AdmissionCounters(method, route)
}

// ticket is an admitted request's hold on its gate: end gives it back.
type ticket struct {
	g      *gate
	tenant string
	m      AdmissionCounters
	cancel context.CancelFunc
}

// end releases the ticket's slot and its deadline's timer.
func (t ticket) end() {
	if t.cancel != nil {
		t.cancel()
	}
	t.m.InFlight(-1)
	t.g.release(t.tenant)
}

// enter admits a request of class for tenant. Admitted, it returns the
// context the request runs under (with the class's Timeout) and the ticket
// to end when the request ends; refused, the reason.
func (a *Admission) enter(ctx context.Context, g *gate, tenant string, m AdmissionCounters) (context.Context, ticket, string) {
	if reason := g.acquire(ctx, tenant, m); reason != "" {
		m.Refused(reason)
		return nil, ticket{}, reason
	}
	m.InFlight(1)
	t := ticket{g: g, tenant: tenant, m: m}
	if g.limits.Timeout > 0 {
		ctx, t.cancel = context.WithTimeout(ctx, g.limits.Timeout)
	}
	return ctx, t, ""
}

// refusal is the status, code and detail of a refused request of class.
func refusal(class, reason string, l Limits) (int, eventvault.Code, string) {
	what := "appends"
	if class == ClassRead {
		what = "reads"
	}
	switch reason {
	case RefusedTenant:
		return http.StatusTooManyRequests, codeTooManyRequests, fmt.Sprintf("this node is full and this tenant has more %s in flight on it than its share (%d): nothing was done; retry after the seconds in Retry-After, and send fewer at once (an append takes up to 500 events)", what, l.Tenant)
	case RefusedQueue:
		return http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, fmt.Sprintf("this node is serving as many %s as it can (%d) and its queue is full: nothing was done; retry after the seconds in Retry-After, or on another node", what, l.Node)
	case RefusedGone:
		return http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, "the request's deadline passed, or its caller went away, before it could start: nothing was done; retry after the seconds in Retry-After"
	}
	return http.StatusServiceUnavailable, eventvault.EUNAVAILABLE, fmt.Sprintf("this node is serving as many %s as it can (%d) and none finished in time: nothing was done; retry after the seconds in Retry-After, or on another node", what, l.Node)
}

// admit is the gin handler that admits a route's requests through the
// gate of class (ClassAppend, ClassRead), by the authenticated tenant: it
// goes after authenticate in the route's chain. route is the route's
// template as gin reports it (c.FullPath()) and methods the methods it is
// registered for, so that its counters are found once, here.
//
// To keep a route out of admission (a long-lived SSE subscription, an
// admin endpoint), leave admit out of its handler chain: nothing else
// counts it. A nil s.admission admits everything.
func (s *Server) admit(class, route string, methods ...string) gin.HandlerFunc {
	a := s.admission
	if a == nil || !a.gate(class).bounded && a.gate(class).limits.Timeout <= 0 {
		return func(*gin.Context) {} // gin goes on to the next handler
	}
	g := a.gate(class)
	answers := a.answers[class]
	counters := make(map[string]AdmissionCounters, len(methods))
	for _, m := range methods {
		counters[m] = a.counters(m, route)
	}
	return func(c *gin.Context) {
		m := counters[c.Request.Method]
		if m == nil {
			m = noAdmissionCounters{}
		}
		tenant := string(principal(c).Tenant)
		ctx, t, reason := a.enter(c.Request.Context(), g, tenant, m)
		if reason != "" {
			// As writeProblem answers, rendered once (refusalAnswer).
			ans := answers[reason]
			c.Header("Retry-After", a.retryAfter)
			c.Abort()
			c.Data(ans.status, ProblemContentType, ans.body(requestIDOf(c)))
			return
		}
		defer t.end()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// Handler admits next's requests through the gate of class, by the
// tenant tenantOf names, and answers a refusal as the API does (problem
// and Retry-After). It is admission for a plain http.Handler: the
// benchmark puts its raw PostgreSQL baseline behind the same bounds.
func (a *Admission) Handler(class, route string, tenantOf func(*http.Request) string, next http.Handler) http.Handler {
	g := a.gate(class)
	m := a.counters("", route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, t, reason := a.enter(r.Context(), g, tenantOf(r), m)
		if reason != "" {
			ans := a.answers[class][reason]
			w.Header().Set("Retry-After", a.retryAfter)
			w.Header().Set("Content-Type", ProblemContentType)
			w.WriteHeader(ans.status)
			_, _ = w.Write(ans.plain)
			return
		}
		defer t.end()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
