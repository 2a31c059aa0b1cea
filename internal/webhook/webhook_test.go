package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
)

// maxReplicas is a validator accepting spec.replicas up to max.
type maxReplicas struct {
	max   int64
	calls *int
}

func (v maxReplicas) Validate(spec map[string]any) field.ErrorList {
	*v.calls++
	if r, ok := spec["replicas"].(int64); ok && r > v.max {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), r, fmt.Sprintf("must be less than or equal to %d", v.max))}
	}
	return nil
}

// recorder is a KindRegistry remembering what it was told.
type recorder struct {
	kinds map[string]schema.GroupVersionResource
}

func (r *recorder) SetKind(def string, gvr schema.GroupVersionResource) { r.kinds[def] = gvr }
func (r *recorder) RemoveKind(def string)                               { delete(r.kinds, def) }

type fixture struct {
	h      *Handler
	reg    *recorder
	builds int
	calls  int
	max    int64
	fail   error
}

func newFixture() *fixture {
	f := &fixture{reg: &recorder{kinds: map[string]schema.GroupVersionResource{}}, max: 3}
	f.h = NewHandler(func(c *chart.Chart, override []byte) (Validator, error) {
		f.builds++
		if f.fail != nil {
			return nil, f.fail
		}
		return maxReplicas{max: f.max, calls: &f.calls}, nil
	}, f.reg, testLogger())
	return f
}

func testDefinition(name, kind string, inline string) *v1alpha1.ApplicationDefinition {
	d := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
	d.Spec.Application.Kind = kind
	if inline != "" {
		d.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(inline)}
	}
	return d
}

var widgetGVR = schema.GroupVersionResource{Group: "apps.chartkind.io", Version: "v1alpha1", Resource: "widgets"}

func request(op admissionv1.Operation, gvr schema.GroupVersionResource, kind, name string, spec, oldSpec map[string]any) admission.Request {
	obj := func(s map[string]any) runtime.RawExtension {
		o := map[string]any{"apiVersion": gvr.GroupVersion().String(), "kind": kind, "metadata": map[string]any{"name": name, "namespace": "ns"}}
		if s != nil {
			o["spec"] = s
		}
		b, _ := json.Marshal(o)
		return runtime.RawExtension{Raw: b}
	}
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Kind:      metav1.GroupVersionKind{Group: gvr.Group, Version: gvr.Version, Kind: kind},
		Resource:  metav1.GroupVersionResource{Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource},
		Name:      name,
		Namespace: "ns",
		Operation: op,
		Object:    obj(spec),
	}}
	if op == admissionv1.Update {
		req.OldObject = obj(oldSpec)
	}
	return req
}

func TestHandlerDeniesLikeTheAPIServer(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	if err := f.h.KindServed(ctx, testDefinition("widget", "Widget", `{"type":"object"}`), nil); err != nil {
		t.Fatal(err)
	}
	if f.reg.kinds["widget"] != widgetGVR {
		t.Fatalf("registry has %v, want widget -> %v", f.reg.kinds, widgetGVR)
	}
	before := counter(t, "Widget", "CREATE", VerdictDenied)

	resp := f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": 5}, nil))
	if resp.Allowed {
		t.Fatal("invalid spec allowed")
	}
	st := resp.Result
	want := `Widget.apps.chartkind.io "w" is invalid: spec.replicas: Invalid value: 5: must be less than or equal to 3`
	if st.Code != 422 || st.Reason != metav1.StatusReasonInvalid || st.Message != want {
		t.Errorf("status %d %s %q, want 422 Invalid %q", st.Code, st.Reason, st.Message, want)
	}
	if st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != "spec.replicas" || st.Details.Kind != "Widget" || st.Details.Group != "apps.chartkind.io" {
		t.Errorf("details %+v, want one cause at spec.replicas of Widget.apps.chartkind.io", st.Details)
	}
	if got := counter(t, "Widget", "CREATE", VerdictDenied) - before; got != 1 {
		t.Errorf("denied counter moved by %v, want 1", got)
	}

	if resp := f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": 2}, nil)); !resp.Allowed {
		t.Errorf("valid spec denied: %v", resp.Result)
	}
	if resp := f.h.Handle(ctx, request(admissionv1.Update, widgetGVR, "Widget", "w", map[string]any{"replicas": 9}, map[string]any{"replicas": 2})); resp.Allowed {
		t.Error("update to an invalid spec allowed")
	}
}

// An update that leaves spec as it was is never checked, so an object that a
// newer schema rejects can still get labels, finalizers and status.
func TestHandlerAllowsUnchangedSpecUnchecked(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	if err := f.h.KindServed(ctx, testDefinition("widget", "Widget", `{}`), nil); err != nil {
		t.Fatal(err)
	}
	invalid := map[string]any{"replicas": int64(9), "nested": map[string]any{"a": []any{1, "x"}}}
	resp := f.h.Handle(ctx, request(admissionv1.Update, widgetGVR, "Widget", "w", invalid, invalid))
	if !resp.Allowed || f.calls != 0 {
		t.Errorf("unchanged spec: allowed=%v after %d validator calls, want allowed with none", resp.Allowed, f.calls)
	}
	if resp := f.h.Handle(ctx, request(admissionv1.Update, widgetGVR, "Widget", "w", nil, nil)); !resp.Allowed {
		t.Error("update of an object without spec denied")
	}
	for _, req := range []admission.Request{
		request(admissionv1.Delete, widgetGVR, "Widget", "w", invalid, nil),
		func() admission.Request {
			r := request(admissionv1.Update, widgetGVR, "Widget", "w", invalid, map[string]any{})
			r.SubResource = "status"
			return r
		}(),
	} {
		if resp := f.h.Handle(ctx, req); !resp.Allowed {
			t.Errorf("%s %s denied", req.Operation, req.SubResource)
		}
	}
	if f.calls != 0 {
		t.Errorf("validator called %d times for requests it must not check", f.calls)
	}
}

func TestHandlerAdmitsUnknownKindWithWarning(t *testing.T) {
	f := newFixture()
	resp := f.h.Handle(context.Background(), request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": 9}, nil))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "widgets.apps.chartkind.io") {
		t.Errorf("allowed=%v warnings=%v, want allowed with a warning naming the resource", resp.Allowed, resp.Warnings)
	}
}

// KindServed runs on every definition reconcile: it rebuilds the validator
// only when the schema or values change.
func TestKindServedCachesValidator(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	c := &chart.Chart{Name: "widget", Version: "1.0.0", Schema: []byte(`{"type":"object"}`), Values: []byte("replicas: 1\n")}
	def := testDefinition("widget", "Widget", "")
	for range 3 {
		if err := f.h.KindServed(ctx, def, c); err != nil {
			t.Fatal(err)
		}
	}
	if f.builds != 1 {
		t.Fatalf("built %d validators for an unchanged chart, want 1", f.builds)
	}
	c2 := *c
	c2.Values = []byte("replicas: 2\n")
	if err := f.h.KindServed(ctx, def, &c2); err != nil {
		t.Fatal(err)
	}
	inline := testDefinition("widget", "Widget", `{"type":"object"}`)
	if err := f.h.KindServed(ctx, inline, &c2); err != nil {
		t.Fatal(err)
	}
	if f.builds != 3 {
		t.Fatalf("built %d validators, want a rebuild for new values and one for an inline schema (3)", f.builds)
	}

	// A renamed kind moves: the old resource is no longer checked.
	renamed := testDefinition("widget", "Gadget", `{"type":"object"}`)
	if err := f.h.KindServed(ctx, renamed, &c2); err != nil {
		t.Fatal(err)
	}
	gadgets := schema.GroupVersionResource{Group: "apps.chartkind.io", Version: "v1alpha1", Resource: "gadgets"}
	if f.reg.kinds["widget"] != gadgets {
		t.Errorf("registry has %v after the rename", f.reg.kinds)
	}
	if resp := f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": 9}, nil)); len(resp.Warnings) == 0 {
		t.Error("old resource still has a validator after the rename")
	}
	if resp := f.h.Handle(ctx, request(admissionv1.Create, gadgets, "Gadget", "g", map[string]any{"replicas": 9}, nil)); resp.Allowed {
		t.Error("new resource not checked after the rename")
	}

	if err := f.h.KindRetired(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	if len(f.reg.kinds) != 0 {
		t.Errorf("registry still has %v after KindRetired", f.reg.kinds)
	}
	if resp := f.h.Handle(ctx, request(admissionv1.Create, gadgets, "Gadget", "g", map[string]any{"replicas": 9}, nil)); !resp.Allowed {
		t.Error("retired kind still checked")
	}
}

// A validator that cannot be built is an error for the definition, and the
// kind is no longer checked against its previous schema.
func TestKindServedBuildFailure(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	def := testDefinition("widget", "Widget", `{"type":"object"}`)
	if err := f.h.KindServed(ctx, def, nil); err != nil {
		t.Fatal(err)
	}
	f.fail = errors.New("schema does not compile")
	err := f.h.KindServed(ctx, testDefinition("widget", "Widget", `{"type":"objectx"}`), nil)
	if err == nil || !strings.Contains(err.Error(), "Widget.apps.chartkind.io") || !strings.Contains(err.Error(), "schema does not compile") {
		t.Fatalf("err = %v, want one naming the kind and the cause", err)
	}
	resp := f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": 9}, nil))
	if !resp.Allowed || len(resp.Warnings) == 0 {
		t.Errorf("allowed=%v warnings=%v: want unchecked with a warning, not the outdated validator", resp.Allowed, resp.Warnings)
	}
}

func counter(t *testing.T, kind, op, verdict string) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := admissionRequests.WithLabelValues(kind, op, verdict).Write(m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A replica that is not the leader loads a kind through the Loader on its
// first request, re-reads it after onDemandRefresh (a new schema is picked
// up), drops it when it can no longer be confirmed, and never replaces what
// KindServed loaded with what an on-demand load read.
func TestHandlerLoadsOnDemand(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	schemaV := `{"type":"object"}`
	var loaderErr error
	loads := 0
	f.h.SetLoader(func(_ context.Context, gr schema.GroupResource) (*v1alpha1.ApplicationDefinition, *chart.Chart, error) {
		loads++
		if gr != widgetGVR.GroupResource() {
			t.Errorf("loader asked for %v", gr)
		}
		if loaderErr != nil {
			return nil, nil, loaderErr
		}
		return testDefinition("widget", "Widget", schemaV), nil, nil
	})
	handle := func() admission.Response {
		return f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": int64(5)}, nil))
	}

	if resp := handle(); resp.Allowed || loads != 1 {
		t.Fatalf("first request: allowed %v after %d loads, want denied after 1", resp.Allowed, loads)
	}
	if resp := handle(); resp.Allowed || loads != 1 {
		t.Errorf("second request: allowed %v after %d loads, want denied from the loaded validator", resp.Allowed, loads)
	}
	if len(f.reg.kinds) != 0 {
		t.Errorf("an on-demand load registered kinds %v: only the leader configures the webhook", f.reg.kinds)
	}

	// The leader applied a new schema: picked up once the entry is stale.
	defer func(d time.Duration) { onDemandRefresh = d }(onDemandRefresh)
	onDemandRefresh = 0
	schemaV, f.max = `{"type":"object","title":"v2"}`, 10
	if resp := handle(); !resp.Allowed || f.builds != 2 {
		t.Errorf("after a schema change: allowed %v with %d builds, want allowed by a rebuilt validator", resp.Allowed, f.builds)
	}

	// The definition is gone: the entry is dropped, not used unconfirmed.
	loaderErr = fmt.Errorf("no served ApplicationDefinition for widgets.apps.chartkind.io")
	if resp := handle(); !resp.Allowed || len(resp.Warnings) == 0 {
		t.Errorf("after the definition went: allowed %v warnings %v, want admitted unchecked with a warning", resp.Allowed, resp.Warnings)
	}

	// KindServed is authoritative over a concurrent on-demand load.
	onDemandRefresh = time.Hour
	f.max = 3
	if err := f.h.KindServed(ctx, testDefinition("widget", "Widget", `{"type":"object","title":"v3"}`), nil); err != nil {
		t.Fatal(err)
	}
	builds := f.builds
	f.max = 100
	if err := f.h.load(testDefinition("widget", "Widget", `{"type":"object","title":"v2"}`), nil, true); err != nil {
		t.Fatal(err)
	}
	if resp := handle(); resp.Allowed || f.builds != builds {
		t.Errorf("an on-demand load replaced KindServed's validator (allowed %v, builds %d -> %d)", resp.Allowed, builds, f.builds)
	}
}

// A slow on-demand load of one kind does not hold up another kind's.
func TestHandlerLoadsKindsIndependently(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	slow := make(chan struct{})
	gadgetGVR := schema.GroupVersionResource{Group: "apps.chartkind.io", Version: "v1alpha1", Resource: "gadgets"}
	f.h.SetLoader(func(_ context.Context, gr schema.GroupResource) (*v1alpha1.ApplicationDefinition, *chart.Chart, error) {
		if gr.Resource == "gadgets" {
			<-slow
			return testDefinition("gadget", "Gadget", `{"type":"object"}`), nil, nil
		}
		return testDefinition("widget", "Widget", `{"type":"object"}`), nil, nil
	})
	done := make(chan admission.Response)
	go func() {
		done <- f.h.Handle(ctx, request(admissionv1.Create, gadgetGVR, "Gadget", "g", map[string]any{"replicas": int64(5)}, nil))
	}()
	resp := make(chan admission.Response)
	go func() {
		resp <- f.h.Handle(ctx, request(admissionv1.Create, widgetGVR, "Widget", "w", map[string]any{"replicas": int64(5)}, nil))
	}()
	select {
	case r := <-resp:
		if r.Allowed {
			t.Error("widget allowed: its validator was not loaded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a widget request waited for the gadget's load")
	}
	close(slow)
	if r := <-done; r.Allowed {
		t.Error("gadget allowed after its load")
	}
}
