package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// realChartsDir is ../shared/real-charts beside the checkout: whole
// third-party charts with their templates, used as they are published.
func realChartsDir(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "..", "shared", "real-charts")
	if _, err := os.Stat(filepath.Join(dir, "bitnami-nginx", "Chart.yaml")); err != nil {
		t.Fatalf("the real charts are missing (%v): they are in ../shared/real-charts beside the checkout", err)
	}
	return dir
}

// realEnv is one control plane where workloads become Ready: kube-apiserver,
// etcd, kube-controller-manager, kube-scheduler, KWOK with one node, the real
// Flux controllers serving ../shared/real-charts, and the operator.
type realEnv struct {
	*testenv.Env
	ns   string
	repo *sourcev1.HelmRepository
}

func startRealEnv(t *testing.T) *realEnv {
	t.Helper()
	ctx := context.Background()
	env := testenv.Start(t, testenv.Options{Flux: true, Workloads: true, AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	const ns = "shop"
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	charts := testenv.ServeChartRepo(t, realChartsDir(t, env.RootDir))
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "bitnami", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: charts.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	must(t, env.Client.Create(ctx, repo))
	startOperator(t, env)
	return &realEnv{Env: env, ns: ns, repo: repo}
}

func (e *realEnv) definition(t *testing.T, name, kind, chart string, timeout time.Duration, access ...*v1alpha1.AccessSpec) *v1alpha1.ApplicationDefinition {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind},
			Release: v1alpha1.ReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				Timeout:  &metav1.Duration{Duration: timeout},
				Chart: &v1alpha1.ChartTemplate{Name: chart, Version: "*",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: e.repo.Name, Namespace: e.ns}},
			},
		},
	}
	if len(access) > 0 {
		def.Spec.Access = access[0]
	}
	must(t, e.Client.Create(context.Background(), def))
	e.WaitForReady(t, def, stepTimeout)
	return def
}

func (e *realEnv) create(t *testing.T, kind, name string, spec map[string]any) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": e.ns},
		"spec":     spec,
	}}
	must(t, e.Client.Create(context.Background(), obj))
	return obj
}

func (e *realEnv) patchSpec(t *testing.T, obj *unstructured.Unstructured, spec map[string]any) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"spec": spec})
	must(t, err)
	must(t, e.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, raw)))
}

// kubectlWait runs `kubectl wait --for=condition=Ready`, as a user or a CI job would.
func (e *realEnv) kubectlWait(t *testing.T, resource string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(e.KubectlPath, "--kubeconfig", e.KubeconfigPath, "wait", "-n", e.ns,
		"--for=condition=Ready", "--timeout="+timeout.String(), resource).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl wait --for=condition=Ready %s: %v\n%s", resource, err, out)
	}
	return time.Since(start)
}

func (e *realEnv) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(e.KubectlPath, append([]string{"--kubeconfig", e.KubeconfigPath, "-n", e.ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitPods waits until exactly n pods of the release instance are Running and Ready.
func (e *realEnv) waitPods(t *testing.T, instance string, extra map[string]string, n int) {
	t.Helper()
	labels := client.MatchingLabels{"app.kubernetes.io/instance": instance}
	for k, v := range extra {
		labels[k] = v
	}
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("%d pods of %s %v Running and Ready", n, instance, extra), func(ctx context.Context) error {
		var pods corev1.PodList
		if err := e.Client.List(ctx, &pods, client.InNamespace(e.ns), labels); err != nil {
			return err
		}
		var running, other []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				running = append(running, p.Name)
			} else {
				other = append(other, p.Name+"="+string(p.Status.Phase))
			}
		}
		if len(running) != n || len(other) != 0 {
			return fmt.Errorf("running and ready: %v; others: %v", running, other)
		}
		return nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitCondition waits until the object's condition typ has status want and a
// message containing every one of msgs.
func (e *realEnv) waitCondition(t *testing.T, obj *unstructured.Unstructured, typ, want string, msgs ...string) *unstructured.Unstructured {
	t.Helper()
	return e.waitConditionIn(t, obj.GetNamespace(), obj, typ, want, msgs...)
}

// waitConditionIn is waitCondition for an object given by name in namespace ns.
func (e *realEnv) waitConditionIn(t *testing.T, ns string, obj *unstructured.Unstructured, typ, want string, msgs ...string) *unstructured.Unstructured {
	t.Helper()
	out := obj.DeepCopy()
	out.SetNamespace(ns)
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("%s %s: %s=%s %q", obj.GetKind(), obj.GetName(), typ, want, msgs), func(ctx context.Context) error {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(out), out); err != nil {
			return err
		}
		c := conditionOf(out, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c["status"] != want {
			return fmt.Errorf("%s=%v (%v): %v", typ, c["status"], c["reason"], c["message"])
		}
		for _, m := range msgs {
			if !strings.Contains(fmt.Sprint(c["message"]), m) {
				return fmt.Errorf("%s message lacks %q: %v", typ, m, c["message"])
			}
		}
		return nil
	})
	return out
}

// waitEvent waits for an event about obj (kubectl describe shows them).
func (e *realEnv) waitEvent(t *testing.T, obj *unstructured.Unstructured, typ, reason, note string) {
	t.Helper()
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("%s event %s about %s", typ, reason, obj.GetName()), func(ctx context.Context) error {
		var list corev1.EventList
		if err := e.Client.List(ctx, &list, client.InNamespace(e.ns)); err != nil {
			return err
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.InvolvedObject.UID != obj.GetUID() {
				continue
			}
			if ev.Type == typ && ev.Reason == reason && strings.Contains(ev.Message, note) {
				return nil
			}
			seen = append(seen, ev.Type+"/"+ev.Reason)
		}
		return fmt.Errorf("events about it: %v", seen)
	})
}

func conditionOf(u *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// waitKstatus waits until kstatus computes want for the object: helm-controller
// writes a release's status in several patches (Ready, then the end of the
// reconcile clears Reconciling and records the handled request), so a tool
// that waits with kstatus sees Current once the last one is mirrored.
func (e *realEnv) waitKstatus(t *testing.T, obj *unstructured.Unstructured, want status.Status) *unstructured.Unstructured {
	t.Helper()
	u := obj.DeepCopy()
	testenv.WaitFor(t, stepTimeout, fmt.Sprintf("kstatus of %s %s to be %s", obj.GetKind(), obj.GetName(), want), func(ctx context.Context) error {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
			return err
		}
		res, err := status.Compute(u)
		if err != nil {
			return err
		}
		if res.Status != want {
			return fmt.Errorf("kstatus %s: %s", res.Status, res.Message)
		}
		return nil
	})
	return u
}

func (e *realEnv) kstatus(t *testing.T, obj *unstructured.Unstructured) status.Status {
	t.Helper()
	u := obj.DeepCopy()
	must(t, e.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), u))
	res, err := status.Compute(u)
	must(t, err)
	return res.Status
}

// waitUninstalled waits until the object's HelmRelease and the release's pods are gone.
func (e *realEnv) waitUninstalled(t *testing.T, obj *unstructured.Unstructured, release string) {
	t.Helper()
	must(t, e.Client.Delete(context.Background(), obj))
	e.WaitForDeleted(t, &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: release}}, stepTimeout)
	testenv.WaitFor(t, stepTimeout, "the release's pods to go", func(ctx context.Context) error {
		var pods corev1.PodList
		if err := e.Client.List(ctx, &pods, client.InNamespace(e.ns), client.MatchingLabels{"app.kubernetes.io/instance": release}); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		return nil
	})
}

// persistentVolumes creates n PersistentVolumes nothing else would provision
// (there is no storage provisioner here); the controller-manager binds them.
func (e *realEnv) persistentVolumes(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + prefix}},
			},
		}
		must(t, e.Client.Create(context.Background(), pv))
	}
}

func accessOf(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	a, _, _ := unstructured.NestedMap(u.Object, "status", "access")
	return a
}

func names(list any) []string {
	var out []string
	items, _ := list.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["name"]))
		}
	}
	sort.Strings(out)
	return out
}

func secretKeys(access map[string]any, name string) []string {
	items, _ := access["secrets"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		if m["name"] == name {
			var keys []string
			for _, k := range m["keys"].([]any) {
				keys = append(keys, fmt.Sprint(k))
			}
			return keys
		}
	}
	return nil
}

func step(t *testing.T, what string) func() {
	t.Helper()
	start := time.Now()
	t.Logf("%s…", what)
	return func() { t.Helper(); t.Logf("%s: done in %s", what, time.Since(start).Round(time.Millisecond)) }
}

// TestRealChartsWithWorkloads installs bitnami nginx, redis and postgresql,
// as published, through chartkind and the real helm-controller on a control
// plane where their Deployments and StatefulSets really run (KWOK), and checks
// what a user sees and can do at each step.
func TestRealChartsWithWorkloads(t *testing.T) {
	e := startRealEnv(t)
	t.Run("RealChartNginx", func(t *testing.T) { realChartNginx(t, e) })
	t.Run("RealChartRedis", func(t *testing.T) { realChartRedis(t, e) })
	t.Run("RealChartPostgresql", func(t *testing.T) { realChartPostgresql(t, e) })
	t.Run("RealChartEscalation", func(t *testing.T) { realChartEscalation(t, e) })
}

// nginx: Ready with its pods Running, access information, a replica change,
// an unschedulable pod named as the cause, recovery, uninstall.
func realChartNginx(t *testing.T, e *realEnv) {
	done := step(t, "ApplicationDefinition nginx serves kind Nginx from bitnami/nginx")
	e.definition(t, "nginx", "Nginx", "nginx", 45*time.Second)
	done()

	done = step(t, "Nginx shop/web becomes Ready with 2 pods Running")
	web := e.create(t, "Nginx", "web", map[string]any{"replicaCount": int64(2), "service": map[string]any{"type": "ClusterIP"}})
	if got := e.kstatus(t, web); got != status.InProgressStatus {
		t.Errorf("kstatus right after creation = %s, want InProgress", got)
	}
	took := e.kubectlWait(t, "nginx/web", stepTimeout)
	t.Logf("time to Ready (bitnami nginx, 2 replicas): %s", took.Round(100*time.Millisecond))
	e.waitPods(t, "nginx-web", nil, 2)
	e.waitCondition(t, web, "Healthy", "True")
	u := e.waitKstatus(t, web, status.CurrentStatus)
	access := accessOf(t, u)
	if got := names(access["services"]); !contains(got, "nginx-web") {
		t.Errorf("status.access.services = %v, want nginx-web", got)
	}
	endpoint, _, _ := unstructured.NestedString(u.Object, "status", "endpoint")
	if !strings.HasPrefix(endpoint, "nginx-web.shop.svc:80") {
		t.Errorf("status.endpoint = %q, want nginx-web.shop.svc:80", endpoint)
	}
	if notes, _ := access["notes"].(string); !strings.Contains(notes, "nginx") {
		t.Errorf("status.access.notes does not hold the chart's NOTES.txt: %q", notes)
	}
	wide := e.kubectl(t, "get", "nginx", "web", "-o", "wide")
	if !strings.Contains(wide, "nginx-web.shop.svc:80") {
		t.Errorf("kubectl get -o wide does not show the endpoint:\n%s", wide)
	}
	t.Logf("kubectl get nginx -o wide:\n%s", wide)
	t.Logf("kubectl describe nginx web:\n%s", e.kubectl(t, "describe", "nginx", "web"))
	done()

	done = step(t, "2 → 3 replicas upgrades the release and a third pod runs")
	e.patchSpec(t, web, map[string]any{"replicaCount": int64(3)})
	e.WaitForReady(t, web, stepTimeout)
	e.waitPods(t, "nginx-web", nil, 3)
	done()

	done = step(t, "a pod that cannot be scheduled is named as the cause")
	e.patchSpec(t, web, map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "100"}}})
	u = e.waitCondition(t, web, "Healthy", "False", "Unschedulable", "Insufficient cpu", "Deployment shop/nginx-web")
	t.Logf("Healthy while unschedulable: %v", conditionOf(u, "Healthy")["message"])
	if got := e.kstatus(t, u); got == status.CurrentStatus {
		t.Errorf("kstatus of an object whose pods cannot be scheduled = Current")
	}
	e.waitEvent(t, u, "Warning", "Unhealthy", "Insufficient cpu")
	done()

	// helm-controller acts on the fix once the upgrade it is waiting on has
	// timed out (the definition's 45s): it runs one action at a time.
	done = step(t, "fixing the requests recovers: Healthy and Ready again")
	e.patchSpec(t, web, map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "100m"}}})
	e.WaitForReady(t, web, stepTimeout)
	e.waitCondition(t, web, "Healthy", "True")
	e.waitEvent(t, u, "Normal", "Healthy", "Current")
	e.waitPods(t, "nginx-web", nil, 3)
	done()

	done = step(t, "deleting the object uninstalls the release and its pods go")
	e.waitUninstalled(t, web, "nginx-web")
	done()
}

// redis: a PersistentVolumeClaim with no volume makes the install time out;
// the object says why, keeps saying it is stuck once the volume exists and the
// pods run, and the user retries it with an annotation. Then the Secret's key
// names, a replica change and uninstall.
func realChartRedis(t *testing.T, e *realEnv) {
	done := step(t, "ApplicationDefinition redis serves kind Redis from bitnami/redis")
	e.definition(t, "redis", "Redis", "redis", 40*time.Second)
	done()

	done = step(t, "Redis shop/cache waits for a volume: the object names the claim")
	spec := map[string]any{
		"architecture": "replication",
		"replica":      map[string]any{"replicaCount": int64(1), "persistence": map[string]any{"enabled": false}},
		"master":       map[string]any{"persistence": map[string]any{"size": "1Gi"}},
	}
	cache := e.create(t, "Redis", "cache", spec)
	u := e.waitCondition(t, cache, "Healthy", "False", "PersistentVolumeClaim shop/redis-data-redis-cache-master-0")
	t.Logf("Healthy without a volume: %v", conditionOf(u, "Healthy")["message"])
	done()

	done = step(t, "the install times out: Ready=False, stalled, with how to retry; kstatus Failed")
	u = e.waitCondition(t, cache, "Stalled", "True")
	u = e.waitCondition(t, cache, "Ready", "False", "to retry", meta.ForceRequestAnnotation)
	if got := e.kstatus(t, u); got != status.FailedStatus {
		t.Errorf("kstatus of a stalled release = %s, want Failed", got)
	}
	done()

	done = step(t, "volumes appear: the pods run and Healthy recovers, the release stays stuck")
	e.persistentVolumes(t, "redis", 1)
	e.waitPods(t, "redis-cache", nil, 2)
	e.waitCondition(t, cache, "Healthy", "True")
	if c := conditionOf(u, "Ready"); c["status"] != "False" {
		t.Errorf("Ready = %v before any retry", c)
	}
	done()

	done = step(t, "the user retries through the object (requestedAt + forceAt): Ready")
	token := time.Now().UTC().Format(time.RFC3339Nano)
	raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		meta.ReconcileRequestAnnotation: token, meta.ForceRequestAnnotation: token}}})
	must(t, e.Client.Patch(context.Background(), cache, client.RawPatch(types.MergePatchType, raw)))
	e.WaitForReady(t, cache, stepTimeout)
	u = e.waitKstatus(t, cache, status.CurrentStatus)
	testenv.WaitFor(t, stepTimeout, "the handled request on the object", func(ctx context.Context) error {
		must(t, e.Client.Get(ctx, client.ObjectKeyFromObject(cache), u))
		if got, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt"); got != token {
			return fmt.Errorf("status.lastHandledReconcileAt = %q, want %q", got, token)
		}
		return nil
	})
	access := accessOf(t, u)
	if keys := secretKeys(access, "redis-cache"); !contains(keys, "redis-password") {
		t.Errorf("status.access.secrets redis-cache keys = %v, want redis-password", keys)
	}
	secret := &corev1.Secret{}
	must(t, e.Client.Get(context.Background(), types.NamespacedName{Namespace: e.ns, Name: "redis-cache"}, secret))
	password := string(secret.Data["redis-password"])
	if b, _ := json.Marshal(u.Object); password == "" || strings.Contains(string(b), password) {
		t.Errorf("the object shows the Secret's value (or the Secret has none): %q", password)
	}
	if svcs := names(access["services"]); !contains(svcs, "redis-cache-master") || !contains(svcs, "redis-cache-headless") {
		t.Errorf("status.access.services = %v", svcs)
	}
	done()

	done = step(t, "1 → 2 replicas: a second replica runs")
	e.patchSpec(t, cache, map[string]any{"replica": map[string]any{"replicaCount": int64(2)}})
	e.WaitForReady(t, cache, stepTimeout)
	e.waitPods(t, "redis-cache", map[string]string{"app.kubernetes.io/component": "replica"}, 2)
	done()

	done = step(t, "deleting the object uninstalls the release and its pods go")
	e.waitUninstalled(t, cache, "redis-cache")
	done()
}

// postgresql: a primary StatefulSet with a volume and read replicas, the
// password Secret's key names, a read replica added by a spec edit, uninstall.
func realChartPostgresql(t *testing.T, e *realEnv) {
	done := step(t, "ApplicationDefinition postgresql serves kind Postgresql from bitnami/postgresql")
	// The administrator shows the primary's Services and the Secrets, and no notes.
	e.definition(t, "postgresql", "Postgresql", "postgresql", 90*time.Second, &v1alpha1.AccessSpec{
		Objects: []v1alpha1.AccessRule{
			{Kind: "Service", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "primary"}}},
			{Kind: "Secret"},
		},
		ReleaseNotes: v1alpha1.ReleaseNotesHide,
	})
	e.persistentVolumes(t, "postgresql", 1)
	done()

	done = step(t, "Postgresql shop/orders becomes Ready with its primary Running")
	// Replication from the start: the chart creates the replication password
	// only at install, and refuses to switch architecture later without it.
	orders := e.create(t, "Postgresql", "orders", map[string]any{
		"auth":         map[string]any{"database": "orders"},
		"architecture": "replication",
		"readReplicas": map[string]any{"replicaCount": int64(1), "persistence": map[string]any{"enabled": false}},
	})
	took := e.kubectlWait(t, "postgresql/orders", stepTimeout)
	t.Logf("time to Ready (bitnami postgresql, primary with a volume): %s", took.Round(100*time.Millisecond))
	e.waitPods(t, "postgresql-orders", nil, 2)
	u := e.waitCondition(t, orders, "Healthy", "True")
	access := accessOf(t, u)
	if keys := secretKeys(access, "postgresql-orders"); !contains(keys, "postgres-password") {
		t.Errorf("status.access.secrets postgresql-orders keys = %v, want postgres-password", keys)
	}
	if got, want := names(access["services"]), []string{"postgresql-orders-primary", "postgresql-orders-primary-hl"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("status.access.services = %v, want only the primary's %v (the definition's selector)", got, want)
	}
	if notes, ok := access["notes"]; ok {
		t.Errorf("status.access.notes shown although the definition hides them: %v", notes)
	}
	if ep, _, _ := unstructured.NestedString(u.Object, "status", "endpoint"); !strings.Contains(ep, ":5432") {
		t.Errorf("status.endpoint = %q, want port 5432", ep)
	}
	done()

	done = step(t, "1 → 2 read replicas upgrades the release and a second replica runs")
	e.patchSpec(t, orders, map[string]any{"readReplicas": map[string]any{"replicaCount": int64(2)}})
	e.WaitForReady(t, orders, stepTimeout)
	e.waitPods(t, "postgresql-orders", map[string]string{"app.kubernetes.io/component": "read"}, 2)
	done()

	done = step(t, "deleting the object uninstalls the release and its pods go")
	e.waitUninstalled(t, orders, "postgresql-orders")
	done()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
