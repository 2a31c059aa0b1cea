package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// TestApplicationThroughRealHelm runs the operator against the real Flux
// controllers: a Redis object becomes Ready through a real helm install; an
// edit made directly on its HelmRelease (as a dashboard would) shows up in the
// object and upgrades the release; an edit of the object upgrades it again;
// deleting the object uninstalls the release.
func TestApplicationThroughRealHelm(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e-apps"
	env, repo := startWithRepository(t, ns, "examples", testenv.ServeChartRepo(t, "../../examples/charts"))
	c := env.Client
	step := func(what string) func() {
		t.Helper()
		start := time.Now()
		t.Logf("%s…", what)
		return func() { t.Helper(); t.Logf("%s: done in %s", what, time.Since(start).Round(time.Millisecond)) }
	}

	done := step("ApplicationDefinition redis serves kind Redis")
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "redis"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "Redis"},
			Release: v1alpha1.ReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				Chart: &v1alpha1.ChartTemplate{Name: "redis", Version: "*",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: repo.Name, Namespace: ns}},
			},
		},
	}
	must(t, c.Create(ctx, def))
	env.WaitForReady(t, def, stepTimeout)
	done()

	done = step("Redis e2e-apps/cache becomes Ready through a real helm install")
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "Redis",
		"metadata": map[string]any{"name": "cache", "namespace": ns},
		"spec":     map[string]any{"maxmemory": "128mb"},
	}}
	must(t, c.Create(ctx, obj))
	env.WaitForReady(t, obj, stepTimeout)
	if v, _, _ := unstructured.NestedString(obj.Object, "status", "version"); v != "0.1.0" {
		hr := &helmv2.HelmRelease{}
		_ = c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "redis-cache"}, hr)
		t.Fatalf("status.version = %q, want the deployed chart version 0.1.0\nobject status: %v\nHelmRelease status: %+v\nhistory[0]: %+v", v, obj.Object["status"], hr.Status, hr.Status.History.Latest())
	}
	waitConfig(t, env, ns, "redis-cache-config", "maxmemory 128mb")
	done()

	done = step("an edit made directly on HelmRelease redis-cache shows up in the object and upgrades the release")
	hrKey := types.NamespacedName{Namespace: ns, Name: "redis-cache"}
	hr := &helmv2.HelmRelease{}
	must(t, c.Get(ctx, hrKey, hr))
	patch := client.MergeFrom(hr.DeepCopy())
	hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(`{"maxmemory":"256mb"}`)}
	must(t, c.Patch(ctx, hr, patch))
	testenv.WaitFor(t, stepTimeout, "object spec to follow the HelmRelease", func(ctx context.Context) error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if v, _, _ := unstructured.NestedString(obj.Object, "spec", "maxmemory"); v != "256mb" {
			return fmt.Errorf("spec.maxmemory = %q", v)
		}
		return nil
	})
	waitConfig(t, env, ns, "redis-cache-config", "maxmemory 256mb")
	env.WaitForReady(t, obj, stepTimeout)
	done()

	done = step("an edit of the object upgrades the release")
	patch = client.MergeFrom(obj.DeepCopy())
	must(t, unstructured.SetNestedField(obj.Object, "volatile-ttl", "spec", "maxmemoryPolicy"))
	must(t, c.Patch(ctx, obj, patch))
	waitConfig(t, env, ns, "redis-cache-config", "maxmemory-policy volatile-ttl")
	env.WaitForReady(t, obj, stepTimeout)
	must(t, c.Get(ctx, hrKey, hr))
	if len(hr.Status.History) == 0 || hr.Status.History[0].Version < 3 {
		t.Fatalf("want Helm revision 3 (install, HelmRelease edit, object edit), history: %+v", hr.Status.History)
	}
	done()

	done = step("deleting the object uninstalls the release")
	must(t, c.Delete(ctx, obj))
	env.WaitForDeleted(t, hr, stepTimeout)
	testenv.WaitFor(t, stepTimeout, "the chart's ConfigMap to be uninstalled", func(ctx context.Context) error {
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "redis-cache-config"}, &corev1.ConfigMap{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	done()
}

func waitConfig(t *testing.T, env *testenv.Env, ns, name, want string) {
	t.Helper()
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("ConfigMap %s to contain %q", name, want), func(ctx context.Context) error {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data["redis.conf"], want) {
			return fmt.Errorf("redis.conf = %q", cm.Data["redis.conf"])
		}
		return nil
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startOperator runs chartkind's operator in-process against env until the
// test ends. It has no charts directory: charts come through Flux only.
func startOperator(t *testing.T, env *testenv.Env) {
	t.Helper()
	op, err := operator.New(env.Config, operator.Options{MetricsBindAddress: "0", HealthProbeBindAddress: "0", Logger: logr.Discard()})
	must(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// startWithRepository starts a control plane with the real Flux controllers,
// creates namespace ns with a HelmRepository called name for charts, and runs
// the operator.
func startWithRepository(t *testing.T, ns, name string, charts *testenv.ChartRepo) (*testenv.Env, *sourcev1.HelmRepository) {
	t.Helper()
	ctx := context.Background()
	env := testenv.Start(t, testenv.Options{Flux: true, AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: charts.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	must(t, env.Client.Create(ctx, repo))
	startOperator(t, env)
	return env, repo
}
