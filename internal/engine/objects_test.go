package engine

import (
	"runtime"
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
	raw, err := decode(c.dict, c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
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

// benchObject is an application object as the bench's objects look once
// Ready: a small spec and a status with conditions and access information.
const benchObject = `{"apiVersion":"apps.chartkind.io/v1alpha1","kind":"Kind0","metadata":{"name":"o123","namespace":"bench","uid":"3f2c1f7e-7d0e-4a55-9b1e-2f1f5b6c7d8e","resourceVersion":"123456","generation":2,"creationTimestamp":"2026-12-01T16:00:00Z","labels":{"sharding.chartkind.io/key":"a"}},
"spec":{"replicas":2,"size":"1Gi","mode":"a"},
"status":{"observedGeneration":2,"valuesDigest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","release":{"name":"kind0-o123","namespace":"bench"},"version":"1.0.0","appVersion":"1.0.0",
"conditions":[{"type":"Healthy","status":"True","reason":"Healthy","message":"all 1 objects of the release are Current","lastTransitionTime":"2026-12-01T16:00:00Z","observedGeneration":0},
{"type":"Ready","status":"True","reason":"UpgradeSucceeded","message":"Helm upgrade succeeded for release bench/kind0-o123.v2 with chart bench@1.0.0","lastTransitionTime":"2026-12-01T16:00:00Z","observedGeneration":0},
{"type":"Released","status":"True","reason":"UpgradeSucceeded","message":"Helm upgrade succeeded for release bench/kind0-o123.v2 with chart bench@1.0.0","lastTransitionTime":"2026-12-01T16:00:00Z","observedGeneration":0}],
"access":{"services":[{"name":"kind0-o123","type":"ClusterIP","clusterIP":"None","dns":"kind0-o123.bench.svc","ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":"http"}]}],"notes":"Thank you for installing bench. Your release is named kind0-o123. To connect: kubectl port-forward svc/kind0-o123 8080:80"},
"endpoint":"kind0-o123.bench.svc:80"}}`

// BenchmarkCachedObject reports the heap one cached application object
// costs (B/object), as the engine keeps it and, as baselines in the same
// run, as a plain informer would (a decoded Unstructured) and as the
// metadata-only informer before it did (which made every reconcile GET the
// object), and the time a reconcile takes to decode one from the cache.
//
// Each of the n objects is a sibling of benchObject (its own name, UID,
// digest and times), as the objects of one kind are: the cache compresses
// each against the first.
func BenchmarkCachedObject(b *testing.B) {
	const n = 2000
	objects := make([][]byte, n)
	for i := range objects {
		objects[i] = []byte(sibling(benchObject, i, "o123"))
	}
	next := 0
	object := func() *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(objects[next%n]); err != nil {
			b.Fatal(err)
		}
		next++
		return u
	}
	perObject := func(name string, make func() any) {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				keep := make2(n, make)
				runtime.KeepAlive(keep)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			keep := make2(n, make)
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(keep)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/object")
		})
	}
	perObject("baseline=unstructured", func() any { return object() })
	perObject("baseline=metadata-only", func() any {
		u := object()
		m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(),
			UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(), Generation: u.GetGeneration()}}
		return m
	})
	transform := compactObject(nil)
	// The cache before dictionaries: the same entry, its JSON on its own.
	perObject("baseline=cached-alone", func() any {
		o, err := transform(object())
		if err != nil {
			b.Fatal(err)
		}
		c := o.(*CachedObject)
		raw, err := decode(c.dict, c.Raw)
		if err != nil {
			b.Fatal(err)
		}
		c.Raw, c.dict = encodeAlone(raw), nil
		return c
	})
	perObject("cached", func() any {
		o, err := transform(object())
		if err != nil {
			b.Fatal(err)
		}
		return o
	})
	b.Run("decode-from-cache", func(b *testing.B) {
		def := &v1alpha1.ApplicationDefinition{ObjectMeta: metav1.ObjectMeta{Name: "k"},
			Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Kind0", Group: "apps.chartkind.io"}}}
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		o, _ := transform(object())
		_ = store.Add(o)
		e := &Engine{kinds: map[string]*kindState{"k": {def: def, gvr: GVR(def), store: store, synced: true}}}
		c := o.(*CachedObject)
		key := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
		b.ReportAllocs()
		for range b.N {
			if u, ok, err := e.CachedObject(def, key); u == nil || !ok || err != nil {
				b.Fatal(u, ok, err)
			}
		}
	})
}

func make2(n int, f func() any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = f()
	}
	return out
}
