package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// observeCount is how many times the operator read what a release of kind
// installed (chartkind_release_observe_seconds).
func observeCount(t *testing.T, kind string) uint64 {
	t.Helper()
	var n uint64
	if mf := gather(t)["chartkind_release_observe_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			if labelOf(m, "kind") == kind {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func availableDeployment(ns, name string, available bool) (*appsv1.Deployment, func(d *appsv1.Deployment)) {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}},
	}
	setStatus := func(d *appsv1.Deployment) {
		ready := int32(2)
		cond := corev1.ConditionTrue
		if !available {
			ready, cond = 0, corev1.ConditionFalse
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: ready, AvailableReplicas: ready,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: cond, Reason: "MinimumReplicas"},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}}}
	}
	return d, setStatus
}

// A healthy release's objects are read again every --health-interval, which
// writes nothing while nothing changed; a workload that degrades after the
// install (no HelmRelease change at all) is noticed at the next read, shown as
// Healthy=False with a Warning event, and its recovery as Healthy=True.
func TestHealthRereadsWriteNothingAndNoticeDegradation(t *testing.T) {
	startWith(t, operator.Options{HealthInterval: 500 * time.Millisecond})
	ctx := context.Background()
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("healthwidget", "HealthWidget"))
	obj := createObject(t, def, ns, "h", map[string]any{"replicas": int64(2)})
	waitRelease(t, ns, "healthwidget-h", nil)

	dep, setStatus := availableDeployment(ns, "healthwidget-h", true)
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	setStatus(dep)
	if err := env.Client.Status().Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	setReleaseStatus(t, ns, "healthwidget-h", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "InstallSucceeded",
			Message: "installed", ObservedGeneration: hr.Generation, LastTransitionTime: metav1.Now()}}
		hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{{ID: ns + "_healthwidget-h_apps_Deployment", Version: "v1"}}}
	})
	waitObject(t, def, ns, "h", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Healthy"); c == nil || c["status"] != "True" {
			return fmt.Errorf("Healthy = %v", c)
		}
		return nil
	})

	// Steady state (the definition's counts converge too): reads, and no write.
	waitCounts(t, def.Name, 1, 1)
	var reads uint64
	assertNoWrites(t, def, ns, 3*time.Second, "re-reading a healthy release", func() { reads = observeCount(t, "HealthWidget") })
	if n := observeCount(t, "HealthWidget") - reads; n < 3 {
		t.Errorf("%d re-reads in 3s with --health-interval 500ms, want at least 3", n)
	}

	// The workload degrades; nothing changes on the HelmRelease.
	_, degrade := availableDeployment(ns, dep.Name, false)
	testenv.WaitFor(t, timeout, "degrading the Deployment", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		degrade(dep)
		return env.Client.Status().Update(ctx, dep)
	})
	waitObject(t, def, ns, "h", func(u *unstructured.Unstructured) error {
		c := condition(u, "Healthy")
		if c == nil || c["status"] != "False" || !strings.Contains(fmt.Sprint(c["message"]), "Deployment "+ns+"/healthwidget-h: 0/2 available") {
			return fmt.Errorf("Healthy = %v", c)
		}
		if r := condition(u, "Ready"); r == nil || r["status"] != "True" {
			return fmt.Errorf("Ready changed with health: %v", r)
		}
		return nil
	})
	waitEvent(t, ns, obj.GetUID(), "Unhealthy", "Warning")

	// And recovers.
	testenv.WaitFor(t, timeout, "recovering the Deployment", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return err
		}
		setStatus(dep)
		return env.Client.Status().Update(ctx, dep)
	})
	waitObject(t, def, ns, "h", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Healthy"); c == nil || c["status"] != "True" {
			return fmt.Errorf("Healthy = %v", c)
		}
		return nil
	})
	waitEvent(t, ns, obj.GetUID(), "Healthy", "Normal")
}
