package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// TestReliabilityUnreachableRepository (docs/reliability.md), with the real
// source-controller: a definition whose Helm repository cannot be reached
// says ArtifactNotReady with the HelmRepository's own reason (source-
// controller's "connection refused"), and no CRD is made;
// once the URL is fixed the kind is served. When the repository later becomes
// unreachable, the kind stays served from the chart already fetched, and a
// spec change still reaches the installed release.
func TestReliabilityUnreachableRepository(t *testing.T) {
	ctx := context.Background()
	charts := testenv.ServeChartRepo(t, "")
	charts.Publish(t, "testdata/gadget/v1", "")
	env := testenv.Start(t, testenv.Options{Flux: true, AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	c := env.Client
	const ns = "e2e-unreachable"
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	dead := "http://" + l.Addr().String() // nothing listens once closed: connection refused
	must(t, l.Close())
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: dead, Interval: metav1.Duration{Duration: time.Hour}},
	}
	must(t, c.Create(ctx, repo))
	startOperator(t, env)
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "fargadget"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "FarGadget"},
			Release: v1alpha1.ReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				Chart: &v1alpha1.ChartTemplate{Name: "gadget", Version: "0.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: repo.Name, Namespace: ns}},
			},
		},
	}
	must(t, c.Create(ctx, def))

	// source-controller fails to fetch the index; the definition says why.
	d := &v1alpha1.ApplicationDefinition{}
	seen := map[string]bool{}
	testenv.WaitFor(t, 40*time.Second, "the definition to give source-controller's error", func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(def), d); err != nil {
			return err
		}
		r := apimeta.FindStatusCondition(d.Status.Conditions, "Ready")
		if r == nil {
			return fmt.Errorf("no Ready condition")
		}
		if !seen[r.Reason+": "+r.Message] {
			seen[r.Reason+": "+r.Message] = true
			t.Logf("administrator sees: Ready=%s %s: %s", r.Status, r.Reason, r.Message)
		}
		if r.Status != metav1.ConditionFalse || r.Reason != "ArtifactNotReady" || !strings.Contains(r.Message, "HelmRepository "+ns+"/gadgets") || !strings.Contains(r.Message, "connection refused") {
			return fmt.Errorf("Ready=%s %s: %s", r.Status, r.Reason, r.Message)
		}
		return nil
	})
	crdName := "fargadgets.apps.chartkind.io"
	if err := c.Get(ctx, types.NamespacedName{Name: crdName}, &apiextensionsv1.CustomResourceDefinition{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD with an unreachable repository: %v, want none", err)
	}

	// The administrator fixes the URL.
	testenv.WaitFor(t, stepTimeout, "fixing the repository URL", func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(repo), repo); err != nil {
			return err
		}
		repo.Spec.URL = charts.URL
		return c.Update(ctx, repo)
	})
	waitDefinition(t, env, def.Name, "Serving", "0.1.0")
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "FarGadget",
		"metadata": map[string]any{"name": "one", "namespace": ns},
		"spec":     map[string]any{"size": "small"},
	}}
	must(t, c.Create(ctx, obj))
	env.WaitForReady(t, obj, stepTimeout)

	// The repository goes away.
	charts.Close()
	env.RequestReconcile(t, repo, stepTimeout)
	testenv.WaitFor(t, stepTimeout, "source-controller to see the repository unreachable", func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(repo), repo); err != nil {
			return err
		}
		if r := apimeta.FindStatusCondition(repo.Status.Conditions, "Ready"); r == nil || r.Status != metav1.ConditionFalse {
			return fmt.Errorf("HelmRepository Ready %+v", r)
		}
		return nil
	})
	d = waitDefinition(t, env, def.Name, "Serving", "0.1.0")
	must(t, c.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	must(t, unstructured.SetNestedField(obj.Object, "large", "spec", "size"))
	must(t, c.Update(ctx, obj))
	env.WaitForReady(t, obj, stepTimeout)
	hr := &helmv2.HelmRelease{}
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "fargadget-one"}, hr))
	if !strings.Contains(string(hr.Spec.Values.Raw), `"large"`) {
		t.Errorf("HelmRelease values %s after a spec change with the repository down", hr.Spec.Values.Raw)
	}
	if d.Status.ChartVersion != "0.1.0" {
		t.Errorf("chart version %q", d.Status.ChartVersion)
	}
}
