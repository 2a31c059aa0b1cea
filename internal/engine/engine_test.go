package engine

import (
	"context"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestGVRAndSpecHash(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "pg"},
		Spec:       v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Postgres"}},
	}
	if g := GVR(def); g.Group != "apps.chartkind.io" || g.Version != "v1alpha1" || g.Resource != "postgreses" {
		t.Errorf("GVR = %v", g)
	}
	h1, err := specHash(def)
	if err != nil {
		t.Fatal(err)
	}
	same := def.DeepCopy()
	same.ResourceVersion, same.Status.CRDName = "42", "x" // not part of the spec
	if h2, _ := specHash(same); h2 != h1 {
		t.Error("hash depends on more than the spec")
	}
	changed := def.DeepCopy()
	changed.Spec.Release.Prefix = "db-"
	if h3, _ := specHash(changed); h3 == h1 {
		t.Error("hash ignores a spec change")
	}
}

// requeueHandler asks for each reconcile to run again after its after.
type requeueHandler struct{ after time.Duration }

func (h requeueHandler) Reconcile(context.Context, *v1alpha1.ApplicationDefinition, types.NamespacedName) (time.Duration, error) {
	return h.after, nil
}

func (requeueHandler) ReleaseOwner(*helmv2.HelmRelease, []*v1alpha1.ApplicationDefinition) (string, string, bool) {
	return "", "", false
}

// A reconcile that asks to run again later waits in later, not in the work
// queue, and comes back to the queue once due.
func TestProcessNextRequeuesLater(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: "gadget"},
		Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Gadget", Group: "apps.test"}}}
	e := New(nil, nil, requeueHandler{after: time.Minute}, Options{})
	defer e.queue.ShutDown()
	e.kinds[def.Name] = &kindState{def: def, gvr: GVR(def)}
	key := Key{Definition: def.Name, GVR: GVR(def), Namespace: "ns", Name: "g"}
	e.Enqueue(key)
	if !e.processNext(context.Background()) {
		t.Fatal("the queue shut down")
	}
	if n := e.queue.Len(); n != 0 {
		t.Errorf("%d keys in the queue right after the reconcile, want 0", n)
	}
	if n := e.later.Waiting(); n != 1 {
		t.Fatalf("%d keys waiting, want 1", n)
	}
	e.later.release(time.Now().Add(2 * time.Minute))
	if n := e.queue.Len(); n != 1 {
		t.Fatalf("%d keys in the queue once due, want 1", n)
	}
	if got, _ := e.queue.Get(); got != key {
		t.Errorf("queued %v, want %v", got, key)
	}
}
