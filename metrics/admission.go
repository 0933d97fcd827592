package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventvault/eventvault/api"
)

// admissionMetrics are admission control's gauges and counters
// (api/admission.go), by method and route template.
type admissionMetrics struct {
	inFlight *prometheus.GaugeVec
	queued   *prometheus.GaugeVec
	refused  *prometheus.CounterVec
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
	}
}

func (a admissionMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.inFlight, a.queued, a.refused}
}

// AdmissionCounters returns the admission counters of one method and
// route template, their series created at zero.
func (r *Registry) AdmissionCounters(method, route string) api.AdmissionCounters {
	c := &admissionCounters{
		inFlight: r.admission.inFlight.WithLabelValues(method, route),
		queued:   r.admission.queued.WithLabelValues(method, route),
		refused:  make(map[string]prometheus.Counter, 4),
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
}

func (c *admissionCounters) InFlight(delta int) { c.inFlight.Add(float64(delta)) }
func (c *admissionCounters) Queued(delta int)   { c.queued.Add(float64(delta)) }
func (c *admissionCounters) Refused(reason string) {
	if n, ok := c.refused[reason]; ok {
		n.Inc()
	}
}
