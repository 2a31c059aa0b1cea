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

// TrimRelease drops from a cached HelmRelease what chartkind never reads,
// in its status only: half of what a HelmRelease helm-controller has
// installed and upgraded keeps in the heap is its status (history
// snapshots with digests and timestamps, the last attempt's revision,
// checksums and digests), and chartkind reads a few fields of it.
//
// Kept: everything but managedFields outside the status, since a
// HelmRelease is updated from its cached copy (an update with no
// managedFields keeps the stored ones; any other field left out would be
// removed: a finalizer, a label, a value); and of the status, what the
// mirror and release insight read: observedGeneration, the conditions,
// storageNamespace, the inventory, the failure counts,
// lastHandledReconcileAt, and the first (newest) and the latest snapshot of
// the history with their name, version, status, chart version and app
// version. The status is a subresource an update ignores, so nothing
// dropped from it is ever written.
//
// Strings that repeat across releases (namespaces, label and annotation
// keys, kinds, condition types and reasons, chart names) are shared.
func TrimRelease(obj any) (any, error) {
	hr, ok := obj.(*helmv2.HelmRelease)
	if !ok {
		return obj, nil
	}
	hr.ManagedFields = nil
	internMeta(&hr.TypeMeta, &hr.ObjectMeta)
	if c := hr.Spec.Chart; c != nil {
		c.Spec.Chart, c.Spec.Version = intern(c.Spec.Chart), intern(c.Spec.Version)
		c.Spec.SourceRef.Kind, c.Spec.SourceRef.Name = intern(c.Spec.SourceRef.Kind), intern(c.Spec.SourceRef.Name)
		c.Spec.SourceRef.Namespace = intern(c.Spec.SourceRef.Namespace)
	}
	hr.Status = ReadStatus(hr.Status)
	return hr, nil
}

// ReadStatus is what chartkind reads of a HelmRelease's status, as its
// cache keeps it: anything computed from a status (release insight's
// fingerprint) gives the same for a cached copy and a full one.
func ReadStatus(s helmv2.HelmReleaseStatus) helmv2.HelmReleaseStatus {
	out := helmv2.HelmReleaseStatus{
		ObservedGeneration: s.ObservedGeneration,
		Conditions:         s.Conditions,
		StorageNamespace:   intern(s.StorageNamespace),
		Inventory:          s.Inventory,
		Failures:           s.Failures,
		InstallFailures:    s.InstallFailures,
		UpgradeFailures:    s.UpgradeFailures,
	}
	out.LastHandledReconcileAt = s.LastHandledReconcileAt
	for i := range out.Conditions {
		c := &out.Conditions[i]
		c.Type, c.Status, c.Reason = intern(c.Type), metav1.ConditionStatus(intern(string(c.Status))), intern(c.Reason)
		// helm-controller often writes one message in two conditions
		// (Ready and Released): keep it once.
		for j := range i {
			if out.Conditions[j].Message == c.Message {
				c.Message = out.Conditions[j].Message
				break
			}
		}
	}
	if inv := out.Inventory; inv != nil {
		for i := range inv.Entries {
			inv.Entries[i].Version = intern(inv.Entries[i].Version)
		}
	}
	h := s.History
	if len(h) == 0 {
		return out
	}
	latest := 0
	for i, snap := range h {
		if snap != nil && (h[latest] == nil || snap.Version > h[latest].Version) {
			latest = i
		}
	}
	out.History = helmv2.Snapshots{trimSnapshot(h[0])}
	if latest != 0 {
		out.History = append(out.History, trimSnapshot(h[latest]))
	}
	return out
}

// trimSnapshot keeps what chartkind reads of a history entry: the release
// record's name and version (release notes), and its status, chart version
// and app version (the object's status.version and appVersion).
func trimSnapshot(s *helmv2.Snapshot) *helmv2.Snapshot {
	if s == nil {
		return nil
	}
	return &helmv2.Snapshot{Name: s.Name, Version: s.Version, Status: intern(s.Status),
		ChartVersion: intern(s.ChartVersion), AppVersion: intern(s.AppVersion)}
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
