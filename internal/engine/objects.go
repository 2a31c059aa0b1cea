package engine

import (
	"encoding/json"
	"fmt"

	"github.com/klauspost/compress/s2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// lastApplied is kubectl's copy of the whole object it last applied: as big
// as the spec, and read by no chartkind code.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// CachedObject is what the engine's watch cache keeps of one application
// object: the few metadata fields its event handlers read, and the object
// itself as JSON. Every reconcile starts from the object, and reading it
// from the cache instead of the API server saves a GET per reconcile (a
// round trip, and the API server's and etcd's work for it). JSON, not a
// decoded Unstructured, because a tree of maps costs several times its
// JSON's size in heap, for every object of every kind; a reconcile decodes
// only the object it works on.
type CachedObject struct {
	metav1.PartialObjectMetadata
	// Raw is the object as the API server sent it, less managedFields and
	// kubectl's last-applied-configuration, as JSON compressed with S2
	// against dict, a sample of the objects of its kind (dict.go; on its own
	// when dict is nil). Neither is modified once stored, so copies share
	// them.
	Raw  []byte
	dict *s2.Dict
}

// DeepCopyObject implements runtime.Object.
func (c *CachedObject) DeepCopyObject() runtime.Object {
	out := &CachedObject{Raw: c.Raw, dict: c.dict}
	c.PartialObjectMetadata.DeepCopyInto(&out.PartialObjectMetadata)
	return out
}

// compactObject is the transform of a kind's informer: the object becomes
// a CachedObject before it is stored and before any handler sees it. Each
// informer (each kind) compresses against a sample of its own objects.
func compactObject(watched []string) cache.TransformFunc {
	trim := trimObjectMeta(watched)
	var dict dictionary
	return func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		u.SetManagedFields(nil)
		if a := u.GetAnnotations(); a != nil {
			if _, ok := a[lastApplied]; ok {
				delete(a, lastApplied)
				u.SetAnnotations(a)
			}
		}
		raw, err := json.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("caching %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		meta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}}
		meta.ObjectMeta = metav1.ObjectMeta{
			Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
			Generation: u.GetGeneration(), DeletionTimestamp: u.GetDeletionTimestamp(), Annotations: u.GetAnnotations(),
		}
		m, err := trim(meta)
		if err != nil {
			return nil, err
		}
		c := &CachedObject{PartialObjectMetadata: *m.(*metav1.PartialObjectMetadata)}
		c.Raw, c.dict = dict.encode(raw)
		return c, nil
	}
}

// CachedObject returns the object key of the kind def serves as the
// engine's watch cache holds it, decoded afresh (the caller may change it).
// ok is false when the cache cannot answer: the kind is not served, or not
// for this definition's resource, or its watch has not synced yet; the
// caller then reads the API server. A nil object with ok true means the
// cache has no such object, which may also mean it has not seen a very
// recent create: callers that act on an absence confirm it on the API
// server.
func (e *Engine) CachedObject(def *v1alpha1.ApplicationDefinition, key types.NamespacedName) (obj *unstructured.Unstructured, ok bool, err error) {
	e.mu.RLock()
	k := e.kinds[def.Name]
	served := k != nil && k.synced && k.store != nil && k.gvr == GVR(def)
	var store cache.Store
	if served {
		store = k.store
	}
	e.mu.RUnlock()
	if !served {
		return nil, false, nil
	}
	item, exists, err := store.GetByKey(key.Namespace + "/" + key.Name)
	if err != nil || !exists {
		return nil, err == nil, err
	}
	c, isCached := item.(*CachedObject)
	if !isCached {
		return nil, false, nil
	}
	raw, err := decode(c.dict, c.Raw)
	if err != nil {
		return nil, false, fmt.Errorf("decompressing cached %s %s: %w", def.Name, key, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, false, fmt.Errorf("decoding cached %s %s: %w", def.Name, key, err)
	}
	return u, true, nil
}
