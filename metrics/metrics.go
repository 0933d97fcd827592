// Package metrics is EventVault's Prometheus instrumentation: one Registry
// of every metric the server exports, and the handler that serves it in
// the Prometheus text format. github.com/prometheus/client_golang enters
// the project here only; the other packages report through small
// interfaces they define (api.Metrics, postgres.Observer, the keyring's
// cache hook) that Registry implements, and cmd wires it.
//
// No metric carries a tenant, a stream name, a subject, a token or a raw
// path: routes are gin's templates (/v1/streams/:stream/events), so a
// scrape holds counts only and names nothing a tenant wrote.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	evcrypto "github.com/eventvault/eventvault/crypto"
)

// Registry holds EventVault's metrics. Its methods are safe for concurrent
// use; a nil *Registry is not.
type Registry struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	appended     prometheus.Counter
	read         prometheus.Counter
	keyCache     *prometheus.CounterVec
	rootCalls    *prometheus.CounterVec
	groupAppends prometheus.Histogram
	groupEvents  prometheus.Histogram
	groupWritten prometheus.Counter
	storeErrors  *prometheus.CounterVec
	storeRetries *prometheus.CounterVec
	admission    admissionMetrics
}

// New returns a Registry with every metric at zero, and the Go runtime's
// and the process's collectors.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventvault_http_requests_total",
		Help: "HTTP requests answered, by method, route template and status.",
	}, []string{"method", "route", "status"})
	r.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eventvault_http_request_duration_seconds",
		Help:    "Time from a request's arrival to its answer, by method and route template.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method", "route"})
	r.appended = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventvault_events_appended_total",
		Help: "Events appended (replays not counted again).",
	})
	r.read = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventvault_events_read_total",
		Help: "Events returned by stream reads and reads of all events.",
	})
	r.keyCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventvault_key_cache_lookups_total",
		Help: "Lookups in the keyring's cache of unwrapped keys, by key kind (stream, kek) and result (hit, miss).",
	}, []string{"kind", "result"})
	r.rootCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventvault_root_key_calls_total",
		Help: "Calls to the root key provider (Vault Transit or the local root key), by operation (wrap, unwrap) and result (ok, error).",
	}, []string{"op", "result"})
	groupBuckets := []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}
	r.groupAppends = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eventvault_append_group_appends",
		Help:    "Appends carried by each group commit of the PostgreSQL store.",
		Buckets: groupBuckets[:8],
	})
	r.groupEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eventvault_append_group_events",
		Help:    "Events carried by each group commit of the PostgreSQL store.",
		Buckets: groupBuckets,
	})
	r.groupWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventvault_append_group_written_total",
		Help: "Appends a group commit wrote; the others took the store's locking path (a stale cached version, or a failed group).",
	})
	r.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventvault_store_errors_total",
		Help: "Errors the store returned, by EventVault error code (conflict, unavailable, ...).",
	}, []string{"code"})
	r.storeRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventvault_store_retries_total",
		Help: "Transactions the store ran again, by why the last attempt ended (deadlock, serialization, unique, lost_session, unsent); a deadlock is a fault to look into.",
	}, []string{"reason"})
	r.admission = newAdmissionMetrics()
	r.reg.MustRegister(r.admission.collectors()...)
	r.reg.MustRegister(r.requests, r.latency, r.appended, r.read, r.keyCache, r.rootCalls,
		r.groupAppends, r.groupEvents, r.groupWritten, r.storeErrors, r.storeRetries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, kind := range []string{"stream", "kek"} {
		for _, result := range []string{"hit", "miss"} {
			r.keyCache.WithLabelValues(kind, result)
		}
	}
	for _, op := range []string{"wrap", "unwrap"} {
		for _, result := range []string{"ok", "error"} {
			r.rootCalls.WithLabelValues(op, result)
		}
	}
	// At zero from the start, for an alert on any increase
	// (postgres.RetryDeadlock).
	r.storeRetries.WithLabelValues("deadlock")
	return r
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Gatherer is the registry, for tests and for tools that read it in process.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// ObserveRequest counts a request answered on route (a template, never a
// raw path) and its duration.
func (r *Registry) ObserveRequest(method, route string, status int, d time.Duration) {
	r.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	r.latency.WithLabelValues(method, route).Observe(d.Seconds())
}

// EventsAppended counts n events appended.
func (r *Registry) EventsAppended(n int) { r.appended.Add(float64(n)) }

// EventsRead counts n events read.
func (r *Registry) EventsRead(n int) { r.read.Add(float64(n)) }

// KeyCacheLookup counts a lookup in the keyring's cache; kind is
// "stream", "subject" or "kek".
func (r *Registry) KeyCacheLookup(kind string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	r.keyCache.WithLabelValues(kind, result).Inc()
}

// GroupCommitted records one group commit of the PostgreSQL store.
func (r *Registry) GroupCommitted(appends, events, written int) {
	r.groupAppends.Observe(float64(appends))
	r.groupEvents.Observe(float64(events))
	r.groupWritten.Add(float64(written))
}

// StoreError counts an error the store returned, by its code.
func (r *Registry) StoreError(_, code string) {
	if code == "" {
		code = "internal"
	}
	r.storeErrors.WithLabelValues(code).Inc()
}

// StoreRetry counts a transaction the store ran again, by reason.
func (r *Registry) StoreRetry(_, reason string) {
	r.storeRetries.WithLabelValues(reason).Inc()
}

// Root returns root with every call counted in
// eventvault_root_key_calls_total.
func (r *Registry) Root(root evcrypto.RootKeyProvider) evcrypto.RootKeyProvider {
	return &countedRoot{inner: root, calls: r.rootCalls}
}

type countedRoot struct {
	inner evcrypto.RootKeyProvider
	calls *prometheus.CounterVec
}

func (c *countedRoot) count(op string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	c.calls.WithLabelValues(op, result).Inc()
}

// Unwrap returns the counted provider, so that its other capabilities
// (probe, rotate, rewrap) stay visible (evcrypto.RootAs).
func (c *countedRoot) Unwrap() evcrypto.RootKeyProvider { return c.inner }

// WrapKey counts and passes on.
func (c *countedRoot) WrapKey(ctx context.Context, key, aad []byte) ([]byte, error) {
	out, err := c.inner.WrapKey(ctx, key, aad)
	c.count("wrap", err)
	return out, err
}

// UnwrapKey counts and passes on.
func (c *countedRoot) UnwrapKey(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	out, err := c.inner.UnwrapKey(ctx, wrapped, aad)
	c.count("unwrap", err)
	return out, err
}
