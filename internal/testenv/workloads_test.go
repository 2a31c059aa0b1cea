package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func init() {
	// envtest logs through controller-runtime's logger; left unset, controller-runtime prints a
	// stack trace ("log.SetLogger(...) was never called") once the package's tests pass 30s.
	ctrllog.SetLogger(logr.Discard())
}

// workloadTimeout bounds each workload's way to Ready. Measured: 1–3 s; generous for 2-core CI
// machines running several test packages at once.
const workloadTimeout = 90 * time.Second

// TestWorkloads starts Options{Workloads: true} and checks that Deployments, StatefulSets (with
// pre-created PersistentVolumes) and Jobs behave as in a real cluster, that the Node's capacity
// is enforced by the scheduler, and that Stop leaves nothing behind.
func TestWorkloads(t *testing.T) {
	begin := time.Now()
	env := Start(t, Options{Workloads: true})
	t.Logf("Workloads environment up in %s", time.Since(begin).Round(time.Millisecond))
	ctx := context.Background()
	c := env.Client

	t.Run("Node", func(t *testing.T) {
		if env.NodeName == "" {
			t.Fatal("Env.NodeName is empty")
		}
		node := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: env.NodeName}, node); err != nil {
			t.Fatal(err)
		}
		if err := nodeSchedulable(node); err != nil {
			t.Fatalf("Node %s: %v", env.NodeName, err)
		}
		if node.Annotations[FakeNodeAnnotation] != "fake" {
			t.Errorf("annotations = %v, want %s=fake", node.Annotations, FakeNodeAnnotation)
		}
		for name, want := range DefaultNodeResources() {
			for what, list := range map[string]corev1.ResourceList{"capacity": node.Status.Capacity, "allocatable": node.Status.Allocatable} {
				if got, ok := list[name]; !ok || got.Cmp(want) != 0 {
					t.Errorf("%s[%s] = %v, want %v (KWOK must keep what the Node was created with)", what, name, got.String(), want.String())
				}
			}
		}
		// The scheduler probe Pod is gone before Start returns.
		var pods corev1.PodList
		if err := c.List(ctx, &pods); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 0 {
			t.Errorf("%d Pods exist after Start, want none: %v", len(pods.Items), podNames(pods.Items))
		}
	})

	t.Run("DeploymentAvailable", func(t *testing.T) {
		labels := map[string]string{"app": "web"}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "web", Image: "nginx:1.27",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:              resource.MustParse("100m"),
							corev1.ResourceMemory:           resource.MustParse("128Mi"),
							corev1.ResourceEphemeralStorage: resource.MustParse("1Gi"),
						}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80)},
						}},
					}}},
				},
			},
		}
		created := time.Now()
		if err := c.Create(ctx, dep); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, workloadTimeout, "Deployment web to be Available with 2 replicas", func(ctx context.Context) error {
			got := &appsv1.Deployment{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(dep), got); err != nil {
				return err
			}
			return deploymentAvailable(got, 2)
		})
		t.Logf("Deployment Available %s after create", time.Since(created).Round(time.Millisecond))

		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 2 {
			t.Fatalf("%d Pods, want 2: %v", len(pods.Items), podNames(pods.Items))
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || !podCondition(&p, corev1.PodReady) {
				t.Errorf("Pod %s: phase %s, Ready %v; want Running and Ready", p.Name, p.Status.Phase, podCondition(&p, corev1.PodReady))
			}
			if p.Spec.NodeName != env.NodeName {
				t.Errorf("Pod %s on Node %q, want %q", p.Name, p.Spec.NodeName, env.NodeName)
			}
			if p.Status.PodIP == "" {
				t.Errorf("Pod %s has no IP", p.Name)
			}
		}
	})

	t.Run("StatefulSetWithVolumeClaimTemplate", func(t *testing.T) {
		labels := map[string]string{"app": "db"}
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
			Spec: appsv1.StatefulSetSpec{
				Replicas:    ptr.To[int32](2),
				ServiceName: "db",
				Selector:    &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "db", Image: "redis:7",
						VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
					}}},
				},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					ObjectMeta: metav1.ObjectMeta{Name: "data"},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceStorage: resource.MustParse("1Gi"),
						}},
					},
				}},
			},
		}
		if err := c.Create(ctx, sts); err != nil {
			t.Fatal(err)
		}
		// Nothing provisions volumes: the first claim stays Pending and its Pod unscheduled.
		claim0 := &corev1.PersistentVolumeClaim{}
		WaitFor(t, workloadTimeout, "PVC data-db-0 and Pod db-0 to exist", func(ctx context.Context) error {
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "data-db-0"}, claim0); err != nil {
				return err
			}
			return c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "db-0"}, &corev1.Pod{})
		})
		if claim0.Status.Phase != corev1.ClaimPending {
			t.Fatalf("PVC data-db-0 is %s before any PersistentVolume exists, want Pending", claim0.Status.Phase)
		}
		pod0 := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "db-0"}, pod0); err != nil {
			t.Fatal(err)
		}
		if pod0.Spec.NodeName != "" {
			t.Fatalf("Pod db-0 was scheduled to %s with an unbound claim", pod0.Spec.NodeName)
		}

		pvs, err := env.CreatePersistentVolumes(ctx, 2, "1Gi")
		if err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		WaitFor(t, workloadTimeout, "StatefulSet db to have 2 ready replicas", func(ctx context.Context) error {
			got := &appsv1.StatefulSet{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(sts), got); err != nil {
				return err
			}
			return statefulSetReady(got, 2)
		})
		t.Logf("StatefulSet Ready %s after its PersistentVolumes were created", time.Since(created).Round(time.Millisecond))

		bound := map[string]bool{}
		for _, name := range []string{"data-db-0", "data-db-1"} {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, pvc); err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
				t.Errorf("PVC %s: phase %s, volume %q; want Bound", name, pvc.Status.Phase, pvc.Spec.VolumeName)
			}
			bound[pvc.Spec.VolumeName] = true
		}
		for _, pv := range pvs {
			if !bound[pv.Name] {
				t.Errorf("PersistentVolume %s is bound to no claim of the StatefulSet (bound: %v)", pv.Name, bound)
			}
			if pv.Spec.StorageClassName != "" {
				t.Errorf("PersistentVolume %s has storageClassName %q, want none (no default StorageClass)", pv.Name, pv.Spec.StorageClassName)
			}
		}
	})

	t.Run("JobCompletes", func(t *testing.T) {
		// KWOK's pod-complete stage turns Running Pods owned by a Job into Succeeded.
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "migrate", Namespace: "default"},
			Spec: batchv1.JobSpec{
				Completions:  ptr.To[int32](2),
				Parallelism:  ptr.To[int32](1),
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "migrate", Image: "busybox", Command: []string{"true"}}},
				}},
			},
		}
		created := time.Now()
		if err := c.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, workloadTimeout, "Job migrate to be Complete", func(ctx context.Context) error {
			got := &batchv1.Job{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(job), got); err != nil {
				return err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
					return fmt.Errorf("Job failed: %s: %s", cond.Reason, cond.Message) // retried until timeout, but explains it
				}
				if cond.Type == batchv1.JobComplete && cond.Status == corev1.ConditionTrue {
					if got.Status.Succeeded != 2 {
						return fmt.Errorf("Complete with %d succeeded, want 2", got.Status.Succeeded)
					}
					return nil
				}
			}
			return fmt.Errorf("not Complete: active %d, succeeded %d, failed %d", got.Status.Active, got.Status.Succeeded, got.Status.Failed)
		})
		t.Logf("Job (2 completions, 1 at a time) Complete %s after create", time.Since(created).Round(time.Millisecond))
	})

	t.Run("InsufficientResourcesStayPending", func(t *testing.T) {
		for name, req := range map[string]corev1.ResourceList{
			"too-much-cpu":               {corev1.ResourceCPU: resource.MustParse("64")},
			"too-much-ephemeral-storage": {corev1.ResourceEphemeralStorage: resource.MustParse("1Ti")},
		} {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "big", Image: "busybox",
					Resources: corev1.ResourceRequirements{Requests: req, Limits: req},
				}}},
			}
			if err := c.Create(ctx, pod); err != nil {
				t.Fatal(err)
			}
			var resName corev1.ResourceName
			for r := range req {
				resName = r
			}
			WaitFor(t, workloadTimeout, "Pod "+name+" to be Unschedulable", func(ctx context.Context) error {
				got := &corev1.Pod{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
					return err
				}
				if got.Spec.NodeName != "" {
					return fmt.Errorf("scheduled onto %s", got.Spec.NodeName) // fails the wait by timeout, with this reason
				}
				for _, cond := range got.Status.Conditions {
					if cond.Type != corev1.PodScheduled {
						continue
					}
					if cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
						return fmt.Errorf("PodScheduled=%s reason %s", cond.Status, cond.Reason)
					}
					if want := "Insufficient " + string(resName); !strings.Contains(cond.Message, want) {
						return fmt.Errorf("PodScheduled message %q lacks %q", cond.Message, want)
					}
					return nil
				}
				return errors.New("no PodScheduled condition yet")
			})
			got := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != corev1.PodPending {
				t.Errorf("Pod %s phase %s, want Pending", name, got.Status.Phase)
			}
		}
	})

	t.Run("StopLeavesNothing", func(t *testing.T) {
		groups := env.ProcessGroups()
		// kube-apiserver, etcd, kube-controller-manager, kwok, kube-scheduler.
		if len(groups) != 5 {
			t.Fatalf("process groups = %v, want 5 (kube-apiserver, etcd and 3 children)", groups)
		}
		assertStopLeavesNothing(t, env, groups)
	})
}

func TestWorkloadsMissingBinariesSayRunMakeTestbin(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/chartkind/chartkind\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := startIn(root, Options{Workloads: true})
	if err == nil || !strings.Contains(err.Error(), "run `make testbin`") {
		t.Fatalf("err = %v, want one telling to run `make testbin`", err)
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name missing %s: %v", name, err)
		}
	}
}

func TestKWOKStagesFromModuleCache(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := kwokModuleDir(root)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Dir: t.TempDir(), RootDir: root}
	p, err := e.writeKWOKStages()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete"} {
		if !strings.Contains(string(b), "name: "+stage+"\n") {
			t.Errorf("stages file (from %s) lacks stage %s", dir, stage)
		}
	}
	if strings.Contains(string(b), "kind: Kustomization") {
		t.Errorf("stages file includes a kustomization.yaml:\n%s", b)
	}
	if strings.HasPrefix(dir, root) {
		t.Errorf("KWOK module dir %s is inside the repository", dir)
	}
}

func deploymentAvailable(d *appsv1.Deployment, replicas int32) error {
	if d.Status.ObservedGeneration != d.Generation {
		return fmt.Errorf("status.observedGeneration=%d, metadata.generation=%d", d.Status.ObservedGeneration, d.Generation)
	}
	if d.Status.AvailableReplicas != replicas || d.Status.ReadyReplicas != replicas || d.Status.UpdatedReplicas != replicas {
		return fmt.Errorf("available %d, ready %d, updated %d, want %d", d.Status.AvailableReplicas, d.Status.ReadyReplicas, d.Status.UpdatedReplicas, replicas)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			if c.Status != corev1.ConditionTrue {
				return fmt.Errorf("Available=%s (%s)", c.Status, c.Reason)
			}
			return nil
		}
	}
	return errors.New("no Available condition yet")
}

func statefulSetReady(s *appsv1.StatefulSet, replicas int32) error {
	if s.Status.ObservedGeneration != s.Generation {
		return fmt.Errorf("status.observedGeneration=%d, metadata.generation=%d", s.Status.ObservedGeneration, s.Generation)
	}
	if s.Status.ReadyReplicas != replicas || s.Status.AvailableReplicas != replicas {
		return fmt.Errorf("ready %d, available %d, want %d", s.Status.ReadyReplicas, s.Status.AvailableReplicas, replicas)
	}
	return nil
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podNames(pods []corev1.Pod) []string {
	names := make([]string, 0, len(pods))
	for _, p := range pods {
		names = append(names, p.Name+"("+string(p.Status.Phase)+")")
	}
	return names
}

// TestWorkloadsRestartsIdleScheduler gives the first kube-scheduler only a profile no Pod asks
// for, so that it is ready but schedules nothing (as a hung scheduler once did), and checks that
// Start notices it through the probe Pod and replaces it with one that works.
func TestWorkloadsRestartsIdleScheduler(t *testing.T) {
	defer func(timeout time.Duration) { schedulerProbeTimeout, testHookFirstSchedulerName = timeout, "" }(schedulerProbeTimeout)
	schedulerProbeTimeout = 3 * time.Second
	testHookFirstSchedulerName = "testenv-nobody"

	env := Start(t, Options{Workloads: true})
	var names []string
	for _, c := range env.children {
		names = append(names, c.name)
	}
	if got := strings.Join(names, ","); got != "kube-controller-manager,kwok,kube-scheduler-restarted" {
		t.Fatalf("children = %s, want kube-controller-manager,kwok,kube-scheduler-restarted", got)
	}
	if groups := env.ProcessGroups(); len(groups) != 5 {
		t.Fatalf("process groups = %v, want 5 (the first scheduler's is gone)", groups)
	}
	var logged []string
	for _, l := range env.logs {
		logged = append(logged, l.name)
	}
	if !strings.Contains(strings.Join(logged, ","), "kube-scheduler,") {
		t.Errorf("logs = %v, want the first kube-scheduler's kept", logged)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "after-restart", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if err := env.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, workloadTimeout, "Pod after-restart to be Running and Ready", func(ctx context.Context) error {
		got := &corev1.Pod{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			return err
		}
		if got.Status.Phase != corev1.PodRunning || !podCondition(got, corev1.PodReady) {
			return fmt.Errorf("phase %s, node %q", got.Status.Phase, got.Spec.NodeName)
		}
		return nil
	})
}
