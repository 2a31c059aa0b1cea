package mirror

import (
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
)

func testDef(name, kind, chart string) *v1alpha1.ApplicationDefinition {
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind},
			Release: v1alpha1.ReleaseSpec{
				Chart: &v1alpha1.ChartTemplate{Name: chart, Version: "1.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}},
				Interval: metav1.Duration{Duration: 5 * time.Minute},
			},
		},
	}
}

func testRelease(ns, name, chart, sourceNS string) *helmv2.HelmRelease {
	return &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: helmv2.HelmReleaseSpec{Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
			Chart: chart, SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: sourceNS}}}},
	}
}

func TestMatches(t *testing.T) {
	def := testDef("pg", "Postgres", "postgres")
	cases := []struct {
		hr   *helmv2.HelmRelease
		want bool
	}{
		{testRelease("db", "postgres-orders", "postgres", ""), true},
		{testRelease("db", "postgres-orders", "postgres", "db"), true}, // same namespace spelled out
		{testRelease("db", "postgres-orders", "postgres", "other"), false},
		{testRelease("db", "postgres-orders", "mysql", ""), false},
		{testRelease("db", "orders", "postgres", ""), false},
		{testRelease("db", "postgres-", "postgres", ""), false},
	}
	for _, c := range cases {
		if got := Matches(def, c.hr); got != c.want {
			t.Errorf("Matches(%s chart %s ns %q) = %v, want %v", c.hr.Name, c.hr.Spec.Chart.Spec.Chart, c.hr.Spec.Chart.Spec.SourceRef.Namespace, got, c.want)
		}
	}
	ref := testDef("pgref", "PgRef", "x")
	ref.Spec.Release.Chart = nil
	ref.Spec.Release.ChartRef = &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "pg"}
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "pgref-a"},
		Spec: helmv2.HelmReleaseSpec{ChartRef: &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "pg", Namespace: "db"}}}
	if !Matches(ref, hr) {
		t.Errorf("chartRef release not matched")
	}
	hr.Spec.ChartRef.Name = "other"
	if Matches(ref, hr) {
		t.Errorf("chartRef of another source matched")
	}
}

func TestReleaseOwner(t *testing.T) {
	pg := testDef("pg", "Postgres", "postgres")
	pg2 := testDef("pg2", "Pg", "postgres")
	pg2.Spec.Release.Prefix = "postgres-ha-"
	served := []*v1alpha1.ApplicationDefinition{pg, pg2}
	m := &Mirror{}

	labelled := testRelease("db", "postgres-a", "nginx", "")
	labelled.Labels = map[string]string{LabelDefinition: "pg", LabelName: "a"}
	if d, n, ok := m.ReleaseOwner(labelled, served); !ok || d != "pg" || n != "a" {
		t.Errorf("labelled: %s %s %v", d, n, ok)
	}
	// The longest matching prefix wins.
	if d, n, ok := m.ReleaseOwner(testRelease("db", "postgres-ha-b", "postgres", ""), served); !ok || d != "pg2" || n != "b" {
		t.Errorf("unlinked: %s %s %v", d, n, ok)
	}
	ctrl := true
	owned := testRelease("db", "whatever", "nginx", "")
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps.chartkind.io/v1alpha1", Kind: "Postgres", Name: "c", UID: "u", Controller: &ctrl}}
	if d, n, ok := m.ReleaseOwner(owned, served); !ok || d != "pg" || n != "c" {
		t.Errorf("owned: %s %s %v", d, n, ok)
	}
	foreign := testRelease("db", "postgres-d", "postgres", "")
	foreign.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u", Controller: &ctrl}}
	if _, _, ok := m.ReleaseOwner(foreign, served); ok {
		t.Errorf("release controlled by something else mapped")
	}
	if _, _, ok := m.ReleaseOwner(testRelease("db", "redis-a", "redis", ""), served); ok {
		t.Errorf("unrelated release mapped")
	}
}

func TestDigestIsSemantic(t *testing.T) {
	a := map[string]any{"replicas": int64(3), "tags": map[string]any{"b": "2", "a": "1"}}
	b, err := decodeValues(&apiextensionsv1.JSON{Raw: []byte(`{"tags": {"a": "1", "b": "2"}, "replicas": 3.0}`)})
	if err != nil {
		t.Fatal(err)
	}
	if digest(a) != digest(b) {
		t.Errorf("equal values digest differently: %s vs %s", canonicalJSON(a), canonicalJSON(b))
	}
	if digest(nil) != digest(map[string]any{}) {
		t.Errorf("no values and empty values differ")
	}
	if digest(a) == digest(map[string]any{"replicas": int64(3)}) {
		t.Errorf("different values digest alike")
	}
}

// What the API server defaults on a HelmRelease must not look like drift.
func TestApplyDesiredIgnoresServerDefaults(t *testing.T) {
	def := testDef("pg", "Postgres", "postgres")
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"replicas": int64(1)}}}
	obj.SetAPIVersion("apps.chartkind.io/v1alpha1")
	obj.SetKind("Postgres")
	obj.SetName("a")
	obj.SetNamespace("db")
	obj.SetUID("uid-1")
	obj.SetGeneration(1)
	tg := &target{def: def, names: definition.Effective(def), gvk: GVK(def)}
	tg.key.Namespace, tg.key.Name = "db", "a"
	m := &Mirror{}

	hr := &helmv2.HelmRelease{}
	values, _ := specValues(obj)
	m.applyDesired(tg, obj, hr, values)
	stored := hr.DeepCopy()
	stored.Spec.Chart.Spec.ReconcileStrategy = "ChartVersion" // server defaults
	stored.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"replicas":1}`)}

	again := stored.DeepCopy()
	m.applyDesired(tg, obj, again, values)
	if !releaseEqual(stored, again) {
		t.Errorf("server defaults taken for drift")
	}
	drifted := stored.DeepCopy()
	drifted.Spec.Chart.Spec.Version = "2.0.0"
	fixed := drifted.DeepCopy()
	m.applyDesired(tg, obj, fixed, values)
	if releaseEqual(drifted, fixed) || fixed.Spec.Chart.Spec.Version != "1.x" {
		t.Errorf("drifted chart version not restored: %s", fixed.Spec.Chart.Spec.Version)
	}
	if ref := metav1.GetControllerOf(fixed); ref == nil || ref.UID != "uid-1" {
		t.Errorf("controller reference: %+v", ref)
	}
}

// With one storage namespace for every release, objects of the same name in
// two namespaces must not share a Helm release.
func TestHelmReleaseNameWithStorageNamespace(t *testing.T) {
	if got := helmReleaseName("a", "redis-db", ""); got != "redis-db" {
		t.Errorf("without a storage namespace: %q", got)
	}
	a, b := helmReleaseName("tenant-a", "redis-db", "helm"), helmReleaseName("tenant-b", "redis-db", "helm")
	if a != "tenant-a-redis-db" || a == b {
		t.Errorf("with a storage namespace: %q and %q", a, b)
	}
	long := helmReleaseName(strings.Repeat("n", 63), strings.Repeat("x", 53), "helm")
	if len(long) != 53 || long == helmReleaseName(strings.Repeat("n", 63), strings.Repeat("x", 52)+"y", "helm") {
		t.Errorf("shortened names: %q (%d)", long, len(long))
	}
}
