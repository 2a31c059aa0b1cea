package integration

// The tests of docs/reliability.md that no other test covers: each bad input
// or fault named there, on the real API server, with the outcome a user or
// administrator sees.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/cli"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// childOperatorArgs, when set in the environment of this test binary, makes
// it run `chartkind <args>` instead of the tests (args separated by \x1f): the
// operator as a real process, which a test can SIGKILL. init runs before
// TestMain, so no control plane is started for it.
const childOperatorArgs = "CHARTKIND_TEST_CHILD_OPERATOR_ARGS"

func init() {
	if args := os.Getenv(childOperatorArgs); args != "" {
		os.Exit(cli.Main(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
	}
}

// childOperator runs `chartkind operator` as a child process against env.
type childOperator struct {
	t    *testing.T
	log  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

// startChildOperator starts the operator process and ends it (SIGTERM) when
// the test ends. Call it before creating definitions, like startOperator.
func startChildOperator(t *testing.T) *childOperator {
	t.Helper()
	c := &childOperator{t: t, log: filepath.Join(t.TempDir(), "operator.log")}
	c.start()
	t.Cleanup(func() {
		c.terminate()
		if t.Failed() {
			b, _ := os.ReadFile(c.log)
			t.Logf("operator process log:\n%s", b)
		}
	})
	return c
}

func (c *childOperator) start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs++
	args := []string{"operator", "--kubeconfig", env.KubeconfigPath,
		"--charts-dir", filepath.Join(env.RootDir, "examples", "charts"),
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--log-format", "console", "--log-level", "debug"}
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(f, "==== run %d\n", c.runs)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childOperatorArgs+"="+strings.Join(args, "\x1f"))
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group; and killed with the test binary, should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting the operator process: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()
	c.cmd, c.done = cmd, done
}

// kill ends the operator with SIGKILL: no graceful shutdown, in-flight
// requests cut wherever they are.
func (c *childOperator) kill() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.cmd = nil
}

func (c *childOperator) terminate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("operator process did not stop within 30s of SIGTERM; killing it")
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
	c.cmd = nil
}

// listReleases returns ns's HelmReleases by name.
func listReleases(ctx context.Context, c client.Client, ns string) (map[string]*helmv2.HelmRelease, error) {
	var list helmv2.HelmReleaseList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]*helmv2.HelmRelease{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// listObjects returns ns's objects of def's kind by name.
func listObjects(ctx context.Context, c client.Client, def *v1alpha1.ApplicationDefinition, ns string) (map[string]*unstructured.Unstructured, error) {
	list := &unstructured.UnstructuredList{}
	gvk := mirror.GVK(def)
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		out[list.Items[i].GetName()] = &list.Items[i]
	}
	return out, nil
}

// inStep checks that exactly the named objects exist in ns, each with exactly
// one HelmRelease (prefix + name), controlled by it, with values = spec and
// the object's status written, and that no other HelmRelease exists.
func inStep(ctx context.Context, c client.Client, def *v1alpha1.ApplicationDefinition, ns, prefix string, names []string) error {
	objs, err := listObjects(ctx, c, def, ns)
	if err != nil {
		return err
	}
	hrs, err := listReleases(ctx, c, ns)
	if err != nil {
		return err
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	got := make([]string, 0, len(objs))
	for n := range objs {
		got = append(got, n)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("%d objects, want %d", len(got), len(want))
	}
	for name, hr := range hrs {
		o := objs[strings.TrimPrefix(name, prefix)]
		if !strings.HasPrefix(name, prefix) || o == nil {
			return fmt.Errorf("HelmRelease %s belongs to no object", name)
		}
		if ref := metav1.GetControllerOf(hr); ref == nil || ref.UID != o.GetUID() {
			return fmt.Errorf("HelmRelease %s not controlled by its object", name)
		}
		if canon(values(hr)) != canon(spec(o)) {
			return fmt.Errorf("HelmRelease %s values %s, object spec %s", name, canon(values(hr)), canon(spec(o)))
		}
	}
	for name, o := range objs {
		if hrs[prefix+name] == nil {
			return fmt.Errorf("object %s has no HelmRelease", name)
		}
		if d, _, _ := unstructured.NestedString(o.Object, "status", "valuesDigest"); d == "" {
			return fmt.Errorf("object %s: status not written", name)
		}
	}
	return nil
}

// TestReliabilityOperatorKilledMidBulkCreate: the operator process is
// SIGKILLed (no graceful shutdown) while it mirrors a bulk create, and more
// objects are created while it is dead. A new process converges: every object
// has exactly one HelmRelease with its values and status, none is orphaned,
// none duplicated.
func TestReliabilityOperatorKilledMidBulkCreate(t *testing.T) {
	op := startChildOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("killwidget", "KillWidget"))
	const n = 40
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("k%02d", i)
	}

	ctx := ctxT(t)
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan string)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				errs <- env.Client.Create(ctx, newObject(def, ns, name, map[string]any{"replicas": int64(len(name) + int(created.Add(1))%5)}))
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	killedAt := -1
	go func() {
		defer close(next)
		for _, name := range names {
			next <- name
		}
	}()
	// Kill once the operator is visibly at work: some HelmReleases written, not all.
	testenv.WaitFor(t, timeout, "the operator mirroring the bulk create", func(ctx context.Context) error {
		hrs, err := listReleases(ctx, env.Client, ns)
		if err != nil {
			return err
		}
		if len(hrs) < 6 {
			return fmt.Errorf("%d HelmReleases", len(hrs))
		}
		op.kill()
		killedAt = len(hrs)
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("creating objects: %v", err)
		}
	}
	hrs, err := listReleases(ctx, env.Client, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("operator SIGKILLed with %d HelmReleases written; %d after all %d objects were created", killedAt, len(hrs), n)
	if len(hrs) >= n {
		t.Fatalf("every object was mirrored before the kill: nothing left to recover")
	}

	begin := time.Now()
	op.start()
	testenv.WaitFor(t, 2*time.Minute, "convergence after the kill", func(ctx context.Context) error {
		return inStep(ctx, env.Client, def, ns, "killwidget-", names)
	})
	t.Logf("converged %s after the restart", time.Since(begin).Round(100*time.Millisecond))
	waitDefinitionReason(t, def.Name, "Serving")
}

// inProcessOperator is an operator run in-process against any API server.
type inProcessOperator struct {
	logs   *testenv.LogBuffer
	cancel context.CancelFunc
	done   chan error
}

func startOperatorOn(t *testing.T, cfg *rest.Config, opts operator.Options) *inProcessOperator {
	t.Helper()
	o := &inProcessOperator{logs: &testenv.LogBuffer{}}
	opts.ChartsDir = filepath.Join(env.RootDir, "examples", "charts")
	opts.MetricsBindAddress = "0"
	opts.Logger = o.logs.Logger("[op] ", 1)
	op, err := operator.New(cfg, opts)
	if err != nil {
		t.Fatalf("operator.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancel, o.done = cancel, make(chan error, 1)
	go func() { o.done <- op.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-o.done:
		case <-time.After(30 * time.Second):
			t.Errorf("operator did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", o.logs.String())
		}
	})
	return o
}

// running fails the test if the operator has returned.
func (o *inProcessOperator) running(t *testing.T) {
	t.Helper()
	select {
	case err := <-o.done:
		o.done <- err
		t.Fatalf("the operator exited: %v", err)
	default:
	}
}

// TestReliabilityAPIServerRestarted: kube-apiserver is killed (SIGKILL), left
// down for 5 seconds and started again (etcd keeps the data) under a running
// operator.
// The operator does not exit, deletes nothing, keeps the kind served, and
// once the API server is back its watches resume: a spec change and a new
// object are mirrored as before.
func TestReliabilityAPIServerRestarted(t *testing.T) {
	own := testenv.Start(t, testenv.Options{AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	c := own.Client
	op := startOperatorOn(t, own.Config, operator.Options{MaxConcurrentReconciles: 2})
	ctx := ctxT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	def := widgetDefinition("restartwidget", "RestartWidget")
	if err := c.Create(ctx, def); err != nil {
		t.Fatal(err)
	}
	served := func(what string) *v1alpha1.ApplicationDefinition {
		d := &v1alpha1.ApplicationDefinition{}
		testenv.WaitFor(t, timeout, what, func(ctx context.Context) error {
			if err := c.Get(ctx, types.NamespacedName{Name: def.Name}, d); err != nil {
				return err
			}
			if r := meta.FindStatusCondition(d.Status.Conditions, "Ready"); r == nil || r.Reason != "Serving" || r.ObservedGeneration != d.Generation {
				return fmt.Errorf("Ready %+v", r)
			}
			return nil
		})
		return d
	}
	def = served("definition Serving")
	names := []string{"a", "b", "c"}
	for _, name := range names {
		if err := c.Create(ctx, newObject(def, ns.Name, name, map[string]any{"replicas": int64(1)})); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, timeout, "objects in step", func(ctx context.Context) error {
		return inStep(ctx, c, def, ns.Name, "restartwidget-", names)
	})
	before, err := listReleases(ctx, c, ns.Name)
	if err != nil {
		t.Fatal(err)
	}

	begin := time.Now()
	if err := own.KillAPIServer(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(begin)
	if err := c.Get(ctx, types.NamespacedName{Name: def.Name}, &v1alpha1.ApplicationDefinition{}); err == nil {
		t.Fatal("the API server still answers after KillAPIServer")
	}
	time.Sleep(5 * time.Second) // the operator's requests and watches fail meanwhile
	op.running(t)
	begin = time.Now()
	if err := own.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver killed in %s, down 5s, started again in %s", stopped.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	// Nothing was deleted or replaced, and the kind is still served.
	after, err := listReleases(ctx, c, ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	for name, hr := range before {
		if a := after[name]; a == nil || a.UID != hr.UID {
			t.Errorf("HelmRelease %s deleted or replaced across the API server restart", name)
		}
	}
	d := served("definition still Serving after the restart")
	if d.Generation != def.Generation {
		t.Errorf("definition generation %d → %d", def.Generation, d.Generation)
	}
	// Watches resumed: a spec change and a new object are mirrored.
	testenv.WaitFor(t, timeout, "changing a's spec", func(ctx context.Context) error {
		u := newObject(def, ns.Name, "a", nil)
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			return err
		}
		u.Object["spec"] = map[string]any{"replicas": int64(4)}
		return c.Update(ctx, u)
	})
	if err := c.Create(ctx, newObject(def, ns.Name, "d", map[string]any{"replicas": int64(2)})); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "objects in step after the restart", func(ctx context.Context) error {
		hr := &helmv2.HelmRelease{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: "restartwidget-a"}, hr); err != nil {
			return err
		}
		if canon(values(hr)) != `{"replicas":4}` {
			return fmt.Errorf("restartwidget-a values %s", canon(values(hr)))
		}
		return inStep(ctx, c, def, ns.Name, "restartwidget-", append(names, "d"))
	})
	t.Logf("mirroring resumed %s after the API server came back", time.Since(begin).Round(100*time.Millisecond))
	op.running(t)
}

// TestReliabilityConflictStorm: while users keep changing their objects'
// specs, another controller keeps annotating the same HelmReleases and
// helm-controller keeps writing their status, so the operator's writes and
// theirs keep meeting 409 Conflicts on the real API server. When the storm
// ends, nothing is lost: every HelmRelease has the object's last values and
// every annotation the other writer made, every object the last status, and
// the operator then goes quiet.
func TestReliabilityConflictStorm(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("stormwidget", "StormWidget"))
	const n = 5
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
		createObject(t, def, ns, names[i], map[string]any{"replicas": int64(1)})
	}
	testenv.WaitFor(t, timeout, "objects in step", func(ctx context.Context) error {
		return inStep(ctx, env.Client, def, ns, "stormwidget-", names)
	})
	errorsBefore := counterValue(t, "chartkind_reconcile_errors_total", map[string]string{"kind": "StormWidget"})

	const countAnnotation = "storm.example.com/count"
	// The storm lasts 8s; requests themselves are not cut short when it ends.
	stormCtx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	ctx := context.Background()
	over := func() bool { return stormCtx.Err() != nil }
	var userConflicts, writerConflicts, statusConflicts atomic.Int64
	lastReplicas := make([]int64, n)  // the last spec each user wrote
	annotations := make([]int64, n)   // how many annotations the other writer made
	statusWrites := make([]string, n) // the last status message helm-controller wrote
	var failures []string
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	// retry runs write until it succeeds, counting conflicts; it reports false
	// when the storm is over.
	retry := func(conflicts *atomic.Int64, what string, write func() error) bool {
		for !over() {
			err := write()
			switch {
			case err == nil:
				return true
			case apierrors.IsConflict(err):
				conflicts.Add(1)
			default:
				fail("%s: %v", what, err)
				return false
			}
		}
		return false
	}
	var wg sync.WaitGroup
	for i, name := range names {
		rel := "stormwidget-" + name
		wg.Add(3)
		go func() { // a user changing the spec
			defer wg.Done()
			for r := int64(2); !over(); r++ {
				ok := retry(&userConflicts, "updating "+name, func() error {
					u, err := getObject(ctx, def, ns, name)
					if err != nil {
						return err
					}
					u.Object["spec"] = map[string]any{"replicas": r}
					time.Sleep(20 * time.Millisecond) // as kubectl edit: read, think, write
					return env.Client.Update(ctx, u)
				})
				if ok {
					lastReplicas[i] = r
				}
				time.Sleep(40 * time.Millisecond)
			}
		}()
		go func() { // another controller annotating the HelmRelease
			defer wg.Done()
			for !over() {
				next := annotations[i] + 1
				ok := retry(&writerConflicts, "annotating "+rel, func() error {
					hr, err := getRelease(ctx, ns, rel)
					if err != nil {
						return err
					}
					if got := hr.Annotations[countAnnotation]; got != strconv.FormatInt(annotations[i], 10) && annotations[i] > 0 {
						fail("HelmRelease %s: annotation %q, the writer last wrote %d: an update was lost", rel, got, annotations[i])
					}
					metav1.SetMetaDataAnnotation(&hr.ObjectMeta, countAnnotation, strconv.FormatInt(next, 10))
					return env.Client.Update(ctx, hr)
				})
				if ok {
					annotations[i] = next
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		go func() { // helm-controller writing status
			defer wg.Done()
			for k := 1; !over(); k++ {
				msg := fmt.Sprintf("release %s reconciled %d times", rel, k)
				ok := retry(&statusConflicts, "writing status of "+rel, func() error {
					hr, err := getRelease(ctx, ns, rel)
					if err != nil {
						return err
					}
					hr.Status.ObservedGeneration = hr.Generation
					hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "UpgradeSucceeded", msg)}
					hr.Status.Conditions[0].ObservedGeneration = hr.Generation
					return env.Client.Status().Update(ctx, hr)
				})
				if ok {
					statusWrites[i] = msg
				}
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var releaseConflicts, objectConflicts int
	for _, line := range strings.Split(op.logs.String(), "\n") {
		if !strings.Contains(line, "the object has been modified") {
			continue
		}
		switch {
		case strings.Contains(line, "updating HelmRelease"):
			releaseConflicts++
		case strings.Contains(line, "writing status of"):
			objectConflicts++
		}
	}
	operatorErrors := counterValue(t, "chartkind_reconcile_errors_total", map[string]string{"kind": "StormWidget"}) - errorsBefore
	t.Logf("409 Conflicts: users %d, other writer %d, helm-controller %d; operator %d writing HelmReleases, %d writing object status (reconcile errors %v)",
		userConflicts.Load(), writerConflicts.Load(), statusConflicts.Load(), releaseConflicts, objectConflicts, operatorErrors)
	if len(failures) > 0 {
		t.Fatalf("during the storm:\n%s", strings.Join(failures[:min(10, len(failures))], "\n"))
	}
	if writerConflicts.Load() == 0 || releaseConflicts == 0 {
		t.Fatalf("not a conflict storm: the other writer met %d conflicts, the operator %d writing HelmReleases", writerConflicts.Load(), releaseConflicts)
	}

	// helm-controller processes the last values, once more.
	for i, name := range names {
		rel := "stormwidget-" + name
		want := canon(map[string]any{"replicas": lastReplicas[i]})
		inSync := func(hr *helmv2.HelmRelease) error {
			if got := canon(values(hr)); got != want {
				return fmt.Errorf("values %s, want the last spec %s", got, want)
			}
			if got := hr.Annotations[countAnnotation]; got != strconv.FormatInt(annotations[i], 10) {
				return fmt.Errorf("annotation %s = %q, want %d: the other writer's update was lost", countAnnotation, got, annotations[i])
			}
			return nil
		}
		var why error
		err := testenv.Poll(context.Background(), timeout, func(ctx context.Context) error {
			hr, err := getRelease(context.Background(), ns, rel)
			if err != nil {
				return err
			}
			why = inSync(hr)
			return why
		})
		if err != nil {
			t.Fatalf("HelmRelease %s after the storm: %v", rel, why)
		}
		statusWrites[i] = "release " + rel + " caught up"
		setReleaseStatus(t, ns, rel, func(hr *helmv2.HelmRelease) {
			hr.Status.ObservedGeneration = hr.Generation
			hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "UpgradeSucceeded", statusWrites[i])}
		})
	}
	for i, name := range names {
		waitObject(t, def, ns, name, func(u *unstructured.Unstructured) error {
			if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r != lastReplicas[i] {
				return fmt.Errorf("spec.replicas %d, the user last wrote %d", r, lastReplicas[i])
			}
			og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
			if c := condition(u, "Ready"); c == nil || c["status"] != "True" || c["message"] != statusWrites[i] || og != u.GetGeneration() {
				return fmt.Errorf("Ready %v, observedGeneration %d of %d", c, og, u.GetGeneration())
			}
			return nil
		})
	}
	if err := inStep(ctxT(t), env.Client, def, ns, "stormwidget-", names); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, def.Name, n, n)
	assertNoWrites(t, def, ns, 3*time.Second, "after the storm", nil)
}

// TestReliabilityInvalidValuesOnHelmRelease: values the kind's schema refuses,
// written directly on a HelmRelease, are not pulled into the object: the
// object keeps its spec, the HelmRelease gets the object's values back, and a
// Warning event InvalidReleaseValues says why, with the API server's message.
func TestReliabilityInvalidValuesOnHelmRelease(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("badvalwidget", "BadValWidget"))
	obj := createObject(t, def, ns, "w", map[string]any{"replicas": int64(2)})
	rel := "badvalwidget-w"
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"replicas":2}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
	waitObject(t, def, ns, "w", func(u *unstructured.Unstructured) error {
		if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
			return fmt.Errorf("not in step yet")
		}
		return nil
	})
	// minimum 1, and a string where an integer belongs.
	editRelease(t, ns, rel, func(v map[string]any) { v["replicas"] = 0; v["size"] = 3 })
	waitEvent(t, ns, obj.GetUID(), mirror.EventInvalidValues, "Warning")
	evs, err := events(ctxT(t), ns, obj.GetUID())
	if err != nil {
		t.Fatal(err)
	}
	note := evs[mirror.EventInvalidValues][0].Message
	for _, want := range []string{rel, "spec.replicas", "spec.size"} {
		if !strings.Contains(note, want) {
			t.Errorf("event does not name %s: %s", want, note)
		}
	}
	t.Logf("event: %s", note)
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"replicas":2}` {
			return fmt.Errorf("values %s, want the object's restored", canon(values(hr)))
		}
		return nil
	})
	if got := canon(spec(mustGetObject(t, def, ns, "w"))); got != `{"replicas":2}` {
		t.Errorf("object spec %s after invalid values on its HelmRelease", got)
	}
}

// TestReliabilityChartSchemaDoesNotCompile: a chart whose values.schema.json
// does not compile (a $ref to nothing, a pattern that is no regular
// expression) is refused with SchemaInvalid naming the file and the JSON
// pointer, and no CRD is created; once a version was served, a broken later
// version leaves the served CRD in place and the kind served.
func TestReliabilityChartSchemaDoesNotCompile(t *testing.T) {
	startOperator(t)
	ctx := ctxT(t)
	ns := newNamespace(t)
	def, art := gadgetFromArtifacts(t, "brokengadgets", "BrokenGadget")

	art.release(gadgetChart(t, `{"type": "object", "properties": {"size": {"$ref": "#/definitions/missing"}}}`, "size: small\n"), "0.1.0")
	d := waitDefinitionReason(t, def.Name, "SchemaInvalid")
	msg := meta.FindStatusCondition(d.Status.Conditions, "Ready").Message
	if !strings.Contains(msg, "values.schema.json") || !strings.Contains(msg, "#/definitions/missing") {
		t.Errorf("SchemaInvalid message does not name the file and the pointer: %s", msg)
	}
	t.Logf("administrator sees: %s", msg)
	crdName := "brokengadgets.apps.chartkind.io"
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, &apiextensionsv1.CustomResourceDefinition{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD of a chart whose schema does not compile: %v, want none", err)
	}

	art.release(gadgetChart(t, gadgetV1, "size: small\n"), "0.2.0")
	testenv.WaitFor(t, timeout, "0.2.0 served", func(ctx context.Context) error {
		if d := waitDefinitionReason(t, def.Name, "Serving"); d.Status.ChartVersion != "0.2.0" {
			return fmt.Errorf("chart %s", d.Status.ChartVersion)
		}
		return nil
	})
	before := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, before); err != nil {
		t.Fatal(err)
	}

	art.release(gadgetChart(t, `{"type": "object", "properties": {"size": {"type": "string", "pattern": "(["}}}`, "size: small\n"), "0.3.0")
	d = waitDefinitionReason(t, def.Name, "SchemaInvalid")
	msg = meta.FindStatusCondition(d.Status.Conditions, "Ready").Message
	for _, want := range []string{"#/properties/size/pattern", "still serving", "0.2.0"} {
		if !strings.Contains(msg, want) {
			t.Errorf("SchemaInvalid message after a served version does not say %q: %s", want, msg)
		}
	}
	after := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("the served CRD changed (generation %d → %d) for a schema that does not compile", before.Generation, after.Generation)
	}
	createObject(t, d, ns, "still", map[string]any{"size": "small"})
	waitRelease(t, ns, "brokengadget-still", nil)
}

// TestReliabilityUnreachableSource: the chart cannot be downloaded because
// source-controller's artifact server does not answer (the HelmChart
// advertises an artifact at an address nobody listens on). Before anything
// was served the definition says ArtifactFailed with the address and the
// error, and no CRD exists; once served, an unreachable artifact keeps the
// served CRD, says "still serving", and objects are still mirrored.
func TestReliabilityUnreachableSource(t *testing.T) {
	startOperator(t)
	ctx := ctxT(t)
	ns := newNamespace(t)
	def, art := gadgetFromArtifacts(t, "fargadgets", "FarGadget")
	closed := "http://" + freeAddr(t) // a free port: connection refused
	_, digest := art.publish(gadgetChart(t, gadgetV1, "size: small\n"), "0.1.0")
	art.advertise("0.1.0", closed+"/helmchart/gadget-0.1.0.tgz", digest)
	d := waitDefinitionReason(t, def.Name, "ArtifactFailed")
	msg := meta.FindStatusCondition(d.Status.Conditions, "Ready").Message
	if !strings.Contains(msg, closed) || !strings.Contains(msg, "connection refused") {
		t.Errorf("ArtifactFailed message does not name the address and the error: %s", msg)
	}
	t.Logf("administrator sees: %s", msg)
	if err := env.Client.Get(ctx, types.NamespacedName{Name: "fargadgets.apps.chartkind.io"}, &apiextensionsv1.CustomResourceDefinition{}); !apierrors.IsNotFound(err) {
		t.Errorf("CRD without a readable chart: %v, want none", err)
	}

	// The artifact server is back: served.
	art.release(gadgetChart(t, gadgetV1, "size: small\n"), "0.1.0")
	served := waitDefinitionReason(t, def.Name, "Serving")
	createObject(t, served, ns, "first", map[string]any{"size": "small"})
	waitRelease(t, ns, "fargadget-first", nil)
	before := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: served.Status.CRDName}, before); err != nil {
		t.Fatal(err)
	}

	// A new version whose artifact cannot be reached.
	_, digest = art.publish(gadgetChart(t, gadgetV2, "size: small\n"), "0.2.0")
	art.advertise("0.2.0", closed+"/helmchart/gadget-0.2.0.tgz", digest)
	d = waitDefinitionReason(t, def.Name, "ArtifactFailed")
	msg = meta.FindStatusCondition(d.Status.Conditions, "Ready").Message
	if !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "still serving") || !strings.Contains(msg, "0.1.0") {
		t.Errorf("ArtifactFailed message once served: %s", msg)
	}
	if d.Status.ChartVersion != "0.1.0" {
		t.Errorf("status.chartVersion %q, want 0.1.0 still", d.Status.ChartVersion)
	}
	after := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: served.Status.CRDName}, after); err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Errorf("the CRD changed (generation %d → %d) while the source was unreachable", before.Generation, after.Generation)
	}
	createObject(t, served, ns, "second", map[string]any{"size": "large"})
	waitRelease(t, ns, "fargadget-second", nil)
}

// TestReliabilityWebhookDown: with the admission webhook down, what the
// generated CRD itself checks is still refused by the API server, with the
// CRD's own message: a value of the wrong type or out of range, a locked
// path, a name too long for its release. With failurePolicy Ignore a value
// only the webhook (Helm's schema) would catch is admitted; with Fail every
// create or spec change that passes the CRD fails naming the webhook, and the
// CRD's refusals still come first, with their own message.
func TestReliabilityWebhookDown(t *testing.T) {
	w := selfManaged(t, "chartkind-wh-rel")
	w.FailurePolicy = string(admissionregistrationv1.Ignore)
	op := startWebhookOperator(t, env.Config, env.Client, w)
	ns := newNamespace(t)
	d := whDefinition("whrel", "WhRel", strings.Replace(portsSchema, `"replicas"`, `"workers": {"type": "integer", "maximum": 8}, "replicas"`, 1))
	d.Spec.Values = &v1alpha1.AdministratorValues{Locked: []string{"replicas"}}
	def := createDefinition(t, d)
	waitChecked(t, env.Client, def, ns, map[string]any{"port": int64(2048)})
	op.stop()

	ctx := ctxT(t)
	long := strings.Repeat("n", 53-len("whrel-")+1)
	crdRefusals := func(policy string) {
		t.Helper()
		for _, tc := range []struct {
			what, name string
			spec       map[string]any
			want       string
		}{
			{"wrong type", "typed", map[string]any{"port": "http"}, "spec.port"},
			{"out of range", "ranged", map[string]any{"workers": int64(9)}, "spec.workers"},
			{"locked path", "locked", map[string]any{"replicas": int64(2)}, "spec.replicas is locked: it is set by the administrator (ApplicationDefinition whrel)"},
			{"long name", long, map[string]any{"port": int64(1025)}, "WhRel names may have at most 47 characters"},
		} {
			err := env.Client.Create(ctx, newObject(def, ns, tc.name, tc.spec))
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "webhook") {
				t.Errorf("failurePolicy %s, webhook down, %s: %v; want the CRD's Invalid error with %q", policy, tc.what, err, tc.want)
			} else if policy == "Fail" {
				t.Logf("%s, webhook down: %v", tc.what, err)
			}
		}
	}
	// Ignore: the API server calls nothing that answers, and goes on.
	testenv.WaitFor(t, timeout, "a value only the webhook checks admitted", func(ctx context.Context) error {
		return dryRunCreate(ctx, env.Client, def, ns, "both", map[string]any{"port": int64(2048)})
	})
	crdRefusals("Ignore")

	// Fail, as the administrator may choose (the default): set on the
	// configuration while the operator is down.
	testenv.WaitFor(t, timeout, "failurePolicy Fail", func(ctx context.Context) error {
		cfg, _, err := getWebhookConfiguration(ctx, env.Client, w.ConfigurationName)
		if err != nil {
			return err
		}
		for i := range cfg.Webhooks {
			cfg.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Fail)
		}
		return env.Client.Update(ctx, cfg)
	})
	testenv.WaitFor(t, timeout, "a valid create refused naming the webhook", func(ctx context.Context) error {
		err := dryRunCreate(ctx, env.Client, def, ns, "valid", map[string]any{"port": int64(1025)})
		if err == nil || !strings.Contains(err.Error(), `failed calling webhook "validate.chartkind.io"`) {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	crdRefusals("Fail")

	// Back up: creates work again (and the definition can be deleted).
	op.start()
	testenv.WaitFor(t, timeout, "creates to work again", func(ctx context.Context) error {
		return dryRunCreate(ctx, env.Client, def, ns, "valid", map[string]any{"port": int64(1025)})
	})
}

// gadgetFromArtifacts creates a definition of the gadget chart whose source
// is a HelmRepository in a namespace of its own, waits for the HelmChart
// chartkind makes for it, and returns the artifact server the test plays
// source-controller with.
func gadgetFromArtifacts(t *testing.T, name, kind string) (*v1alpha1.ApplicationDefinition, *artifactServer) {
	t.Helper()
	ctx := ctxT(t)
	srcNS := newNamespace(t)
	if err := env.Client.Create(ctx, &sourcev1.HelmRepository{ObjectMeta: metav1.ObjectMeta{Namespace: srcNS, Name: "gadgets"},
		Spec: sourcev1.HelmRepositorySpec{URL: "http://127.0.0.1:1/unused", Interval: metav1.Duration{Duration: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	def := gadgetDefinition(name, kind, srcNS)
	if err := env.Client.Create(ctx, def); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	art := &artifactServer{t: t, repo: testenv.ServeChartRepo(t, ""), ns: srcNS, name: "chartkind-" + name}
	testenv.WaitFor(t, timeout, "HelmChart", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Namespace: srcNS, Name: art.name}, &sourcev1.HelmChart{})
	})
	return def, art
}
