package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventvault/eventvault/api"
)

// admissionMetrics are admission control's gauges and counters
// (api/admission.go), by method and route template.
type admissionMetrics struct {
	inFlight *prometheus.GaugeVec
	queued   *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	wait     *prometheus.HistogramVec
}

func newAdmissionMetrics() admissionMetrics {
	return admissionMetrics{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventvault_admission_in_flight",
			Help: "Requests admitted by admission control and running, by method and route template.",
		}, []string{"method", "route"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventvault_admission_queued",
			Help: "Requests waiting for a slot of admission control (at most -admission-queue-wait), by method and route template.",
		}, []string{"method", "route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventvault_admission_refused_total",
			Help: "Requests admission control refused, by method, route template and reason: tenant_full (429), node_full and queue_full (503), gone (the caller left or its deadline passed before the request started).",
		}, []string{"method", "route", "reason"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventvault_admission_wait_seconds",
			Help:    "How long requests waited in admission control's queue for a slot, in seconds, by method, route template and outcome: admitted (a slot came free) or refused (the wait ran out, or the caller left). Requests admitted at once, or refused at once, are not in it.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1},
		}, []string{"method", "route", "outcome"}),
	}
}

func (a admissionMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.inFlight, a.queued, a.refused, a.wait}
}

// AdmissionCounters returns the admission counters of one method and
// route template, their series created at zero.
func (r *Registry) AdmissionCounters(method, route string) api.AdmissionCounters {
	c := &admissionCounters{
		inFlight: r.admission.inFlight.WithLabelValues(method, route),
		queued:   r.admission.queued.WithLabelValues(method, route),
		refused:  make(map[string]prometheus.Counter, 4),
		admitted: r.admission.wait.WithLabelValues(method, route, "admitted"),
		gaveUp:   r.admission.wait.WithLabelValues(method, route, "refused"),
	}
	for _, reason := range []string{api.RefusedTenant, api.RefusedNode, api.RefusedQueue, api.RefusedGone} {
		c.refused[reason] = r.admission.refused.WithLabelValues(method, route, reason)
	}
	return c
}

// admissionCounters are one route's series, looked up once: the admitted
// path costs two atomic adds.
type admissionCounters struct {
	inFlight prometheus.Gauge
	queued   prometheus.Gauge
	refused  map[string]prometheus.Counter // read only once built
	// admitted and gaveUp observe queue waits by outcome.
	admitted, gaveUp prometheus.Observer
}

func (c *admissionCounters) Waited(d time.Duration, admitted bool) {
	if admitted {
		c.admitted.Observe(d.Seconds())
	} else {
		c.gaveUp.Observe(d.Seconds())
	}
}

func (c *admissionCounters) InFlight(delta int) { c.inFlight.Add(float64(delta)) }
func (c *admissionCounters) Queued(delta int)   { c.queued.Add(float64(delta)) }
func (c *admissionCounters) Refused(reason string) {
	if n, ok := c.refused[reason]; ok {
		n.Inc()
	}
}
