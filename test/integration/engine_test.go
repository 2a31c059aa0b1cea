package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/engine"
	"github.com/chartkind/chartkind/internal/testenv"
)

// recordingHandler records the keys the engine hands it.
type recordingHandler struct {
	mu   sync.Mutex
	seen map[string]int
	fail map[string]int // fail this many times first
}

func (h *recordingHandler) Reconcile(_ context.Context, def *v1alpha1.ApplicationDefinition, nn types.NamespacedName) (time.Duration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := def.Name + "/" + nn.String()
	h.seen[k]++
	if h.fail[k] > 0 {
		h.fail[k]--
		return 0, fmt.Errorf("injected failure")
	}
	return 0, nil
}

func (h *recordingHandler) ReleaseOwner(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) (string, string, bool) {
	if d := hr.Labels["test/definition"]; d != "" {
		for _, s := range served {
			if s.Name == d {
				return d, hr.Labels["test/name"], true
			}
		}
	}
	return "", "", false
}

func (h *recordingHandler) count(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[k]
}

func engineCRD(plural, kind string) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".engine.test"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "engine.test",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: plural[:len(plural)-1]},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}},
			}},
		},
	}
}

// The engine serves kinds at runtime: a kind whose resource is not served yet
// fails to start and is started by a later Serve; Serve is idempotent; a
// changed definition restarts the watch; a stopped kind gets no more events;
// failed reconciles are retried; HelmRelease events are mapped to objects.
func TestEngineServesKindsAtRuntime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := crcache.New(env.Config, crcache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHandler{seen: map[string]int{}, fail: map[string]int{}}
	e := engine.New(dyn, c, h, engine.Options{Workers: 2, SyncTimeout: 2 * time.Second})
	engineDone := make(chan error, 1)
	go func() { engineDone <- e.Start(ctx) }()

	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gizmo"},
		Spec:       v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Gizmo", Group: "engine.test"}},
	}
	// No CRD yet: the watch cannot sync, Serve fails and records nothing.
	if err := e.Serve(ctx, def); err == nil {
		t.Fatal("Serve succeeded for a resource the API server does not serve")
	}
	if e.Serving("gizmo") {
		t.Fatal("a failed Serve left the kind marked as served")
	}
	if err := env.Client.Create(ctx, engineCRD("gizmos", "Gizmo")); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	testenv.WaitFor(t, timeout, "Serve after the CRD exists", func(ctx context.Context) error { return e.Serve(ctx, def) })
	if !e.Serving("gizmo") {
		t.Fatal("not serving")
	}
	if err := e.Serve(ctx, def); err != nil {
		t.Fatalf("idempotent Serve: %v", err)
	}

	// Objects are handed to the handler; a failing reconcile is retried.
	h.mu.Lock()
	h.fail["gizmo/"+ns+"/g1"] = 2
	h.mu.Unlock()
	obj := newObjectGVK("engine.test/v1alpha1", "Gizmo", ns, "g1")
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, timeout, "g1 reconciled after failures", func(context.Context) error {
		if n := h.count("gizmo/" + ns + "/g1"); n < 3 {
			return fmt.Errorf("reconciled %d times", n)
		}
		return nil
	})

	// HelmRelease events map to the object named by the handler.
	hr := &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr-g2", Labels: map[string]string{"test/definition": "gizmo", "test/name": "g2"}},
		Spec:       helmv2.HelmReleaseSpec{Interval: metav1.Duration{Duration: time.Minute}, ChartRef: &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "x"}},
	}
	if err := env.Client.Create(ctx, hr); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, timeout, "HelmRelease mapped to g2", func(context.Context) error {
		if h.count("gizmo/"+ns+"/g2") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	// A changed definition restarts the watch: existing objects are listed again.
	before := h.count("gizmo/" + ns + "/g1")
	changed := def.DeepCopy()
	changed.Spec.Release.Prefix = "gz-"
	if err := e.Serve(ctx, changed); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, timeout, "g1 reconciled again after the restart", func(context.Context) error {
		if h.count("gizmo/"+ns+"/g1") <= before {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	// A stopped kind gets no more events.
	e.Stop("gizmo")
	if e.Serving("gizmo") {
		t.Fatal("still serving after Stop")
	}
	if err := env.Client.Create(ctx, newObjectGVK("engine.test/v1alpha1", "Gizmo", ns, "g3")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(short)
	if n := h.count("gizmo/" + ns + "/g3"); n != 0 {
		t.Errorf("stopped kind reconciled %d times", n)
	}
	cancel()
	select {
	case <-engineDone:
	case <-time.After(10 * time.Second):
		t.Error("engine did not stop")
	}
}
