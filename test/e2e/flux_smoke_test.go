package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/testenv"
)

const (
	chartName   = "settings"
	releaseName = "smoke"
	// Generous: CI machines have 2 cores and may run other test packages at the same time.
	// Locally each step takes a few seconds at most.
	stepTimeout = 2 * time.Minute
)

// TestFluxHelmReleaseLifecycle checks that the test control plane really runs Helm through
// Flux: install, values upgrade, chart version upgrade and uninstall of a chart served from
// testdata/charts. Everything chartkind does ends in such HelmReleases, so if this fails,
// every other end-to-end test will too.
func TestFluxHelmReleaseLifecycle(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	env := testenv.Start(t, testenv.Options{Flux: true})
	c := env.Client
	charts := testenv.ServeChartRepo(t, "testdata/charts")
	t.Logf("chart repository %s serves %s 0.1.0", charts.URL, chartName)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-smoke"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	step := func(format string, args ...any) func() {
		t.Helper()
		start := time.Now()
		what := fmt.Sprintf(format, args...)
		t.Logf("%s…", what)
		return func() {
			t.Helper()
			t.Logf("%s: done in %s", what, time.Since(start).Round(time.Millisecond))
		}
	}

	done := step("HelmRepository %s/charts becomes Ready", ns.Name)
	helmRepo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns.Name},
		Spec: sourcev1.HelmRepositorySpec{
			URL:      charts.URL,
			Interval: metav1.Duration{Duration: time.Hour}, // changes are requested explicitly
		},
	}
	if err := c.Create(ctx, helmRepo); err != nil {
		t.Fatal(err)
	}
	env.WaitForReady(t, helmRepo, stepTimeout)
	done()

	done = step("helm install %s (chart %s 0.1.0) through HelmRelease %s/%s", releaseName, chartName, ns.Name, releaseName)
	hr := &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: releaseName, Namespace: ns.Name},
		Spec: helmv2.HelmReleaseSpec{
			Interval: metav1.Duration{Duration: time.Hour},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
				Chart:     chartName,
				Version:   "0.1.0",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: helmRepo.Name},
				Interval:  &metav1.Duration{Duration: time.Hour},
			}},
			Values: values(t, map[string]any{"greeting": "hello from e2e"}),
		},
	}
	if err := c.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}
	env.WaitForReady(t, hr, stepTimeout)
	done()
	assertLatestRelease(t, hr, 1, "0.1.0")
	assertConfigMap(t, env, ns.Name, map[string]string{"greeting": "hello from e2e", "color": "blue", "chartVersion": "0.1.0"})

	done = step("helm upgrade %s with new values (revision 2)", releaseName)
	if err := c.Get(ctx, client.ObjectKeyFromObject(hr), hr); err != nil {
		t.Fatal(err)
	}
	// Replace the values rather than merge-patch them: a merge patch never removes keys.
	hr.Spec.Values = values(t, map[string]any{"greeting": "hello again", "color": "green"})
	if err := c.Update(ctx, hr); err != nil {
		t.Fatal(err)
	}
	env.WaitForReady(t, hr, stepTimeout)
	done()
	assertLatestRelease(t, hr, 2, "0.1.0")
	assertConfigMap(t, env, ns.Name, map[string]string{"greeting": "hello again", "color": "green", "chartVersion": "0.1.0"})

	done = step("publish %s 0.2.0 and helm upgrade %s to it (revision 3)", chartName, releaseName)
	charts.Publish(t, filepath.Join("testdata/charts", chartName), "0.2.0")
	// Without this the HelmRepository would only see 0.2.0 after its interval.
	env.RequestReconcile(t, helmRepo, stepTimeout)
	if err := c.Get(ctx, client.ObjectKeyFromObject(hr), hr); err != nil {
		t.Fatal(err)
	}
	hr.Spec.Chart.Spec.Version = "0.2.0"
	if err := c.Update(ctx, hr); err != nil {
		t.Fatal(err)
	}
	env.WaitForReady(t, hr, stepTimeout)
	done()
	assertLatestRelease(t, hr, 3, "0.2.0")
	assertConfigMap(t, env, ns.Name, map[string]string{"greeting": "hello again", "color": "green", "chartVersion": "0.2.0"})

	done = step("helm uninstall %s by deleting HelmRelease %s/%s", releaseName, ns.Name, releaseName)
	if err := c.Delete(ctx, hr); err != nil {
		t.Fatal(err)
	}
	// helm-controller's finalizer uninstalls the release before the object goes away.
	env.WaitForDeleted(t, hr, stepTimeout)
	done()
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: releaseName + "-settings"}, cm); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s-settings after uninstall: err = %v, want NotFound", releaseName, err)
	}
	secrets := &corev1.SecretList{}
	if err := c.List(ctx, secrets, client.InNamespace(ns.Name), client.MatchingLabels{"owner": "helm", "name": releaseName}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Errorf("%d Helm release secrets left after uninstall, want 0", len(secrets.Items))
	}
	t.Logf("install, upgrade, chart upgrade and uninstall: %s in total, control plane start-up included", time.Since(begin).Round(time.Millisecond))
}

func values(t *testing.T, v map[string]any) *apiextensionsv1.JSON {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &apiextensionsv1.JSON{Raw: raw}
}

// assertLatestRelease checks the newest entry of status.history, which is the Helm release
// helm-controller last deployed.
func assertLatestRelease(t *testing.T, hr *helmv2.HelmRelease, revision int, chartVersion string) {
	t.Helper()
	if len(hr.Status.History) == 0 {
		t.Fatalf("HelmRelease %s has no status.history", hr.Name)
	}
	latest := hr.Status.History.Latest()
	if latest.Version != revision || latest.ChartVersion != chartVersion || latest.Status != "deployed" {
		t.Fatalf("latest release = revision %d, chart %s, status %q; want revision %d, chart %s, deployed",
			latest.Version, latest.ChartVersion, latest.Status, revision, chartVersion)
	}
	t.Logf("status.history: revision %d of %s-%s %s", latest.Version, latest.ChartName, latest.ChartVersion, latest.Status)
}

func assertConfigMap(t *testing.T, env *testenv.Env, namespace string, want map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: namespace, Name: releaseName + "-settings"}
	if err := env.Client.Get(context.Background(), key, cm); err != nil {
		t.Fatalf("ConfigMap rendered by the chart: %v", err)
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s data[%s] = %q, want %q (data: %v)", key, k, cm.Data[k], v, cm.Data)
		}
	}
	if len(cm.Data) != len(want) {
		t.Errorf("ConfigMap %s data = %v, want exactly %v", key, cm.Data, want)
	}
}
