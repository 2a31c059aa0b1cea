package engine

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func cachedTestObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.test/v1alpha1", "kind": "Gadget",
		"metadata": map[string]any{
			"name": "g", "namespace": "ns", "uid": "u1", "resourceVersion": "7", "generation": int64(3),
			"labels": map[string]any{"sharding.chartkind.io/key": "a"},
			"annotations": map[string]any{
				"apps.chartkind.io/depends-on": "db", lastApplied: `{"spec":{"size":2}}`, "watched": "1",
			},
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
		},
		"spec":   map[string]any{"size": int64(2), "tags": []any{"x"}},
		"status": map[string]any{"valuesDigest": "d"},
	}}
	return u
}

// The cache keeps what a reconcile reads of an object (all of it but
// managedFields and kubectl's copy), and the handlers' metadata.
func TestCompactObject(t *testing.T) {
	out, err := compactObject([]string{"watched"})(cachedTestObject())
	if err != nil {
		t.Fatal(err)
	}
	c, ok := out.(*CachedObject)
	if !ok {
		t.Fatalf("transform gave %T", out)
	}
	if c.Name != "g" || c.Namespace != "ns" || c.UID != "u1" || c.ResourceVersion != "7" || c.Generation != 3 {
		t.Errorf("identity or generation lost: %+v", c.ObjectMeta)
	}
	if len(c.Annotations) != 1 || c.Annotations["watched"] != "1" || c.Labels != nil {
		t.Errorf("handler metadata keeps %v %v, want the watched annotation only", c.Annotations, c.Labels)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(c.Raw); err != nil {
		t.Fatal(err)
	}
	if u.GetManagedFields() != nil {
		t.Error("managedFields kept")
	}
	if _, ok := u.GetAnnotations()[lastApplied]; ok {
		t.Error("kubectl's last-applied-configuration kept")
	}
	if u.GetAnnotations()["apps.chartkind.io/depends-on"] != "db" || u.GetLabels()["sharding.chartkind.io/key"] != "a" {
		t.Errorf("annotations or labels the mirror reads lost: %v %v", u.GetAnnotations(), u.GetLabels())
	}
	if size, _, _ := unstructured.NestedInt64(u.Object, "spec", "size"); size != 2 {
		t.Errorf("spec.size %v, want the integer 2 as a live read gives it", u.Object["spec"])
	}
	if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d != "d" {
		t.Error("status lost")
	}
	cp := c.DeepCopyObject().(*CachedObject)
	cp.Annotations["watched"] = "2"
	if c.Annotations["watched"] != "1" {
		t.Error("DeepCopyObject shares the metadata")
	}
}

// CachedObject answers from the store of a synced kind only, decodes a
// fresh copy each time, and says when the cache cannot answer.
func TestEngineCachedObject(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: "gadget"},
		Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Gadget", Group: "apps.test"}}}
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	obj, _ := compactObject(nil)(cachedTestObject())
	if err := store.Add(obj); err != nil {
		t.Fatal(err)
	}
	e := &Engine{kinds: map[string]*kindState{"gadget": {def: def, gvr: GVR(def), store: store}}}
	key := types.NamespacedName{Namespace: "ns", Name: "g"}
	if _, ok, _ := e.CachedObject(def, key); ok {
		t.Error("answered before the kind's watch synced")
	}
	e.kinds["gadget"].synced = true
	u, ok, err := e.CachedObject(def, key)
	if err != nil || !ok || u == nil || u.GetResourceVersion() != "7" {
		t.Fatalf("got %v %v %v", u, ok, err)
	}
	u.Object["spec"] = nil
	again, _, _ := e.CachedObject(def, key)
	if again.Object["spec"] == nil {
		t.Error("a caller's change reached the cache")
	}
	if u, ok, err := e.CachedObject(def, types.NamespacedName{Namespace: "ns", Name: "none"}); u != nil || !ok || err != nil {
		t.Errorf("absent object: %v %v %v, want nil, true, nil", u, ok, err)
	}
	other := def.DeepCopy()
	other.Spec.Application.Group = "other.test"
	if _, ok, _ := e.CachedObject(other, key); ok {
		t.Error("answered for a definition whose resource the watch is not of")
	}
	if _, ok, _ := e.CachedObject(&v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: "nope"}}, key); ok {
		t.Error("answered for a kind not served")
	}
}
