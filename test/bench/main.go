// Command bench measures the chartkind operator at scale against a real
// kube-apiserver and etcd and prints a table.
//
// It starts the control plane, runs `chartkind operator` as a separate process
// (so its RSS and its API writes are its own), registers K kinds and creates N
// objects of each, then measures every step of the mirror with watches:
//
//   - baseline: the API server's own create → watch-event latency, measured on
//     ConfigMaps in the same run; every latency is also given as a ratio to it;
//   - create → HelmRelease exists;
//   - HelmRelease Ready → object Ready (the bench writes HelmRelease status as
//     helm-controller would: there is no kubelet and a real Helm install per
//     object would measure Helm, not chartkind);
//   - spec update → HelmRelease values updated;
//   - definition created → kind served, and → first object's HelmRelease;
//   - operator RSS, API writes per object (from the operator's own client
//     metrics), and API writes during an idle period, which must be 0.
//
// Run it with `make bench-operator` (K=10, N=1000 by default).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

type config struct {
	kinds, objects, workers int
	idle, timeout           time.Duration
	operatorQPS             float64
}

func main() {
	var c config
	flag.IntVar(&c.kinds, "kinds", 10, "number of kinds (ApplicationDefinitions)")
	flag.IntVar(&c.objects, "objects", 1000, "objects created per kind")
	flag.IntVar(&c.workers, "workers", 16, "concurrent writers in the bench client")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle period in which the operator must make no write")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "overall time limit")
	flag.Float64Var(&c.operatorQPS, "operator-qps", 200, "the operator's --kube-api-qps")
	flag.Parse()
	if err := run(c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

var (
	hrGVR = helmv2.GroupVersion.WithResource("helmreleases")
	cmGVR = corev1.SchemeGroupVersion.WithResource("configmaps")
)

const ns = "bench"

func run(c config, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "[bench] "+format+"\n", args...) }

	root, err := testenv.ModuleRoot()
	if err != nil {
		return err
	}
	logf("starting kube-apiserver and etcd")
	env, stopEnv, err := testenv.StartMain(testenv.Options{AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	if err != nil {
		return err
	}
	defer stopEnv()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cl, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}

	// Baseline: the API server's own create → watch event latency.
	logf("baseline: %d ConfigMaps, create → watch event", c.objects)
	baseline, err := measureBaseline(ctx, cl, dyn, c)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	op, err := startOperator(ctx, root, env, c)
	if err != nil {
		return err
	}
	defer op.stop()

	hrs := newTracker()
	stopHRWatch, err := watchAll(ctx, dyn, hrGVR, hrs)
	if err != nil {
		return err
	}
	defer stopHRWatch()

	// Register K kinds, measuring definition → served → first object.
	logf("registering %d kinds", c.kinds)
	var served, firstObject []time.Duration
	kinds := make([]schema.GroupVersionResource, c.kinds)
	objTrackers := make([]*tracker, c.kinds)
	for k := 0; k < c.kinds; k++ {
		kind := fmt.Sprintf("Bench%d", k)
		kinds[k] = schema.GroupVersionResource{Group: v1alpha1.DefaultGroup, Version: "v1alpha1", Resource: strings.ToLower(kind) + "s"}
		def := benchDefinition(kind)
		start := time.Now()
		if err := cl.Create(ctx, def); err != nil {
			return err
		}
		if err := pollUntil(ctx, 2*time.Minute, func() (bool, error) {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(def), def); err != nil {
				return false, err
			}
			return apimeta.IsStatusConditionTrue(def.Status.Conditions, "Ready"), nil
		}); err != nil {
			return fmt.Errorf("definition %s never Ready: %w", def.Name, err)
		}
		served = append(served, time.Since(start))
		objTrackers[k] = newTracker()
		stop, err := watchAll(ctx, dyn, kinds[k], objTrackers[k])
		if err != nil {
			return err
		}
		defer stop()
		// First object of the kind: created as soon as the kind is served.
		name := "o0"
		if err := createObject(ctx, dyn, kinds[k], kind, name, 1); err != nil {
			return fmt.Errorf("first object of %s: %w", kind, err)
		}
		if err := hrs.waitSeen(ctx, releaseName(k, name), time.Minute); err != nil {
			return fmt.Errorf("first object of %s: %w", kind, err)
		}
		firstObject = append(firstObject, time.Since(start))
	}

	writesBefore, err := op.writes()
	if err != nil {
		return err
	}

	// Create N objects per kind (the first already exists).
	total := c.kinds * c.objects
	logf("creating %d objects (%d kinds × %d)", total, c.kinds, c.objects)
	createdAt := newTimes()
	phase := time.Now()
	err = parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		if i == 0 {
			return nil
		}
		name := fmt.Sprintf("o%d", i)
		createdAt.set(releaseName(k, name), time.Now())
		return createObject(ctx, dyn, kinds[k], fmt.Sprintf("Bench%d", k), name, 1)
	})
	if err != nil {
		return err
	}
	createToHR, err := collect(ctx, createdAt, 10*time.Minute, hrs.seenAt)
	if err != nil {
		return fmt.Errorf("create → HelmRelease: %w", err)
	}
	createWall := time.Since(phase)
	if err := waitQuiet(ctx, op, 3*time.Second); err != nil {
		return err
	}
	writesAfterCreate, err := op.writes()
	if err != nil {
		return err
	}

	// HelmRelease Ready → object Ready.
	logf("writing Ready status on %d HelmReleases", total)
	for _, t := range objTrackers {
		t.expect(isReady)
	}
	readyAt := newTimes()
	phase = time.Now()
	err = parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		hr := &helmv2.HelmRelease{}
		if err := cl.Get(ctx, types.NamespacedName{Namespace: ns, Name: releaseName(k, name)}, hr); err != nil {
			return err
		}
		markReady(hr)
		readyAt.set(objectKey(k, name), time.Now())
		return cl.Status().Update(ctx, hr)
	})
	if err != nil {
		return err
	}
	readyLat, err := collect(ctx, readyAt, 10*time.Minute, matchedInKind(objTrackers))
	if err != nil {
		return fmt.Errorf("HelmRelease Ready → object Ready: %w", err)
	}
	readyWall := time.Since(phase)
	if err := waitQuiet(ctx, op, 3*time.Second); err != nil {
		return err
	}
	writesAfterReady, err := op.writes()
	if err != nil {
		return err
	}

	// spec update → HelmRelease values updated.
	logf("updating the spec of %d objects", total)
	updatedAt := newTimes()
	phase = time.Now()
	hrs.expect(func(u *unstructured.Unstructured) bool {
		v, _, _ := unstructured.NestedInt64(u.Object, "spec", "values", "replicas")
		return v == 2
	})
	err = parallel(ctx, c.workers, c.kinds, c.objects, func(k, i int) error {
		name := fmt.Sprintf("o%d", i)
		updatedAt.set(releaseName(k, name), time.Now())
		_, err := dyn.Resource(kinds[k]).Namespace(ns).Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return err
	}
	updateLat, err := collect(ctx, updatedAt, 10*time.Minute, hrs.matchedAt)
	if err != nil {
		return fmt.Errorf("spec update → values: %w", err)
	}
	updateWall := time.Since(phase)
	if err := waitQuiet(ctx, op, 3*time.Second); err != nil {
		return err
	}
	writesAfterUpdate, err := op.writes()
	if err != nil {
		return err
	}

	logf("idle for %s", c.idle)
	time.Sleep(c.idle)
	writesAfterIdle, err := op.writes()
	if err != nil {
		return err
	}
	rss, hwm, err := op.rss()
	if err != nil {
		return err
	}

	// Report.
	b50, b99 := pct(baseline, 50), pct(baseline, 99)
	fmt.Fprintf(out, "\nchartkind operator benchmark: %d kinds × %d objects = %d objects (real kube-apiserver + etcd, %d cores)\n\n", c.kinds, c.objects, total, numCPU())
	fmt.Fprintf(out, "| measure | p50 | p99 | p50 / baseline p50 | p99 / baseline p99 |\n|---|---|---|---|---|\n")
	row := func(name string, d []time.Duration) {
		p50, p99 := pct(d, 50), pct(d, 99)
		fmt.Fprintf(out, "| %s | %s | %s | %.1f× | %.1f× |\n", name, round(p50), round(p99), ratio(p50, b50), ratio(p99, b99))
	}
	row("baseline: API server create → watch event (ConfigMap)", baseline)
	row("object create → HelmRelease exists", createToHR)
	row("HelmRelease Ready → object Ready", readyLat)
	row("spec update → HelmRelease values updated", updateLat)
	row("definition created → kind served", served)
	row("definition created → first object's HelmRelease", firstObject)
	fmt.Fprintf(out, "\nEach bulk phase submits all %d changes at once, so its latencies are mostly time spent queued;\nthe whole phase, from the first change to the last one mirrored:\n\n| phase | wall time | objects/s |\n|---|---|---|\n", total)
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"create → HelmRelease exists", createWall}, {"HelmRelease Ready → object Ready", readyWall}, {"spec update → values updated", updateWall}} {
		fmt.Fprintf(out, "| %s | %s | %.0f |\n", p.name, round(p.d), float64(total)/p.d.Seconds())
	}
	fmt.Fprintf(out, "\n| measure | value |\n|---|---|\n")
	fmt.Fprintf(out, "| operator RSS at the end (peak) | %.0f MiB (%.0f MiB) |\n", float64(rss)/(1<<20), float64(hwm)/(1<<20))
	// The first object of each kind was created before writesBefore was read.
	fmt.Fprintf(out, "| operator API writes per object: create | %.2f |\n", float64(writesAfterCreate-writesBefore)/float64(total-c.kinds))
	fmt.Fprintf(out, "| operator API writes per object: Ready reflected | %.2f |\n", float64(writesAfterReady-writesAfterCreate)/float64(total))
	fmt.Fprintf(out, "| operator API writes per object: spec update | %.2f |\n", float64(writesAfterUpdate-writesAfterReady)/float64(total))
	fmt.Fprintf(out, "| operator API writes during %s idle | %d |\n", c.idle, writesAfterIdle-writesAfterUpdate)
	if writesAfterIdle != writesAfterUpdate {
		return fmt.Errorf("the operator wrote %d times while idle; it must write nothing", writesAfterIdle-writesAfterUpdate)
	}
	return nil
}

func releaseName(k int, name string) string { return fmt.Sprintf("bench%d-%s", k, name) }
func objectKey(k int, name string) string   { return fmt.Sprintf("%d/%s", k, name) }

func benchDefinition(kind string) *v1alpha1.ApplicationDefinition {
	lower := strings.ToLower(kind)
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: lower},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind, Plural: lower + "s"},
			Release: v1alpha1.ReleaseSpec{
				Prefix: lower + "-",
				Chart:  &v1alpha1.ChartTemplate{Name: lower, Version: "*", SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "bench", Namespace: ns}},
			},
			Schema: &apiextensionsv1.JSON{Raw: []byte(`{"type":"object","properties":{"replicas":{"type":"integer","minimum":1},"size":{"type":["integer","string"]},"mode":{"type":"string","enum":["a","b"]}}}`)},
		},
	}
}

func createObject(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, kind, name string, replicas int64) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gvr.GroupVersion().String(),
		"kind":       kind,
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"replicas": replicas, "size": "1Gi", "mode": "a"},
	}}
	_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// markReady writes what helm-controller writes after a successful install.
func markReady(hr *helmv2.HelmRelease) {
	now := metav1.Now()
	hr.Status.ObservedGeneration = hr.Generation
	hr.Status.Conditions = []metav1.Condition{
		{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: "InstallSucceeded", Message: "Helm install succeeded", LastTransitionTime: now, ObservedGeneration: hr.Generation},
		{Type: "Released", Status: metav1.ConditionTrue, Reason: "InstallSucceeded", Message: "Helm install succeeded", LastTransitionTime: now, ObservedGeneration: hr.Generation},
	}
	hr.Status.History = helmv2.Snapshots{{Name: hr.Name, Namespace: hr.Namespace, Version: 1, Status: "deployed", ChartName: "bench", ChartVersion: "1.0.0", ConfigDigest: "sha256:0", Digest: "sha256:0", FirstDeployed: now, LastDeployed: now}}
}

func isReady(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// --- watching ---------------------------------------------------------------

// tracker records when each object was first seen, and when it first matched
// the current expectation.
type tracker struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	matched map[string]time.Time
	match   func(*unstructured.Unstructured) bool
	objs    map[string]*unstructured.Unstructured
}

func newTracker() *tracker {
	return &tracker{seen: map[string]time.Time{}, matched: map[string]time.Time{}, objs: map[string]*unstructured.Unstructured{}}
}

func (t *tracker) observe(u *unstructured.Unstructured, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	name := u.GetName()
	if _, ok := t.seen[name]; !ok {
		t.seen[name] = at
	}
	t.objs[name] = u
	if t.match != nil {
		if _, ok := t.matched[name]; !ok && t.match(u) {
			t.matched[name] = at
		}
	}
}

func (t *tracker) expect(match func(*unstructured.Unstructured) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.match, t.matched = match, map[string]time.Time{}
	for name, u := range t.objs {
		if match(u) {
			t.matched[name] = time.Time{} // already true: not measurable
		}
	}
}

func (t *tracker) waitSeen(ctx context.Context, name string, timeout time.Duration) error {
	return pollUntil(ctx, timeout, func() (bool, error) {
		_, ok := t.seenAt(name)
		return ok, nil
	})
}

func watchAll(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, t *tracker) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	list, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		return nil, err
	}
	for i := range list.Items {
		t.observe(&list.Items[i], time.Now())
	}
	w, err := dyn.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				if u, ok := ev.Object.(*unstructured.Unstructured); ok {
					t.observe(u, time.Now())
				}
			}
		}
	}()
	return func() { w.Stop(); cancel() }, nil
}

type times struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func newTimes() *times { return &times{m: map[string]time.Time{}} }
func (t *times) set(k string, v time.Time) {
	t.mu.Lock()
	t.m[k] = v
	t.mu.Unlock()
}

// collect waits until lookup knows a time for every key of start and returns
// each time minus its start. A zero time means "already true before start":
// it counts as done but is not a measurement.
func collect(ctx context.Context, start *times, timeout time.Duration, lookup func(key string) (time.Time, bool)) ([]time.Duration, error) {
	var out []time.Duration
	err := pollUntil(ctx, timeout, func() (bool, error) {
		start.mu.Lock()
		defer start.mu.Unlock()
		out = out[:0]
		for k, s := range start.m {
			at, ok := lookup(k)
			if !ok {
				return false, nil
			}
			if !at.IsZero() {
				out = append(out, at.Sub(s))
			}
		}
		return true, nil
	})
	return out, err
}

// seenAt and matchedAt look a name up in t.
func (t *tracker) seenAt(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.seen[name]
	return at, ok
}

func (t *tracker) matchedAt(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.matched[name]
	return at, ok
}

// matchedInKind looks "kind/name" up in the tracker of that kind.
func matchedInKind(ts []*tracker) func(string) (time.Time, bool) {
	return func(key string) (time.Time, bool) {
		i := strings.IndexByte(key, '/')
		k, _ := strconv.Atoi(key[:i])
		return ts[k].matchedAt(key[i+1:])
	}
}

// --- baseline ---------------------------------------------------------------

func measureBaseline(ctx context.Context, cl client.Client, dyn dynamic.Interface, c config) ([]time.Duration, error) {
	t := newTracker()
	stop, err := watchAll(ctx, dyn, cmGVR, t)
	if err != nil {
		return nil, err
	}
	defer stop()
	start := newTimes()
	err = parallel(ctx, c.workers, 1, c.objects, func(_, i int) error {
		name := fmt.Sprintf("baseline-%d", i)
		start.set(name, time.Now())
		return cl.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"replicas": "1"}})
	})
	if err != nil {
		return nil, err
	}
	return collect(ctx, start, time.Minute, t.seenAt)
}

// --- the operator process ---------------------------------------------------

type operatorProcess struct {
	cmd         *exec.Cmd
	metricsAddr string
}

func startOperator(ctx context.Context, root string, env *testenv.Env, c config) (*operatorProcess, error) {
	bin := filepath.Join(env.Dir, "chartkind")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/chartkind")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building chartkind: %w", err)
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(env.Dir, "logs", "chartkind-operator.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "operator", "--kubeconfig", env.KubeconfigPath,
		"--metrics-bind-address", metrics, "--health-probe-bind-address", "0",
		"--kube-api-qps", fmt.Sprint(c.operatorQPS), "--kube-api-burst", fmt.Sprint(int(2*c.operatorQPS)),
		"--max-concurrent-reconciles", "8", "--log-level", "error")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	op := &operatorProcess{cmd: cmd, metricsAddr: metrics}
	if err := pollUntil(ctx, time.Minute, func() (bool, error) { _, err := op.writes(); return err == nil, nil }); err != nil {
		op.stop()
		return nil, fmt.Errorf("operator metrics never came up (log: %s)", logFile.Name())
	}
	return op, nil
}

func (o *operatorProcess) stop() {
	_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = o.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// writes sums the operator's own client-go request counter over writing verbs.
func (o *operatorProcess) writes() (int64, error) {
	resp, err := http.Get("http://" + o.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		labels := line[strings.IndexByte(line, '{'):strings.IndexByte(line, '}')]
		if !(strings.Contains(labels, `method="POST"`) || strings.Contains(labels, `method="PUT"`) ||
			strings.Contains(labels, `method="PATCH"`) || strings.Contains(labels, `method="DELETE"`)) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return int64(total), sc.Err()
}

func (o *operatorProcess) rss() (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", o.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// waitQuiet waits until the operator's write counter stops moving, so each
// phase's writes are counted in that phase.
func waitQuiet(ctx context.Context, op *operatorProcess, quiet time.Duration) error {
	last, err := op.writes()
	if err != nil {
		return err
	}
	since := time.Now()
	return pollUntil(ctx, 5*time.Minute, func() (bool, error) {
		n, err := op.writes()
		if err != nil {
			return false, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet, nil
	})
}

// --- helpers ----------------------------------------------------------------

func parallel(ctx context.Context, workers, kinds, objects int, f func(k, i int) error) error {
	type job struct{ k, i int }
	jobs := make(chan job)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := f(j.k, j.i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := 0; i < objects; i++ {
		for k := 0; k < kinds; k++ {
			select {
			case jobs <- job{k, i}:
			case err = <-errs:
				break feed
			case <-ctx.Done():
				err = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func pollUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := (len(s)*p + 99) / 100
	if idx > 0 {
		idx--
	}
	return s[idx]
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func numCPU() int { return goruntime.NumCPU() }
