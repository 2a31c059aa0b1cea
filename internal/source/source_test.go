package source

import (
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func def(chart *v1alpha1.ChartTemplate) *v1alpha1.ApplicationDefinition {
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "postgres", UID: "u1"},
		Spec:       v1alpha1.ApplicationDefinitionSpec{Release: v1alpha1.ReleaseSpec{Chart: chart}},
	}
}

func TestDesiredHelmChart(t *testing.T) {
	d := def(&v1alpha1.ChartTemplate{Name: "postgres", Version: "1.x",
		SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}})
	hc, err := DesiredHelmChart(d)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Name != "chartkind-postgres" || hc.Namespace != "flux-system" || hc.Spec.Chart != "postgres" || hc.Spec.Version != "1.x" ||
		hc.Spec.SourceRef != (sourcev1.LocalHelmChartSourceReference{Kind: "HelmRepository", Name: "charts"}) ||
		hc.Spec.Interval.Duration != 10*time.Minute {
		t.Errorf("HelmChart = %s/%s %+v", hc.Namespace, hc.Name, hc.Spec)
	}
	if !Owned(hc, "postgres") || Owned(hc, "other") {
		t.Error("Owned does not recognise the definition's HelmChart")
	}
	if len(hc.OwnerReferences) != 1 || hc.OwnerReferences[0].UID != "u1" {
		t.Errorf("ownerReferences = %+v", hc.OwnerReferences)
	}

	d.Spec.Release.Chart.SourceRef.Namespace = ""
	if _, err := DesiredHelmChart(d); err == nil || !strings.Contains(err.Error(), "spec.release.chart.sourceRef.namespace is required") {
		t.Errorf("no namespace: err = %v", err)
	}
}

func TestUsable(t *testing.T) {
	a := &meta.Artifact{URL: "http://x/a.tgz", Digest: "sha256:00"}
	hc := &sourcev1.HelmChart{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", Generation: 2}}
	hc.Status.ObservedGeneration = 2
	hc.Status.Artifact = a
	if got, err := FromHelmChart(hc).Usable(); err != nil || got != a {
		t.Errorf("current artifact: %v %v", got, err)
	}
	hc.Generation = 3
	if _, err := FromHelmChart(hc).Usable(); err == nil || err.Reason != ReasonArtifactNotReady || !strings.Contains(err.Error(), "not yet processed") {
		t.Errorf("stale artifact: %v", err)
	}
	hc.Status.Artifact = nil
	hc.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: metav1.ConditionFalse, Reason: "ChartPullError", Message: "no chart version found for postgres-9.x"}}
	if _, err := FromHelmChart(hc).Usable(); err == nil || !strings.Contains(err.Error(), "HelmChart ns/c: ChartPullError: no chart version found") {
		t.Errorf("failed source: %v", err)
	}
}
