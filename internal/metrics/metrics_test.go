package metrics

import (
	"context"
	"testing"
	"time"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func latencySamples(t *testing.T, kind string) uint64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "chartkind_mirror_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					n += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return n
}

func TestObserveMirror(t *testing.T) {
	ObserveMirror(context.Background(), "NoEvent", DirectionToRelease) // no event time: nothing observed
	if n := latencySamples(t, "NoEvent"); n != 0 {
		t.Fatalf("observed without an event time: %d", n)
	}
	ctx := WithEventTime(context.Background(), time.Now().Add(-time.Second))
	if _, ok := EventTime(ctx); !ok {
		t.Fatal("event time lost")
	}
	ObserveMirror(ctx, "Postgres", DirectionToRelease)
	if n := latencySamples(t, "Postgres"); n != 1 {
		t.Fatalf("samples = %d, want 1", n)
	}
	if _, ok := EventTime(WithEventTime(context.Background(), time.Time{})); ok {
		t.Error("zero event time reported")
	}
}
