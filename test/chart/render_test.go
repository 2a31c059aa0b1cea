package chart

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/testenv"
)

// TestChartRendersAndApplies renders the chart client-side with Helm's Go
// library, as `helm template` does, and server-side applies every object to a
// real API server, which must accept each one; `helm lint` (Helm's lint
// package, strict) must find nothing either.
func TestChartRendersAndApplies(t *testing.T) {
	root := rootDir(t)
	chartDir := filepath.Join(root, "charts", "chartkind")

	lr := lint.AllWithKubeVersion(chartDir, nil, "chartkind-system", nil)
	for _, m := range lr.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}

	ch := loadChart(t)
	opts := chartutil.ReleaseOptions{Name: "chartkind", Namespace: "chartkind-system", IsInstall: true, Revision: 1}
	vals, err := chartutil.ToRenderValues(ch, map[string]any{}, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	var objs []*unstructured.Unstructured
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") || strings.TrimSpace(content) == "" {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			objs = append(objs, u)
		}
	}
	if len(objs) < 10 {
		t.Fatalf("rendered %d objects, want the full install (CRD, RBAC, Deployment, Services, webhook): %s", len(objs), kinds(objs))
	}

	env := testenv.Start(t, testenv.Options{CRDDirectoryPaths: []string{filepath.Join("testdata", "crds")}})
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chartkind-system"}}); err != nil {
		t.Fatal(err)
	}
	// CRDs first, as Helm orders them.
	for pass := range 2 {
		for _, o := range objs {
			if (o.GetKind() == "CustomResourceDefinition") != (pass == 0) {
				continue
			}
			if !clusterScoped(o.GetKind()) && o.GetNamespace() == "" {
				o.SetNamespace("chartkind-system")
			}
			if err := env.Client.Patch(ctx, o, client.Apply, client.FieldOwner("helm"), client.ForceOwnership); err != nil {
				t.Errorf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	t.Logf("rendered and applied %d objects: %s", len(objs), kinds(objs))
}
