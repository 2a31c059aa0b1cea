package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// TestChartVersionsThroughFlux reads a chart only through the real
// source-controller: a definition pointing at a Helm repository on 127.0.0.1
// serves a kind; publishing a version that adds a field updates the CRD with
// no restart; publishing a version that would make an existing object invalid
// is refused with a condition naming it, and the CRD stays as it was.
func TestChartVersionsThroughFlux(t *testing.T) {
	ctx := context.Background()
	charts := testenv.ServeChartRepo(t, "")
	charts.Publish(t, "testdata/gadget/v1", "")
	const ns = "e2e-gadgets"
	env, repo := startWithRepository(t, ns, "gadgets", charts)
	c := env.Client

	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadget"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "Gadget"},
			Release: v1alpha1.ReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				Chart: &v1alpha1.ChartTemplate{Name: "gadget", Version: "0.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: repo.Name, Namespace: ns}},
			},
		},
	}
	must(t, c.Create(ctx, def))
	waitDefinition(t, env, def.Name, "Serving", "0.1.0")
	if hasSpecField(t, env, "gadgets.apps.chartkind.io", "color") {
		t.Fatal("0.1.0 CRD already has color")
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "Gadget",
		"metadata": map[string]any{"name": "big", "namespace": ns},
		"spec":     map[string]any{"size": "large"},
	}}
	must(t, c.Create(ctx, obj))
	env.WaitForReady(t, obj, stepTimeout)

	// 0.2.0 adds color: the CRD follows once Flux sees the new version.
	charts.Publish(t, "testdata/gadget/v2", "")
	env.RequestReconcile(t, repo, stepTimeout)
	waitDefinition(t, env, def.Name, "Serving", "0.2.0")
	if !hasSpecField(t, env, "gadgets.apps.chartkind.io", "color") {
		t.Fatal("0.2.0 CRD has no color")
	}

	// 0.3.0 drops "large", which big uses: refused.
	charts.Publish(t, "testdata/gadget/v3", "")
	env.RequestReconcile(t, repo, stepTimeout)
	d := waitDefinition(t, env, def.Name, "IncompatibleSchemaChange", "0.2.0")
	msg := apimeta.FindStatusCondition(d.Status.Conditions, "Ready").Message
	for _, want := range []string{ns + "/big", "spec.size", "0.3.0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("condition message does not mention %q: %s", want, msg)
		}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	must(t, c.Get(ctx, types.NamespacedName{Name: "gadgets.apps.chartkind.io"}, crd))
	// size is in values.yaml, so nullable: its enum is a CEL rule.
	size, err := json.Marshal(crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["size"])
	must(t, err)
	if !strings.Contains(string(size), `large`) {
		t.Errorf("spec.size schema after a refused change no longer allows large (0.2.0 not kept): %s", size)
	}
}

// waitDefinition waits for the definition's Ready reason and served chart version.
func waitDefinition(t *testing.T, env *testenv.Env, name, reason, version string) *v1alpha1.ApplicationDefinition {
	t.Helper()
	d := &v1alpha1.ApplicationDefinition{}
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("definition %s %s with chart %s", name, reason, version), func(ctx context.Context) error {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, d); err != nil {
			return err
		}
		cond := apimeta.FindStatusCondition(d.Status.Conditions, "Ready")
		if cond == nil || cond.Reason != reason || d.Status.ChartVersion != version {
			return fmt.Errorf("chart %s, Ready %+v", d.Status.ChartVersion, cond)
		}
		return nil
	})
	return d
}

func hasSpecField(t *testing.T, env *testenv.Env, crdName, field string) bool {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	must(t, env.Client.Get(context.Background(), types.NamespacedName{Name: crdName}, crd))
	_, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties[field]
	return ok
}
