package webhook

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/chartkind/chartkind/internal/chart"
)

// BenchmarkHandle measures one admission decision for the postgres example
// chart with the real validator (decode, compare, Helm's merge and schema
// check, response), without the network.
func BenchmarkHandle(b *testing.B) {
	c, err := chart.Load("../../examples/charts/postgres")
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(nil, nil, testLogger())
	if err := h.KindServed(context.Background(), testDefinition("postgres", "Postgres", ""), c); err != nil {
		b.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "apps.chartkind.io", Version: "v1alpha1", Resource: "postgreses"}
	valid := map[string]any{"replicas": 3, "users": map[string]any{"app": map[string]any{"roles": []any{"login"}}}, "parameters": map[string]any{"max_connections": 200}}
	invalid := map[string]any{"replicas": 3, "parameters": map[string]any{"max_connections": []any{1}}}
	for _, bc := range []struct {
		name    string
		spec    map[string]any
		allowed bool
	}{{"valid", valid, true}, {"invalid", invalid, false}} {
		req := request(admissionv1.Create, gvr, "Postgres", "db", bc.spec, nil)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if resp := h.Handle(context.Background(), req); resp.Allowed != bc.allowed {
					b.Fatalf("allowed = %v: %v", resp.Allowed, resp.Result)
				}
			}
		})
	}
}

// The real validator gives Helm's verdict on the example chart, field by field.
func TestDefaultValidatorOnExampleChart(t *testing.T) {
	c, err := chart.Load("../../examples/charts/postgres")
	if err != nil {
		t.Fatal(err)
	}
	v, err := DefaultValidator(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.Validate(map[string]any{"replicas": int64(3)}); len(errs) != 0 {
		t.Errorf("valid spec: %v", errs)
	}
	errs := v.Validate(map[string]any{"parameters": map[string]any{"max_connections": []any{int64(1)}}})
	if len(errs) != 1 || errs[0].Field != "spec.parameters.max_connections" {
		t.Errorf("errors %v, want one at spec.parameters.max_connections", errs)
	}
}
