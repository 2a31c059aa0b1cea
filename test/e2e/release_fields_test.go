package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxmeta "github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// startFieldsEnv is startWithRepository with helm-controller looking at
// unmet dependencies every 2s instead of 30s, so waits are short.
func startFieldsEnv(t *testing.T, ns string) *realEnv {
	t.Helper()
	ctx := context.Background()
	env := testenv.Start(t, testenv.Options{Flux: true, HelmControllerArgs: []string{"--requeue-dependency=2s"},
		AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	charts := testenv.ServeChartRepo(t, "../../examples/charts")
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "examples", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: charts.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	must(t, env.Client.Create(ctx, repo))
	startOperator(t, env)
	return &realEnv{Env: env, ns: ns, repo: repo}
}

func (e *realEnv) redisChart() *v1alpha1.ChartTemplate {
	return &v1alpha1.ChartTemplate{Name: "redis", Version: "*",
		SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: e.repo.Name, Namespace: e.ns}}
}

func (e *realEnv) configMap(t *testing.T, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	must(t, e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, cm))
	return cm
}

// helmRecords lists Helm's release records (Secrets of type helm.sh/release.v1) of release in ns.
func helmRecords(t *testing.T, c client.Client, ns, release string) []corev1.Secret {
	t.Helper()
	var list corev1.SecretList
	must(t, c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{"owner": "helm", "name": release}))
	return list.Items
}

func timed(t *testing.T, what string) func() {
	t.Helper()
	start := time.Now()
	t.Logf("%s…", what)
	return func() { t.Helper(); t.Logf("%s: done in %s", what, time.Since(start).Round(time.Millisecond)) }
}

// TestReleaseFieldsThroughRealHelm sets each of Flux's release settings on a
// definition and watches the real helm-controller act on them: drift is
// corrected and reported on the object, a failing CEL health check keeps
// the object not Ready with its message, post-renderers patch what Helm
// applies, the records are kept in the storage namespace and trimmed to
// maxHistory and kept on uninstall, the administrator's and a user's
// dependencies hold releases back until they are Ready.
func TestReleaseFieldsThroughRealHelm(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e-fields"
	e := startFieldsEnv(t, ns)
	c := e.Client
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "helm-records"}}))

	done := timed(t, "ApplicationDefinition tuned serves kind Tuned with every release setting")
	hist := 2
	yes, rollback := true, helmv2.RollbackRemediationStrategy
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "tuned"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "Tuned"},
			Release: v1alpha1.ReleaseSpec{
				Interval:         metav1.Duration{Duration: time.Hour},
				Timeout:          &metav1.Duration{Duration: 20 * time.Second},
				Chart:            e.redisChart(),
				DriftDetection:   &helmv2.DriftDetection{Mode: helmv2.DriftDetectionEnabled},
				StorageNamespace: "helm-records",
				MaxHistory:       &hist,
				DependsOn:        []helmv2.DependencyReference{{Name: "platform-base"}},
				HealthCheckExprs: []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
					HealthCheckExpressions: kustomize.HealthCheckExpressions{
						Current: "!has(data.replicas) || data.replicas != '9'",
						Failed:  "has(data.replicas) && data.replicas == '9'",
					}}},
				PostRenderers: []helmv2.PostRenderer{{Kustomize: &helmv2.Kustomize{Patches: []kustomize.Patch{{
					Target: &kustomize.Selector{Kind: "ConfigMap"},
					Patch:  `[{"op": "add", "path": "/metadata/labels/platform.example.com~1patched", "value": "yes"}]`,
				}}}}},
				Test:      &helmv2.Test{Enable: true},
				Uninstall: &helmv2.Uninstall{KeepHistory: true},
				Upgrade: &helmv2.Upgrade{Remediation: &helmv2.UpgradeRemediation{Retries: 1,
					RemediateLastFailure: &yes, Strategy: &rollback}},
				Rollback: &helmv2.Rollback{CleanupOnFail: true},
			},
		},
	}
	must(t, c.Create(ctx, def))
	e.WaitForReady(t, def, stepTimeout)
	done()

	done = timed(t, "the administrator's dependency platform-base is missing: a clear condition")
	cache := e.create(t, "Tuned", "cache", map[string]any{"maxmemory": "64mb"})
	e.waitCondition(t, cache, "Ready", "False", "HelmRelease "+ns+"/platform-base (spec.release.dependsOn of ApplicationDefinition tuned) does not exist")
	done()

	done = timed(t, "platform-base appears and becomes Ready: Tuned cache installs")
	base := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Name: "platform-base", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: time.Hour},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{Chart: "redis",
				SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: e.repo.Name}}}}}
	must(t, c.Create(ctx, base))
	e.WaitForReady(t, base, stepTimeout)
	e.WaitForReady(t, cache, stepTimeout)
	e.waitCondition(t, cache, mirror.ConditionDependenciesReady, "True")
	hr := &helmv2.HelmRelease{}
	must(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tuned-cache"}, hr))
	if hr.Spec.ReleaseName != ns+"-tuned-cache" {
		t.Errorf("HelmRelease spec.releaseName = %q, want the object's namespace in it (records of all namespaces share helm-records)", hr.Spec.ReleaseName)
	}
	if hr.Status.StorageNamespace != "helm-records" {
		t.Errorf("HelmRelease status.storageNamespace = %q, want helm-records", hr.Status.StorageNamespace)
	}
	if n := len(helmRecords(t, c, "helm-records", ns+"-tuned-cache")); n != 1 {
		t.Errorf("%d Helm records in helm-records, want 1", n)
	}
	if n := len(helmRecords(t, c, ns, "tuned-cache")); n != 0 {
		t.Errorf("%d Helm records in the object's namespace, want 0 (storageNamespace)", n)
	}
	cm := e.configMap(t, ns, ns+"-tuned-cache-config")
	if cm.Labels["platform.example.com/patched"] != "yes" {
		t.Errorf("post-renderer patch not applied: labels %v", cm.Labels)
	}
	t.Logf("test.enable on a chart without test hooks: TestSuccess %v; history %+v", conditionOf(e.get(t, cache), "TestSuccess"), hr.Status.History)
	done()

	done = timed(t, "drift: the ConfigMap is edited behind Helm's back; a reconcile corrects it and the object says so")
	cm.Data["redis.conf"] = "maxmemory 1gb\n"
	must(t, c.Update(ctx, cm))
	requestReconcile(t, e, cache)
	drifted := e.waitCondition(t, cache, "Drifted", "True", "has drifted from the desired state")
	t.Logf("Drifted on the object: %v", conditionOf(drifted, "Drifted"))
	waitConfig(t, e.Env, ns, ns+"-tuned-cache-config", "maxmemory 64mb")
	e.WaitForReady(t, cache, stepTimeout)
	done()

	done = timed(t, "maxHistory 2: three upgrades leave two Helm records")
	for _, mem := range []string{"65mb", "66mb", "67mb"} {
		e.patchSpec(t, cache, map[string]any{"maxmemory": mem})
		waitConfig(t, e.Env, ns, ns+"-tuned-cache-config", "maxmemory "+mem)
		e.WaitForReady(t, cache, stepTimeout)
	}
	if n := len(helmRecords(t, c, "helm-records", ns+"-tuned-cache")); n != 2 {
		t.Errorf("%d Helm records after 4 revisions with maxHistory 2, want 2", n)
	}
	done()

	done = timed(t, "rollback: an upgrade failing its health check is rolled back, and the object says so")
	e.patchSpec(t, cache, map[string]any{"replicas": int64(9)})
	remediated := e.waitCondition(t, cache, "Remediated", "True")
	t.Logf("Remediated on the object: %v", conditionOf(remediated, "Remediated"))
	testenv.WaitFor(t, stepTimeout, "the ConfigMap to be rolled back", func(ctx context.Context) error {
		cm := &corev1.ConfigMap{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ns + "-tuned-cache-config"}, cm); err != nil {
			return err
		}
		if cm.Data["replicas"] != "1" || !strings.Contains(cm.Data["redis.conf"], "maxmemory 67mb") {
			return fmt.Errorf("data %v", cm.Data)
		}
		return nil
	})
	if ready := conditionOf(e.get(t, cache), "Ready"); ready["status"] == "True" {
		t.Errorf("Ready=True after a failed, rolled back upgrade: %v", ready)
	}
	done()

	done = timed(t, "a failing CEL health check keeps the object not Ready, with its message")
	broken := e.create(t, "Tuned", "broken", map[string]any{"replicas": int64(9)})
	got := e.waitCondition(t, broken, "Ready", "False", "ConfigMap")
	msg := fmt.Sprint(conditionOf(got, "Ready")["message"])
	t.Logf("Ready of the unhealthy release: %s", msg)
	if !strings.Contains(msg, "tuned-broken-config") {
		t.Errorf("Ready message does not name the failing ConfigMap: %s", msg)
	}
	if strings.Contains(msg, "healthy now") {
		t.Errorf("Ready message claims the objects are healthy although a health check failed: %s", msg)
	}
	done()

	done = timed(t, "a user's dependency: app waits for Tuned broken")
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "Tuned",
		"metadata": map[string]any{"name": "app", "namespace": ns, "annotations": map[string]any{mirror.AnnotationDependsOn: "broken"}},
		"spec":     map[string]any{"maxmemory": "32mb"},
	}}
	must(t, c.Create(ctx, app))
	e.waitCondition(t, app, mirror.ConditionDependenciesReady, "False", "waiting for Tuned broken (HelmRelease tuned-broken) to be Ready")
	e.waitCondition(t, app, "Ready", "False", "tuned-broken")
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ns + "-tuned-app-config"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("app installed before its dependency was Ready (%v)", err)
	}
	// broken is fixed (and retried, as the retry hint says): app follows.
	e.patchSpec(t, broken, map[string]any{"replicas": int64(1)})
	e.WaitForReady(t, broken, stepTimeout)
	e.WaitForReady(t, app, stepTimeout)
	done()

	done = timed(t, "uninstall.keepHistory: deleting the object uninstalls the release and keeps its records")
	must(t, c.Delete(ctx, cache))
	e.WaitForDeleted(t, hr, stepTimeout)
	testenv.WaitFor(t, stepTimeout, "tuned-cache-config to be uninstalled", func(ctx context.Context) error {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ns + "-tuned-cache-config"}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	if recs := helmRecords(t, c, "helm-records", ns+"-tuned-cache"); len(recs) == 0 {
		t.Errorf("no Helm records left after uninstall with keepHistory")
	} else {
		t.Logf("records kept after uninstall: %d, latest status %s", len(recs), recs[len(recs)-1].Labels["status"])
	}
	done()
}

func (e *realEnv) get(t *testing.T, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	u := obj.DeepCopy()
	must(t, e.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), u))
	return u
}

// requestReconcile asks for a reconcile through the object, as a user
// would: chartkind forwards the annotation to the HelmRelease.
func requestReconcile(t *testing.T, e *realEnv, obj *unstructured.Unstructured) {
	t.Helper()
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, fluxmeta.ReconcileRequestAnnotation, token)
	must(t, e.Client.Patch(context.Background(), obj.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(patch))))
	testenv.WaitFor(t, stepTimeout, "the reconcile request to be handled", func(ctx context.Context) error {
		u := e.get(t, obj)
		if v, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt"); v != token {
			return fmt.Errorf("status.lastHandledReconcileAt = %q", v)
		}
		return nil
	})
}

// TestReleaseIntoRemoteCluster runs the operator and Flux against one API
// server and installs the definition's releases into a second one, through
// a kubeconfig Secret (spec.release.kubeConfig): the object becomes Ready
// and Healthy from what is read in the second cluster with that kubeconfig
// (nothing of the release exists in the first); deleting the object
// uninstalls the release from the second cluster.
func TestReleaseIntoRemoteCluster(t *testing.T) {
	ctx := context.Background()
	const ns = "e2e-remote"
	done := timed(t, "a second control plane, the tenant cluster")
	tenant := testenv.Start(t, testenv.Options{})
	must(t, tenant.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	done()
	e := startFieldsEnv(t, ns)
	c := e.Client
	kubeconfig, err := os.ReadFile(tenant.KubeconfigPath)
	must(t, err)
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tenant-kubeconfig", Namespace: ns},
		Data: map[string][]byte{"value": kubeconfig}}))

	done = timed(t, "ApplicationDefinition remote serves kind RemotePostgres installing into the tenant cluster")
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "remote"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "RemotePostgres"},
			Release: v1alpha1.ReleaseSpec{
				Prefix:   "pg-",
				Interval: metav1.Duration{Duration: time.Hour},
				Chart: &v1alpha1.ChartTemplate{Name: "postgres", Version: "*",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: e.repo.Name, Namespace: ns}},
				KubeConfig: &fluxmeta.KubeConfigReference{SecretRef: &fluxmeta.SecretKeyReference{Name: "tenant-kubeconfig"}},
			},
		},
	}
	must(t, c.Create(ctx, def))
	e.WaitForReady(t, def, stepTimeout)
	done()

	done = timed(t, "RemotePostgres db becomes Ready; its objects are in the tenant cluster only, and read there")
	obj := e.create(t, "RemotePostgres", "db", map[string]any{"replicas": int64(1)})
	e.WaitForReady(t, obj, stepTimeout)
	svc := &corev1.Service{}
	testenv.WaitFor(t, stepTimeout, "Service pg-db in the tenant cluster", func(ctx context.Context) error {
		return tenant.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pg-db"}, svc)
	})
	for name, o := range map[string]client.Object{"pg-db": &corev1.Service{}, "pg-db-config": &corev1.ConfigMap{}} {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, o); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s of the release is in the operator's cluster too (%v)", o, name, err)
		}
	}
	if n := len(helmRecords(t, tenant.Client, ns, "pg-db")); n != 1 {
		t.Errorf("%d Helm records in the tenant cluster, want 1", n)
	}
	// status.access shows the Service as the tenant cluster has it: its
	// cluster IP was given by the tenant's API server, and nothing of that
	// name exists in the operator's cluster.
	testenv.WaitFor(t, stepTimeout, "status.access to show the tenant's Service", func(ctx context.Context) error {
		u := e.get(t, obj)
		svcs, _, _ := unstructured.NestedSlice(u.Object, "status", "access", "services")
		if len(svcs) != 1 {
			return fmt.Errorf("status.access.services = %v (Healthy %v)", svcs, conditionOf(u, mirror.ConditionHealthy))
		}
		got := svcs[0].(map[string]any)
		if got["name"] != "pg-db" || got["clusterIP"] != svc.Spec.ClusterIP {
			return fmt.Errorf("status.access.services[0] = %v, want pg-db with cluster IP %s", got, svc.Spec.ClusterIP)
		}
		return nil
	})
	healthy := e.waitCondition(t, obj, mirror.ConditionHealthy, "True")
	t.Logf("Healthy of the remote release: %v", conditionOf(healthy, mirror.ConditionHealthy)["message"])
	done()

	done = timed(t, "deleting the object uninstalls the release from the tenant cluster")
	must(t, c.Delete(ctx, obj))
	e.WaitForDeleted(t, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-db"}}, stepTimeout)
	testenv.WaitFor(t, stepTimeout, "the Service to be uninstalled from the tenant cluster", func(ctx context.Context) error {
		if err := tenant.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pg-db"}, &corev1.Service{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	done()
}
