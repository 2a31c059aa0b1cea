package chart

import (
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// renderDeploymentArgs renders the chart's Deployment client-side (`helm template`)
// with values and returns the operator's arguments.
func renderDeploymentArgs(t *testing.T, values map[string]any) []string {
	t.Helper()
	ch := loadChart(t)
	opts := chartutil.ReleaseOptions{Name: "chartkind", Namespace: "chartkind-system", IsInstall: true, Revision: 1}
	if err := chartutil.ValidateAgainstSchema(ch, values); err != nil {
		t.Fatalf("values %v refused by the chart's schema: %v", values, err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	for name, content := range files {
		if !strings.HasSuffix(name, "deployment.yaml") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			d := &appsv1.Deployment{}
			if err := yaml.Unmarshal([]byte(doc), d); err != nil {
				t.Fatal(err)
			}
			if d.Kind == "Deployment" {
				return d.Spec.Template.Spec.Containers[0].Args
			}
		}
	}
	t.Fatal("no Deployment rendered")
	return nil
}

// TestMultiTenantProfileRenders: `multiTenant.enabled: true` is the one value
// that turns the multi-tenant profile on (`helm template`), and nothing of it
// is on by default. TestChartInstalls installs the same values through
// helm-controller; test/integration TestMultiTenantProfile runs the operator
// with these flags.
func TestMultiTenantProfileRenders(t *testing.T) {
	profile := []string{"--default-service-account=chartkind-release", "--no-cross-namespace-refs"}
	def := renderDeploymentArgs(t, map[string]any{})
	for _, a := range def {
		if strings.HasPrefix(a, "--default-service-account") || a == "--no-cross-namespace-refs" || a == "--require-service-account" {
			t.Errorf("default install passes %s", a)
		}
	}
	on := renderDeploymentArgs(t, map[string]any{"multiTenant": map[string]any{"enabled": true}})
	for _, want := range profile {
		if !slices.Contains(on, want) {
			t.Errorf("multiTenant.enabled: %s missing from %v", want, on)
		}
	}
	named := renderDeploymentArgs(t, map[string]any{"multiTenant": map[string]any{"enabled": true, "defaultServiceAccount": "releases"}})
	if !slices.Contains(named, "--default-service-account=releases") {
		t.Errorf("multiTenant.defaultServiceAccount not passed: %v", named)
	}
	req := renderDeploymentArgs(t, map[string]any{"multiTenant": map[string]any{"enabled": true, "defaultServiceAccount": ""}})
	if !slices.Contains(req, "--require-service-account") || slices.ContainsFunc(req, func(a string) bool { return strings.HasPrefix(a, "--default-service-account") }) {
		t.Errorf("without a default service account the profile must require one: %v", req)
	}

	ch := loadChart(t)
	if err := chartutil.ValidateAgainstSchema(ch, map[string]any{"multiTenant": map[string]any{"enabled": true, "defaultServiceAccount": "Not_A_Name"}}); err == nil ||
		!strings.Contains(err.Error(), "defaultServiceAccount") {
		t.Errorf("an invalid service account name is not refused by the chart's schema: %v", err)
	}
}
