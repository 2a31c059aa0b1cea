// Package integration runs chartkind's operator in-process against a real
// kube-apiserver and etcd (internal/testenv) and checks each behaviour of the
// definition controller, the engine and the mirror end to end. There is no
// helm-controller here: tests write HelmRelease status themselves, as
// helm-controller would, through the status subresource.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	e, stop, err := testenv.StartMain(testenv.Options{AddToScheme: []func(*runtime.Scheme) error{v1alpha1.AddToScheme}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	if code != 0 {
		env.DumpLogs(os.Stderr)
	}
	stop()
	os.Exit(code)
}

const (
	timeout = 30 * time.Second
	short   = 3 * time.Second
)

// runningOperator is the test's operator, started in-process. stop ends it
// and waits; restart starts a new one (stopping the current one first).
type runningOperator struct {
	t       *testing.T
	logs    *testenv.LogBuffer
	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan error
	started int
	// requests, when set, records the write requests of every operator started.
	requests *requestLog
}

// startOperator starts an operator for the test and stops it when the test
// ends. Call it before creating definitions, so that their cleanup (which needs
// the operator to remove finalizers) runs before the operator stops.
func startOperator(t *testing.T) *runningOperator {
	t.Helper()
	return newRunningOperator(t, nil)
}

// startRecordingOperator is startOperator with every write request of the
// operator (and of each restarted one) recorded in the returned log.
func startRecordingOperator(t *testing.T) (*runningOperator, *requestLog) {
	t.Helper()
	l := &requestLog{}
	return newRunningOperator(t, l), l
}

func newRunningOperator(t *testing.T, requests *requestLog) *runningOperator {
	t.Helper()
	r := &runningOperator{t: t, logs: &testenv.LogBuffer{}, requests: requests}
	r.restart()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("operator log:\n%s", r.logs.String())
		}
	})
	return r
}

func (r *runningOperator) restart() {
	r.t.Helper()
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
	n := r.started
	log := r.logs.Logger(fmt.Sprintf("[op%d] ", n), 1)
	cfg := env.Config
	if r.requests != nil {
		cfg = rest.CopyConfig(env.Config)
		cfg.Wrap(r.requests.wrap)
	}
	op, err := operator.New(cfg, operator.Options{
		ChartsDir:               filepath.Join(env.RootDir, "examples", "charts"),
		MetricsBindAddress:      "0",
		MaxConcurrentReconciles: 4,
		Logger:                  log,
	})
	if err != nil {
		r.t.Fatalf("operator.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Start(ctx) }()
	r.cancel, r.done = cancel, done
}

func (r *runningOperator) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("operator stopped with error: %v", err)
		}
	case <-time.After(30 * time.Second):
		r.t.Errorf("operator did not stop within 30s")
	}
	r.cancel, r.done = nil, nil
}

// requestLog records the write requests (any method but GET, HEAD and
// OPTIONS: creates, updates, patches, server-side applies, deletes) an
// operator sends to the API server, whether they change anything or not: an
// apply that changes nothing leaves every resourceVersion as it was but is
// still a request the API server serves.
type requestLog struct {
	mu     sync.Mutex
	writes []string
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return rt.RoundTrip(req)
		}
		resp, err := rt.RoundTrip(req)
		status := "error: " + fmt.Sprint(err)
		if err == nil {
			status = resp.Status
		}
		l.mu.Lock()
		l.writes = append(l.writes, fmt.Sprintf("%s %s (%s)", req.Method, req.URL.Path, status))
		l.mu.Unlock()
		return resp, err
	})
}

// take returns the writes recorded since the last take.
func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.writes
	l.writes = nil
	return w
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace for the test (envtest cannot delete namespaces).
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

const widgetSchema = `{
  "type": "object",
  "properties": {
    "replicas": {"type": "integer", "minimum": 1},
    "size": {"type": "string"},
    "extra": {"type": "string"},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}}
  }
}`

// widgetDefinition is a definition with an inline schema, for kind.
func widgetDefinition(name, kind string) *v1alpha1.ApplicationDefinition {
	retries := 3
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind},
			Schema:      &apiextensionsv1.JSON{Raw: []byte(widgetSchema)},
			Release: v1alpha1.ReleaseSpec{
				Labels: map[string]string{"team": "platform"},
				Chart: &v1alpha1.ChartTemplate{
					Name:    "widget",
					Version: "1.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{
						Kind: "HelmRepository", Name: "charts", Namespace: "flux-system",
					},
				},
				Interval: metav1.Duration{Duration: 5 * time.Minute},
				Install:  &helmv2.Install{Remediation: &helmv2.InstallRemediation{Retries: retries}},
			},
		},
	}
}

// createDefinition creates def, deletes it when the test ends, and waits until
// its kind is served.
func createDefinition(t *testing.T, def *v1alpha1.ApplicationDefinition) *v1alpha1.ApplicationDefinition {
	t.Helper()
	if err := env.Client.Create(context.Background(), def); err != nil {
		t.Fatalf("creating definition %s: %v", def.Name, err)
	}
	t.Cleanup(func() { deleteDefinition(t, def.Name) })
	return waitDefinitionReason(t, def.Name, "Serving")
}

func deleteDefinition(t *testing.T, name string) {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Delete(context.Background(), def); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting definition %s: %v", name, err)
		return
	}
	// The operator removes its finalizer once the kind is stopped.
	env.WaitForDeleted(t, def, timeout)
}

// waitDefinitionReason waits for the definition's Ready reason.
func waitDefinitionReason(t *testing.T, name, reason string) *v1alpha1.ApplicationDefinition {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{}
	testenv.WaitFor(t, timeout, "definition "+name+" Ready reason "+reason, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, def); err != nil {
			return err
		}
		c := meta.FindStatusCondition(def.Status.Conditions, "Ready")
		if c == nil {
			return fmt.Errorf("no Ready condition")
		}
		if c.Reason != reason || c.ObservedGeneration != def.Generation {
			return fmt.Errorf("Ready=%s reason %s (gen %d/%d): %s", c.Status, c.Reason, c.ObservedGeneration, def.Generation, c.Message)
		}
		return nil
	})
	return def
}

// newObject builds an application object of def's kind.
func newObject(def *v1alpha1.ApplicationDefinition, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(mirror.GVK(def))
	u.SetNamespace(ns)
	u.SetName(name)
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func newObjectGVK(apiVersion, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func createObject(t *testing.T, def *v1alpha1.ApplicationDefinition, ns, name string, spec map[string]any) *unstructured.Unstructured {
	t.Helper()
	u := newObject(def, ns, name, spec)
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatalf("creating %s %s/%s: %v", u.GetKind(), ns, name, err)
	}
	return u
}

func getObject(ctx context.Context, def *v1alpha1.ApplicationDefinition, ns, name string) (*unstructured.Unstructured, error) {
	u := newObject(def, ns, name, nil)
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u)
	return u, err
}

func mustGetObject(t *testing.T, def *v1alpha1.ApplicationDefinition, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := getObject(context.Background(), def, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func getRelease(ctx context.Context, ns, name string) (*helmv2.HelmRelease, error) {
	hr := &helmv2.HelmRelease{}
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, hr)
	return hr, err
}

// waitRelease waits until the HelmRelease exists and check passes.
func waitRelease(t *testing.T, ns, name string, check func(hr *helmv2.HelmRelease) error) *helmv2.HelmRelease {
	t.Helper()
	var hr *helmv2.HelmRelease
	testenv.WaitFor(t, timeout, "HelmRelease "+ns+"/"+name, func(ctx context.Context) error {
		var err error
		hr, err = getRelease(ctx, ns, name)
		if err != nil {
			return err
		}
		if check != nil {
			return check(hr)
		}
		return nil
	})
	return hr
}

// waitObject waits until the object exists and check passes.
func waitObject(t *testing.T, def *v1alpha1.ApplicationDefinition, ns, name string, check func(u *unstructured.Unstructured) error) *unstructured.Unstructured {
	t.Helper()
	var u *unstructured.Unstructured
	testenv.WaitFor(t, timeout, def.Spec.Application.Kind+" "+ns+"/"+name, func(ctx context.Context) error {
		var err error
		u, err = getObject(ctx, def, ns, name)
		if err != nil {
			return err
		}
		if check != nil {
			return check(u)
		}
		return nil
	})
	return u
}

func waitGone(t *testing.T, what string, get func(ctx context.Context) error) {
	t.Helper()
	testenv.WaitFor(t, timeout, what+" to be deleted", func(ctx context.Context) error {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still exists")
	})
}

func values(hr *helmv2.HelmRelease) map[string]any {
	if hr.Spec.Values == nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(hr.Spec.Values.Raw, &m)
	return m
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	var g any
	_ = json.Unmarshal(b, &g)
	out, _ := json.Marshal(g)
	return string(out)
}

func spec(u *unstructured.Unstructured) map[string]any {
	m, _ := u.Object["spec"].(map[string]any)
	return m
}

func condition(u *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// setReleaseStatus writes hr's status as helm-controller would.
func setReleaseStatus(t *testing.T, ns, name string, mutate func(hr *helmv2.HelmRelease)) {
	t.Helper()
	testenv.WaitFor(t, timeout, "writing HelmRelease status", func(ctx context.Context) error {
		hr, err := getRelease(ctx, ns, name)
		if err != nil {
			return err
		}
		mutate(hr)
		return env.Client.Status().Update(ctx, hr)
	})
}

func readyCondition(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: "Ready", Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

// events lists the events about the object with uid, by reason.
func events(ctx context.Context, ns string, uid types.UID) (map[string][]corev1.Event, error) {
	var list corev1.EventList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	out := map[string][]corev1.Event{}
	for _, e := range list.Items {
		if e.InvolvedObject.UID == uid {
			out[e.Reason] = append(out[e.Reason], e)
		}
	}
	return out, nil
}

func waitEvent(t *testing.T, ns string, uid types.UID, reason, typ string) {
	t.Helper()
	testenv.WaitFor(t, timeout, "event "+reason, func(ctx context.Context) error {
		evs, err := events(ctx, ns, uid)
		if err != nil {
			return err
		}
		for _, e := range evs[reason] {
			if e.Type == typ {
				return nil
			}
		}
		reasons := make([]string, 0, len(evs))
		for r := range evs {
			reasons = append(reasons, r)
		}
		return fmt.Errorf("no %s event %s; have %s", typ, reason, strings.Join(reasons, ","))
	})
}

// widgetRelease is a HelmRelease of the widget chart that chartkind did not
// create, as a dashboard or an older integration would write it.
func widgetRelease(ns, name, values string) *helmv2.HelmRelease {
	return &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: helmv2.HelmReleaseSpec{
			Interval: metav1.Duration{Duration: time.Minute},
			Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
				Chart: "widget", SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}}},
			Values: &apiextensionsv1.JSON{Raw: []byte(values)},
		},
	}
}
