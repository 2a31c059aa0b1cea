package integration

import (
	"context"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/chartkind/chartkind/internal/testenv"
)

func gather(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// The operator's metrics are on controller-runtime's registry: reconciles per
// kind and result, served kinds, queue depth and mirror latency.
func TestMetrics(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("metricwidget", "MetricWidget"))
	createObject(t, def, ns, "m", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "metricwidget-m", nil)

	testenv.WaitFor(t, timeout, "metrics", func(context.Context) error {
		mfs := gather(t)
		for _, name := range []string{"chartkind_reconciles_total", "chartkind_served_kinds", "chartkind_queue_depth", "chartkind_mirror_latency_seconds"} {
			if mfs[name] == nil {
				return fmt.Errorf("metric %s not registered", name)
			}
		}
		found := false
		for _, m := range mfs["chartkind_reconciles_total"].GetMetric() {
			if labelOf(m, "kind") == "MetricWidget" && labelOf(m, "result") == "success" && m.GetCounter().GetValue() > 0 {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("no successful reconcile counted for MetricWidget")
		}
		if v := mfs["chartkind_served_kinds"].GetMetric()[0].GetGauge().GetValue(); v < 1 {
			return fmt.Errorf("served kinds = %v", v)
		}
		for _, m := range mfs["chartkind_mirror_latency_seconds"].GetMetric() {
			if labelOf(m, "kind") == "MetricWidget" && labelOf(m, "direction") == "object_to_helmrelease" && m.GetHistogram().GetSampleCount() > 0 {
				return nil
			}
		}
		return fmt.Errorf("no object_to_helmrelease latency observed for MetricWidget")
	})
}
