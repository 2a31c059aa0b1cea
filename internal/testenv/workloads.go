package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// FakeNodeAnnotation marks the Nodes KWOK manages (--manage-nodes-with-annotation-selector).
	FakeNodeAnnotation = "kwok.x-k8s.io/node"
	// FakeNodeName is the name of the Node simulated for Options.Workloads (Env.NodeName).
	FakeNodeName = "testenv-node"

	// kwokModule is the module hack/tools/kwok pins; its stage definitions are read from the
	// module cache.
	kwokModule = "sigs.k8s.io/kwok"
	kwokCmd    = kwokModule + "/cmd/kwok"

	// workloadControllers is every controller kube-controller-manager runs by default but the
	// ServiceAccount token controller, which needs a signing key envtest does not hand it (the
	// API server issues tokens through the TokenRequest API anyway).
	workloadControllers = "*,-serviceaccount-token"
)

var (
	// schedulerProbeTimeout bounds how long the probe Pod may take to be scheduled before
	// kube-scheduler is restarted (see startWorkloads). A working scheduler takes milliseconds.
	schedulerProbeTimeout = 30 * time.Second
	// testHookFirstSchedulerName, set by tests only, gives the first kube-scheduler a single
	// profile of that name: it is ready but schedules no default-scheduler Pod, like the hung
	// scheduler the restart is for.
	testHookFirstSchedulerName string
)

// DefaultNodeResources is the capacity and allocatable of the Workloads Node unless
// Options.NodeResources overrides them. ephemeral-storage matters: many charts (bitnami's among
// them) request it, and a Node without it leaves every such Pod Pending with
// "Insufficient ephemeral-storage".
func DefaultNodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("500Gi"),
	}
}

// kwokStageFiles are the stage definitions shipped in the KWOK module, relative to its root:
// Nodes become Ready and keep a heartbeat; Pods become Running and Ready as soon as they are
// bound, Job Pods then Succeeded, and deleted Pods go away at once.
var kwokStageFiles = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat/node-heartbeat.yaml",
	"kustomize/stage/pod/fast/*.yaml",
}

// startWorkloads starts kube-controller-manager with the workload controllers, KWOK and
// kube-scheduler, creates the fake Node and waits until a Pod can be scheduled onto it.
func (e *Env) startWorkloads(opts Options, bins map[string]string) error {
	stages, err := e.writeKWOKStages()
	if err != nil {
		return err
	}

	// Start all three before waiting for any: their start-ups overlap.
	kcm, kcmURL, err := e.startControllerManagerChild(bins["kube-controller-manager"], workloadControllers, []string{
		// A claim created before its volume is otherwise only bound at the binder's next
		// periodic sync, 15s later (measured: a StatefulSet Ready 14.3s after its
		// PersistentVolumes were created, instead of about a second).
		"--pvclaimbinder-sync-period=1s",
	})
	if err != nil {
		return err
	}
	kwok, kwokURL, err := e.startKWOK(bins["kwok"], stages)
	if err != nil {
		return err
	}
	sched, schedURL, err := e.startSchedulerChild("kube-scheduler", bins["kube-scheduler"], testHookFirstSchedulerName)
	if err != nil {
		return err
	}
	if err := waitHTTPOK(kcm, kcmURL, opts.StartTimeout); err != nil {
		return err
	}
	if err := waitHTTPOK(kwok, kwokURL, opts.StartTimeout); err != nil {
		return err
	}
	// /readyz includes the scheduler's informer and event handler sync.
	if err := waitHTTPOK(sched, schedURL, opts.StartTimeout); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	if err := e.createFakeNode(ctx, opts.NodeResources); err != nil {
		return err
	}
	if err := e.waitNodeSchedulable(ctx, kwok); err != nil {
		return err
	}

	// kube-scheduler has been seen to start, answer, log nothing and schedule nothing; a
	// restart fixed it. Only trust it once it has scheduled a Pod.
	err = e.probeScheduler(ctx, sched)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	if err := e.removeChild(sched); err != nil {
		return err
	}
	sched, schedURL, err = e.startSchedulerChild("kube-scheduler-restarted", bins["kube-scheduler"], "")
	if err != nil {
		return err
	}
	if err := waitHTTPOK(sched, schedURL, opts.StartTimeout); err != nil {
		return err
	}
	if err2 := e.probeScheduler(ctx, sched); err2 != nil {
		return fmt.Errorf("kube-scheduler scheduled no probe Pod, even after a restart: %w (first attempt: %v)", err2, err)
	}
	return nil
}

// startSchedulerChild starts kube-scheduler serving /readyz on a free loopback port (with
// --secure-port=0 it would serve nothing to health-check) and returns it with that URL.
// A non-empty schedulerName replaces the default profile (tests of the restart only).
func (e *Env) startSchedulerChild(name, bin, schedulerName string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{
		"--authentication-kubeconfig=" + e.KubeconfigPath,
		"--authorization-kubeconfig=" + e.KubeconfigPath,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(e.Dir, name),
	}
	if schedulerName == "" {
		args = append(args, "--kubeconfig="+e.KubeconfigPath, "--leader-elect=false")
	} else {
		// With --config, --kubeconfig and --leader-elect are ignored.
		cfg := filepath.Join(e.Dir, name+"-config.yaml")
		data := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
leaderElection:
  leaderElect: false
profiles:
- schedulerName: %q
`, e.KubeconfigPath, schedulerName)
		if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
			return nil, "", err
		}
		args = append(args, "--config="+cfg)
	}
	c, err := e.startChild(name, bin, args, nil)
	if err != nil {
		return nil, "", err
	}
	return c, fmt.Sprintf("https://127.0.0.1:%d/readyz", port), nil
}

// startKWOK starts KWOK managing only the Nodes annotated kwok.x-k8s.io/node=fake, with its
// server (health checks only: no port-forward, exec or logs are configured) on a free loopback
// port, and returns it with its /healthz URL.
func (e *Env) startKWOK(bin, stages string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	home := filepath.Join(e.Dir, "kwok-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, "", err
	}
	args := []string{
		"--kubeconfig=" + e.KubeconfigPath,
		"--config=" + stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + FakeNodeAnnotation + "=fake",
		"--cidr=10.0.0.1/24",
		"--node-ip=10.0.0.1",
		"--server-address=127.0.0.1:" + strconv.Itoa(port),
		// Renew a Node Lease (every ~10s) besides the heartbeat stage's condition updates, which
		// come every 20–45s: the node lifecycle controller marks a Node whose last heartbeat is
		// older than 50s NotReady and taints it.
		"--node-lease-duration-seconds=40",
	}
	// KWOK also loads ~/.kwok/kwok.yaml when it exists: keep the developer's out.
	env := []string{"HOME=" + home, "KUBECONFIG=" + e.KubeconfigPath}
	c, err := e.startChild("kwok", bin, args, env)
	if err != nil {
		return nil, "", err
	}
	return c, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil
}

// removeChild stops c and forgets it, so that ProcessGroups lists only live components.
func (e *Env) removeChild(c *child) error {
	err := c.stop(stopGracePeriod)
	for i, x := range e.children {
		if x == c {
			e.children = append(e.children[:i], e.children[i+1:]...)
			break
		}
	}
	for i, g := range e.groups {
		if g == c.pid() {
			e.groups = append(e.groups[:i], e.groups[i+1:]...)
			break
		}
	}
	if err != nil {
		return fmt.Errorf("stopping %s: %w", c.name, err)
	}
	return nil
}

// createFakeNode creates the Node KWOK simulates. Nodes are the one kind whose status may be set
// on create: KWOK's node-initialize stage keeps the capacity and allocatable given here and adds
// the conditions, addresses and nodeInfo.
func (e *Env) createFakeNode(ctx context.Context, overrides corev1.ResourceList) error {
	res := DefaultNodeResources()
	for name, q := range overrides {
		res[name] = q
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNodeName,
			Annotations: map[string]string{FakeNodeAnnotation: "fake"},
			Labels: map[string]string{
				"kubernetes.io/hostname": FakeNodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res.DeepCopy()},
	}
	if err := e.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("creating Node %s: %w", FakeNodeName, err)
	}
	e.NodeName = FakeNodeName
	return nil
}

// waitNodeSchedulable waits until KWOK has made the Node Ready and kube-controller-manager has
// removed the not-ready taint the API server puts on every new Node.
func (e *Env) waitNodeSchedulable(ctx context.Context, kwok *child) error {
	var last error
	err := poll(ctx, pollInterval, func(ctx context.Context) (bool, error) {
		if kwok.exited() {
			return false, fmt.Errorf("kwok exited: %v", kwok.waitErr)
		}
		node := &corev1.Node{}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: e.NodeName}, node); err != nil {
			last = err
			return false, nil
		}
		last = nodeSchedulable(node)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Node %s to be Ready and untainted: %w (last: %v)", e.NodeName, err, last)
	}
	return nil
}

func nodeSchedulable(node *corev1.Node) error {
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != corev1.ConditionTrue {
				return fmt.Errorf("Ready=%s (%s)", c.Status, c.Reason)
			}
			ready = true
		}
	}
	if !ready {
		return errors.New("no Ready condition yet")
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return fmt.Errorf("tainted %s=%s:%s", t.Key, t.Value, t.Effect)
		}
	}
	if node.Spec.Unschedulable {
		return errors.New("spec.unschedulable")
	}
	return nil
}

// probeScheduler creates a Pod, waits until sched has bound it to the Node, and deletes it.
func (e *Env) probeScheduler(ctx context.Context, sched *child) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "testenv-scheduler-probe-", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "probe", Image: "testenv.invalid/probe"}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if err := e.Client.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating the scheduler probe Pod: %w", err)
	}
	defer func() {
		// Gone for good before any test lists Pods.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Client.Delete(dctx, pod, client.GracePeriodSeconds(0))
		_ = poll(dctx, pollInterval, func(ctx context.Context) (bool, error) {
			err := e.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
			return apierrors.IsNotFound(err), nil
		})
	}()
	pctx, cancel := context.WithTimeout(ctx, schedulerProbeTimeout)
	defer cancel()
	var last string
	err := poll(pctx, pollInterval, func(ctx context.Context) (bool, error) {
		if sched.exited() {
			return false, fmt.Errorf("%s exited: %v", sched.name, sched.waitErr)
		}
		got := &corev1.Pod{}
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			last = err.Error()
			return false, nil
		}
		if got.Spec.NodeName != "" {
			return true, nil
		}
		last = "not bound"
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				last = fmt.Sprintf("PodScheduled=%s %s: %s", c.Status, c.Reason, c.Message)
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("probe Pod %s not scheduled within %s: %w (%s)", pod.Name, schedulerProbeTimeout, err, last)
	}
	return nil
}

// writeKWOKStages concatenates KWOK's stage definitions from the module cache into Dir.
func (e *Env) writeKWOKStages() (string, error) {
	modDir, err := kwokModuleDir(e.RootDir)
	if err != nil {
		return "", err
	}
	var files []string
	for _, pattern := range kwokStageFiles {
		matches, err := filepath.Glob(filepath.Join(modDir, pattern))
		if err != nil {
			return "", err
		}
		if len(matches) == 0 {
			return "", fmt.Errorf("no KWOK stage %s in %s", pattern, modDir)
		}
		sort.Strings(matches)
		for _, m := range matches {
			// The stage directories are kustomize bases too.
			if filepath.Base(m) != "kustomization.yaml" {
				files = append(files, m)
			}
		}
	}
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "---\n# %s\n", strings.TrimPrefix(f, modDir+string(filepath.Separator)))
		b.Write(bytes.TrimRight(data, "\n"))
		b.WriteString("\n")
	}
	p := filepath.Join(e.Dir, "kwok-stages.yaml")
	return p, os.WriteFile(p, b.Bytes(), 0o644)
}

var kwokDirs sync.Map // version -> module directory

// kwokModuleDir returns the module cache directory of the KWOK version bin/kwok/kwok was built
// from (its stamp), downloading it if needed (`make testbin` already did): the stage files must
// be those of the binary.
func kwokModuleDir(root string) (string, error) {
	stampPath := filepath.Join(root, kwokBinDir, ".kwok.stamp")
	stamp, err := os.ReadFile(stampPath)
	if err != nil {
		return "", fmt.Errorf("reading the KWOK build stamp: %w (run `make testbin`)", err)
	}
	// "<package>@<version> <go version> ..."
	first, _, _ := strings.Cut(strings.TrimSpace(string(stamp)), " ")
	pkg, version, ok := strings.Cut(first, "@")
	if !ok || pkg != kwokCmd || version == "" {
		return "", fmt.Errorf("unexpected KWOK build stamp %s: %q (run `make testbin`)", stampPath, stamp)
	}
	if dir, ok := kwokDirs.Load(version); ok {
		return dir.(string), nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to locate KWOK's stage files in the module cache: %w", err)
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", kwokModule+"@"+version)
	cmd.Dir = filepath.Join(root, "hack", "tools", "kwok")
	// The caller's GOFLAGS (e.g. -mod=vendor) and workspace must not interfere; never fetch
	// another toolchain.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("locating %s@%s in the module cache (go mod download -json in hack/tools/kwok): %v %s %s", kwokModule, version, err, info.Error, strings.TrimSpace(stderr.String()))
	}
	kwokDirs.Store(version, info.Dir)
	return info.Dir, nil
}

// CreatePersistentVolumes creates n PersistentVolumes of the given size (e.g. "1Gi"), for
// StatefulSets with volumeClaimTemplates and other PersistentVolumeClaims: nothing provisions
// volumes in this environment, and kube-controller-manager's volume binder (run by
// Options.Workloads, not by ControllerManager alone) binds a claim only to an existing volume.
//
// The volumes are named testenv-pv-<n>, hostPath volumes under Dir (nothing ever mounts them),
// labelled testenv.chartkind.io/volume=true, ReadWriteOnce,
// ReadOnlyMany and ReadWriteMany, reclaim policy Retain, and have the default StorageClass's
// name if one exists, else none (""), so that they match claims without a storageClassName.
// A claim binds to the smallest volume that is large enough, one claim per volume.
func (e *Env) CreatePersistentVolumes(ctx context.Context, n int, size string) ([]*corev1.PersistentVolume, error) {
	q, err := resource.ParseQuantity(size)
	if err != nil {
		return nil, fmt.Errorf("PersistentVolume size %q: %w", size, err)
	}
	class, err := e.defaultStorageClass(ctx)
	if err != nil {
		return nil, err
	}
	pvs := make([]*corev1.PersistentVolume, 0, n)
	for range n {
		name := fmt.Sprintf("testenv-pv-%d", e.volumes.Add(1))
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name:   name,
				Labels: map[string]string{"testenv.chartkind.io/volume": "true"},
			},
			Spec: corev1.PersistentVolumeSpec{
				Capacity: corev1.ResourceList{corev1.ResourceStorage: q},
				AccessModes: []corev1.PersistentVolumeAccessMode{
					corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany,
				},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              class,
				VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
				// Only has to be unique and absolute: nothing mounts it.
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: filepath.Join(e.Dir, "volumes", name),
				}},
			},
		}
		if err := e.Client.Create(ctx, pv); err != nil {
			return pvs, fmt.Errorf("creating a PersistentVolume: %w", err)
		}
		pvs = append(pvs, pv)
	}
	return pvs, nil
}

func (e *Env) defaultStorageClass(ctx context.Context) (string, error) {
	var list storagev1.StorageClassList
	if err := e.Client.List(ctx, &list); err != nil {
		return "", fmt.Errorf("listing StorageClasses: %w", err)
	}
	for _, sc := range list.Items {
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			return sc.Name, nil
		}
	}
	return "", nil
}
