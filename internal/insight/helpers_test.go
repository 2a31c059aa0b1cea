package insight

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

const ns = "shop"

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// releaseOf returns a HelmRelease whose inventory lists objs, as
// helm-controller writes it.
func releaseOf(t testing.TB, objs ...client.Object) *helmv2.HelmRelease {
	t.Helper()
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}
	hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{}}
	for _, o := range objs {
		gvk, err := apiutil.GVKForObject(o, scheme)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s_%s_%s_%s", o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind)
		hr.Status.Inventory.Entries = append(hr.Status.Inventory.Entries, helmv2.ResourceRef{ID: id, Version: gvk.Version})
	}
	return hr
}

func newClient(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
}

// counter counts the API calls Observe makes.
type counter struct {
	client.Reader
	mu    sync.Mutex
	calls []string
}

func (c *counter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprintf("get %T %s", obj, key))
	c.mu.Unlock()
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c *counter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.mu.Lock()
	c.calls = append(c.calls, fmt.Sprintf("list %T", list))
	c.mu.Unlock()
	return c.Reader.List(ctx, list, opts...)
}

func observe(t testing.TB, r client.Reader, hr *helmv2.HelmRelease, opts Options) *Report {
	t.Helper()
	rep, err := Observe(context.Background(), r, hr, opts)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return rep
}

func om(name string, lbls ...string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Namespace: ns, Name: name}
	if len(lbls) > 0 {
		m.Labels = map[string]string{}
		for i := 0; i+1 < len(lbls); i += 2 {
			m.Labels[lbls[i]] = lbls[i+1]
		}
	}
	return m
}

func deployment(name string, replicas, available int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: om(name),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		},
		Status: appsv1.DeploymentStatus{
			Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: available, AvailableReplicas: available,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: boolStatus(available == replicas)},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
			},
		},
	}
}

func statefulSet(name string, replicas, ready int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: om(name),
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		},
		Status: appsv1.StatefulSetStatus{
			Replicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready, CurrentReplicas: replicas,
			UpdatedReplicas: replicas, CurrentRevision: "r1", UpdateRevision: "r1",
		},
	}
}

func boolStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

// pod returns a pod of the workload app; mutate sets its state.
func pod(app, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: om(name, "app", app),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func unschedulable(msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.Now()
		p.Status = corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
				Message: msg, LastTransitionTime: metav1.Now(),
			}},
		}
	}
}

func notReadyContainer(state corev1.ContainerState, last *corev1.ContainerStateTerminated, restarts int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions[1] = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse,
			Reason: "ContainersNotReady", Message: "containers with unready status: [app]"}
		cs := corev1.ContainerStatus{Name: "app", Image: "nginx:1.27", State: state, RestartCount: restarts}
		if last != nil {
			cs.LastTerminationState.Terminated = last
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func joined(lines []string) string { return strings.Join(lines, "\n") }
