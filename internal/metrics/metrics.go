// Package metrics holds chartkind's Prometheus metrics. They are registered on
// controller-runtime's metrics.Registry, so the manager's metrics endpoint
// serves them next to controller-runtime's own.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Directions of a mirror latency observation.
const (
	// DirectionToRelease is an object change written to its HelmRelease.
	DirectionToRelease = "object_to_helmrelease"
	// DirectionToObject is a HelmRelease change (values or readiness) written to its object.
	DirectionToObject = "helmrelease_to_object"
)

// Results of a reconcile.
const (
	ResultSuccess = "success"
	ResultError   = "error"
	ResultRequeue = "requeue"
)

var (
	// Reconciles counts application object reconciles per kind and result.
	Reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartkind_reconciles_total",
		Help: "Reconciles of application objects, per kind and result.",
	}, []string{"kind", "result"})

	// Errors counts failed application object reconciles per kind.
	Errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartkind_reconcile_errors_total",
		Help: "Failed reconciles of application objects, per kind.",
	}, []string{"kind"})

	// QueueDepth is the number of object keys waiting in the engine's work queue.
	QueueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chartkind_queue_depth",
		Help: "Object keys waiting in the engine's work queue.",
	})

	// Waiting is the number of object keys waiting for a later reconcile.
	Waiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chartkind_requeues_waiting",
		Help: "Object keys waiting to be reconciled again later: the next health check of a release, a retry after a backoff, a dependency not ready yet.",
	})

	// MirrorLatency is the time from an event to the write that mirrors it.
	MirrorLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chartkind_mirror_latency_seconds",
		Help:    "Seconds from a change to its mirror being written: object change to HelmRelease written, HelmRelease change to object written.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"kind", "direction"})

	// InsightDuration is how long reading what one release installed takes
	// (health and access information), per kind and result.
	InsightDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chartkind_release_observe_seconds",
		Help:    "Seconds to read the objects one release installed (health and access information), per kind and result.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}, []string{"kind", "result"})

	// InsightSkipped counts reconciles that read nothing of what a release
	// installed, because the object already shows the release as it is and
	// its recheck is not due.
	InsightSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartkind_release_observe_skipped_total",
		Help: "Reconciles that did not read what a release installed: the object already shows the release as it is, and its recheck is not due.",
	}, []string{"kind"})

	// ServedKinds is the number of kinds the engine serves.
	ServedKinds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chartkind_served_kinds",
		Help: "Application kinds currently served.",
	})
)

func init() {
	crmetrics.Registry.MustRegister(Reconciles, Errors, QueueDepth, Waiting, MirrorLatency, ServedKinds, InsightDuration, InsightSkipped)
}

type eventTimeKey struct{}

// WithEventTime returns ctx carrying the time the event that caused a reconcile
// was first seen, so the code that writes the mirror can observe latency.
func WithEventTime(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, eventTimeKey{}, t)
}

// EventTime returns the time stored by WithEventTime.
func EventTime(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(eventTimeKey{}).(time.Time)
	return t, ok && !t.IsZero()
}

// ObserveMirror records the latency of a mirror write for kind in direction,
// measured from the event time in ctx; it does nothing without one.
func ObserveMirror(ctx context.Context, kind, direction string) {
	if t, ok := EventTime(ctx); ok {
		MirrorLatency.WithLabelValues(kind, direction).Observe(time.Since(t).Seconds())
	}
}

// ObserveInsight records one read of what a release installed.
func ObserveInsight(kind string, d time.Duration, err error) {
	result := ResultSuccess
	if err != nil {
		result = ResultError
	}
	InsightDuration.WithLabelValues(kind, result).Observe(d.Seconds())
}
