package engine

import (
	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// What the operator's caches keep is trimmed, on the way in, to what
// chartkind reads: with 100,000 objects, every byte kept per object is
// 100 KB of heap, and the heap decides the operator's RSS. The functions
// here are informer transforms (cache.TransformFunc): they get each object
// once, before it is stored and before any event handler sees it.

// TrimRelease drops from a cached HelmRelease what chartkind never reads:
// managedFields, and the history beyond its first and its latest
// snapshot (the mirror reads the first, release insight the latest).
// Nothing chartkind writes comes from a dropped field: a HelmRelease is
// updated from its cached copy, but an update with no managedFields keeps
// the stored ones, and its status (the history) is a subresource an update
// ignores.
func TrimRelease(obj any) (any, error) {
	hr, ok := obj.(*helmv2.HelmRelease)
	if !ok {
		return obj, nil
	}
	hr.ManagedFields = nil
	if h := hr.Status.History; len(h) > 2 {
		latest := 0
		for i, s := range h {
			if s != nil && (h[latest] == nil || s.Version > h[latest].Version) {
				latest = i
			}
		}
		kept := helmv2.Snapshots{h[0]}
		if latest != 0 {
			kept = append(kept, h[latest])
		}
		hr.Status.History = kept
	}
	return hr, nil
}

// TrimCRD keeps only the metadata of a cached CustomResourceDefinition:
// the definition controller watches CRDs only to map one to the
// definitions that name it (by name and labels) and reads the CRDs it
// works on from the API server. A cluster's CRDs, other operators' among
// them, can each hold hundreds of KB of schema.
func TrimCRD(obj any) (any, error) {
	c, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return obj, nil
	}
	return &apiextensionsv1.CustomResourceDefinition{TypeMeta: c.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: c.Name, UID: c.UID, ResourceVersion: c.ResourceVersion, Generation: c.Generation,
		DeletionTimestamp: c.DeletionTimestamp, Labels: c.Labels, Finalizers: c.Finalizers,
	}}, nil
}

// StripManagedFields drops managedFields, which no chartkind code reads,
// from any cached object.
func StripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// trimObjectMeta trims the metadata a kind's cache keeps next to each
// object's JSON (compactObject): the engine's handlers read the identity,
// generation, deletion and the watched annotations of an object; the rest
// (labels, owners, finalizers, managedFields, other annotations) is only
// in the JSON, for the reconcile.
func trimObjectMeta(watched []string) cache.TransformFunc {
	return func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil
		}
		out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp,
		}}
		for _, k := range watched {
			if v, ok := m.Annotations[k]; ok {
				if out.Annotations == nil {
					out.Annotations = map[string]string{}
				}
				out.Annotations[k] = v
			}
		}
		return out, nil
	}
}
