package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Verdicts of an admission request, the "verdict" label of
// chartkind_admission_requests_total.
const (
	// VerdictAllowed: the spec passed Helm's checks.
	VerdictAllowed = "allowed"
	// VerdictDenied: the spec failed them; the request was rejected.
	VerdictDenied = "denied"
	// VerdictUnchanged: an update that leaves the spec as it was, allowed unchecked.
	VerdictUnchanged = "unchanged"
	// VerdictUnchecked: no validator is loaded for the kind; allowed with a warning.
	VerdictUnchecked = "unchecked"
	// VerdictError: the request could not be read; rejected with an error.
	VerdictError = "error"
	// VerdictIgnored: not a request the webhook checks (another operation, a subresource).
	VerdictIgnored = "ignored"
)

var (
	// admissionRequests counts admission requests per kind, operation and verdict.
	admissionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartkind_admission_requests_total",
		Help: "Admission requests for application objects, per kind, operation (CREATE, UPDATE) and verdict (allowed, denied, unchanged, unchecked, error, ignored).",
	}, []string{"kind", "operation", "verdict"})

	// admissionDuration is the time the handler takes to answer, per kind. It
	// excludes the network and TLS, which the API server's own
	// apiserver_admission_webhook_admission_duration_seconds includes.
	admissionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chartkind_admission_duration_seconds",
		Help:    "Seconds the admission handler takes to decide on a request, per kind.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"kind"})

	// certExpiry is when the served certificate and the signing CA expire,
	// for alerting on a rotation that does not happen.
	certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "chartkind_webhook_certificate_expiry_timestamp_seconds",
		Help: "Unix time at which the self-managed webhook certificate expires, per certificate (serving, ca).",
	}, []string{"certificate"})
)

func init() {
	crmetrics.Registry.MustRegister(admissionRequests, admissionDuration, certExpiry)
}
