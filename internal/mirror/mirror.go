// Package mirror keeps one application object and its Flux HelmRelease in
// step, both ways: the object's spec becomes the HelmRelease's values, the
// HelmRelease's status becomes the object's status, a HelmRelease created or
// edited directly is reflected back into an object, and either side's deletion
// deletes the other. Nothing here uses finalizers or the garbage collector, so
// a namespace is never blocked by chartkind being down and everything converges
// when it comes back.
//
// Mirror implements the engine's Handler; it does not know about the engine.
package mirror

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/tenancy"
)

// Labels and annotations chartkind puts on the HelmReleases it manages.
const (
	// LabelKind is the kind of the object a HelmRelease mirrors.
	LabelKind = "apps.chartkind.io/kind"
	// LabelName is the name of the object a HelmRelease mirrors.
	LabelName = "apps.chartkind.io/name"
	// LabelDefinition is the ApplicationDefinition serving the object's kind.
	LabelDefinition = "apps.chartkind.io/definition"
	// AnnotationGeneration is the object generation whose spec is in the
	// HelmRelease's values.
	AnnotationGeneration = "apps.chartkind.io/object-generation"
)

// foreignRecheck is how often an object blocked by a HelmRelease that is not
// its own looks again whether that HelmRelease is gone. It reads from the
// cache and writes nothing while nothing changed.
const foreignRecheck = time.Minute

// Condition types and reasons set on application objects.
const (
	ConditionReady = "Ready"
	// ConditionSuspended is True while the release is suspended.
	ConditionSuspended = "Suspended"
	// ConditionHealthy says whether the objects the release installed are
	// healthy (kstatus Current), separately from whether Helm's last action
	// succeeded (Ready).
	ConditionHealthy = "Healthy"

	ReasonProgressing     = "Progressing"
	ReasonNameTooLong     = "NameTooLong"
	ReasonReleaseConflict = "ReleaseConflict"
	ReasonReconcileFailed = "ReconcileFailed"
	ReasonSuspended       = "Suspended"

	// Event reasons.
	EventConflictObjectWins = "ConflictObjectWins"
	EventNameTooLong        = "NameTooLong"
	EventAdopted            = "Adopted"
	EventReleaseDeleted     = "ReleaseDeleted"
	EventValuesPulled       = "ValuesPulled"
	EventInvalidValues      = "InvalidReleaseValues"
	EventReleaseConflict    = "ReleaseConflict"
	// EventLockedValueRestored: a direct edit of the HelmRelease changed a
	// value the definition locks or sets; the administrator's is put back.
	EventLockedValueRestored = "LockedValueRestored"
)

// mirroredConditions are the HelmRelease conditions copied to the object
// besides Ready: Drifted (spec.release.driftDetection: drift seen, and with
// mode enabled corrected), TestSuccess (spec.release.test) and Remediated (a
// failed release rolled back or uninstalled) come from the release settings.
var mirroredConditions = []string{"Released", "Reconciling", "Stalled", "Drifted", "TestSuccess", "Remediated"}

// Mirror synchronises application objects with their HelmReleases.
type Mirror struct {
	client   client.Client
	live     client.Reader
	recorder events.EventRecorder
	now      func() time.Time
	// insight, when set, reads what each release installed (observe.go).
	insight  *InsightOptions
	observed *observerState
	// policy is the operator's multi-tenant release policy (tenancy.Policy).
	policy tenancy.Policy
	// shard, when set, selects the objects this operator handles (shard.go).
	shard labels.Selector
	// objects, when set, serves objects from the engine's cache, and
	// written are chartkind's own writes the cache may not show yet
	// (objects.go).
	objects ObjectCache
	written *recentWrites
}

// New returns a Mirror that writes through c, reads HelmReleases through c
// (usually a cache) and application objects, and anything it must be sure of
// before deleting, through live (the API server).
func New(c client.Client, live client.Reader, recorder events.EventRecorder) *Mirror {
	return &Mirror{client: c, live: live, recorder: recorder, now: time.Now}
}

// SetPolicy sets the multi-tenant release policy every HelmRelease is
// written with: the default service account and same-namespace sources.
func (m *Mirror) SetPolicy(p tenancy.Policy) { m.policy = p }

// target is one reconcile: a definition's kind and one object name.
type target struct {
	def   *v1alpha1.ApplicationDefinition
	names definition.Names
	gvk   schema.GroupVersionKind
	key   types.NamespacedName
	log   logr.Logger
	// deps are the object's dependencies (dependencies.go), read before its
	// HelmRelease is written.
	deps *dependencies
	// observed is this reconcile's observation of the release, remembered
	// once the object's status shows it (observe.go).
	observed *observation
}

func (t *target) releaseKey() types.NamespacedName {
	return types.NamespacedName{Namespace: t.key.Namespace, Name: t.names.ReleaseName(t.key.Name)}
}

// GVK returns the kind def serves.
func GVK(def *v1alpha1.ApplicationDefinition) schema.GroupVersionKind {
	n := definition.Effective(def)
	return schema.GroupVersionKind{Group: n.Group, Version: crd.Version, Kind: n.Kind}
}

// Reconcile brings the object key of def's kind and its HelmRelease in step.
func (m *Mirror) Reconcile(ctx context.Context, def *v1alpha1.ApplicationDefinition, key types.NamespacedName) (time.Duration, error) {
	t := &target{def: def, names: definition.Effective(def), gvk: GVK(def), key: key, log: logr.FromContextOrDiscard(ctx)}

	obj, err := m.getObject(ctx, t)
	if err != nil {
		return 0, err
	}
	hr, err := m.getRelease(ctx, m.client, t)
	if err != nil {
		return 0, err
	}
	if obj != nil && hr != nil && ownedBy(hr, obj) && releasedGeneration(hr) > obj.GetGeneration() {
		// The HelmRelease was written from a newer version of the object
		// than the cache holds (read live earlier, or by another replica):
		// deciding on the cached one would push its older values.
		if obj, err = m.getLiveObject(ctx, t); err != nil {
			return 0, err
		}
	}
	if obj == nil {
		m.forget(t.uid())
		return m.objectGone(ctx, t, hr)
	}
	if !m.inShard(obj) {
		m.forget(t.uid())
		return 0, nil // another shard's object
	}
	if hr == nil && m.shard != nil {
		if hr, err = m.releaseOfOtherShard(ctx, t, obj); err != nil {
			return 0, err
		}
	}
	if obj.GetDeletionTimestamp() != nil {
		// Someone else's finalizer holds the object; its HelmRelease goes once it is gone.
		return 0, nil
	}
	if len(key.Name) > t.names.MaxObjectNameLength() {
		return 0, m.nameTooLong(ctx, t, obj)
	}
	if hr != nil && !ownedBy(hr, obj) {
		done, err := m.foreignRelease(ctx, t, obj, hr)
		if err != nil {
			return 0, err
		}
		if done {
			// Look again later: the deletion of a HelmRelease that is not ours
			// maps to no object, so no event would bring this one back.
			return foreignRecheck, nil
		}
	}
	after, err := m.mirrorObject(ctx, t, obj, hr)
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		// A failure that is not just a race (RBAC, an admission webhook, a
		// quota) is shown on the object, not only in the operator's log.
		if rerr := m.reportFailure(ctx, t, obj, err); rerr != nil {
			t.log.V(1).Info("could not report the failure on the object", "error", rerr.Error())
		}
	}
	return after, err
}

// mirrorObject creates or syncs the HelmRelease of an existing object.
func (m *Mirror) mirrorObject(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease) (time.Duration, error) {
	deps, err := m.resolveDependencies(ctx, t, obj)
	if err != nil {
		return 0, err
	}
	t.deps = deps
	if hr == nil || hr.DeletionTimestamp != nil {
		return m.releaseMissing(ctx, t, obj, hr)
	}
	obj, hr, err = m.syncValues(ctx, t, obj, hr)
	if err != nil {
		return 0, err
	}
	return m.syncStatus(ctx, t, obj, hr)
}

// reportFailure sets Ready=False with the error on obj, and a Warning event,
// when that is news.
func (m *Mirror) reportFailure(ctx context.Context, t *target, obj *unstructured.Unstructured, cause error) error {
	st, err := readStatus(obj)
	if err != nil {
		return err
	}
	old := st.deepCopy()
	msg := cause.Error()
	if len(msg) > 4096 {
		msg = msg[:4096] + "…"
	}
	st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonReconcileFailed, Message: msg, ObservedGeneration: obj.GetGeneration()})
	if st.equal(old) {
		return nil
	}
	m.warn(obj, nil, ReasonReconcileFailed, "Reconcile", "%s", msg)
	return m.writeStatus(ctx, obj, st)
}

// ReleaseOwner maps a HelmRelease to the served definition and object name it
// belongs to: by chartkind's labels, by its controller reference, or for an
// unlinked HelmRelease by matching a definition's chart and prefix.
func (m *Mirror) ReleaseOwner(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) (string, string, bool) {
	if name := hr.Labels[LabelDefinition]; name != "" {
		for _, d := range served {
			if d.Name == name {
				if n := hr.Labels[LabelName]; n != "" {
					return d.Name, n, true
				}
				if p := definition.Effective(d).Prefix; strings.HasPrefix(hr.Name, p) && len(hr.Name) > len(p) {
					return d.Name, strings.TrimPrefix(hr.Name, p), true
				}
			}
		}
	}
	if ref := metav1.GetControllerOf(hr); ref != nil {
		for _, d := range served {
			if refersToKind(ref, GVK(d)) {
				return d.Name, ref.Name, true
			}
		}
		return "", "", false
	}
	if d := matchingDefinition(hr, served); d != nil {
		return d.Name, strings.TrimPrefix(hr.Name, definition.Effective(d).Prefix), true
	}
	return "", "", false
}

// Matches reports whether hr is a release of def's chart named with def's prefix.
func Matches(def *v1alpha1.ApplicationDefinition, hr *helmv2.HelmRelease) bool {
	p := definition.Effective(def).Prefix
	if !strings.HasPrefix(hr.Name, p) || len(hr.Name) == len(p) {
		return false
	}
	rel := def.Spec.Release
	switch {
	case rel.Chart != nil:
		c := hr.Spec.Chart
		if c == nil {
			return false
		}
		return c.Spec.Chart == rel.Chart.Name &&
			c.Spec.SourceRef.Kind == rel.Chart.SourceRef.Kind &&
			c.Spec.SourceRef.Name == rel.Chart.SourceRef.Name &&
			nsOr(c.Spec.SourceRef.Namespace, hr.Namespace) == nsOr(rel.Chart.SourceRef.Namespace, hr.Namespace)
	case rel.ChartRef != nil:
		r := hr.Spec.ChartRef
		if r == nil {
			return false
		}
		return r.Kind == rel.ChartRef.Kind && r.Name == rel.ChartRef.Name &&
			nsOr(r.Namespace, hr.Namespace) == nsOr(rel.ChartRef.Namespace, hr.Namespace)
	}
	return false
}

// claims reports whether t's definition is the one an unlinked hr belongs to:
// it matches, and no other definition matches with a prefix as long or
// longer. Two definitions of one chart with prefixes "pg-" and "pg-ha-" thus
// never both claim "pg-ha-x"; with equal prefixes neither does, and the
// HelmRelease is left alone. Every definition counts, served or not, so an
// unhealthy definition never lets another take its releases.
func (m *Mirror) claims(ctx context.Context, t *target, hr *helmv2.HelmRelease) (bool, error) {
	if !Matches(t.def, hr) {
		return false, nil
	}
	var defs v1alpha1.ApplicationDefinitionList
	if err := m.client.List(ctx, &defs); err != nil {
		return false, errorf("listing ApplicationDefinitions to match HelmRelease %s/%s: %w", hr.Namespace, hr.Name, err)
	}
	mine := len(t.names.Prefix)
	for i := range defs.Items {
		d := &defs.Items[i]
		if d.Name != t.def.Name && Matches(d, hr) && len(definition.Effective(d).Prefix) >= mine {
			return false, nil
		}
	}
	return true, nil
}

func matchingDefinition(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) *v1alpha1.ApplicationDefinition {
	var best *v1alpha1.ApplicationDefinition
	for _, d := range served {
		if Matches(d, hr) && (best == nil || len(definition.Effective(d).Prefix) > len(definition.Effective(best).Prefix)) {
			best = d
		}
	}
	return best
}

func nsOr(ns, def string) string {
	if ns == "" {
		return def
	}
	return ns
}

func refersToKind(ref *metav1.OwnerReference, gvk schema.GroupVersionKind) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == gvk.Group && ref.Kind == gvk.Kind
}

// releasedGeneration is the object generation whose spec hr's values hold
// (AnnotationGeneration); 0 when unknown.
func releasedGeneration(hr *helmv2.HelmRelease) int64 {
	g, err := strconv.ParseInt(hr.Annotations[AnnotationGeneration], 10, 64)
	if err != nil {
		return 0
	}
	return g
}

func ownedBy(hr *helmv2.HelmRelease, obj *unstructured.Unstructured) bool {
	ref := metav1.GetControllerOf(hr)
	return ref != nil && ref.UID == obj.GetUID()
}

func (m *Mirror) warn(obj *unstructured.Unstructured, related *helmv2.HelmRelease, reason, action, note string, args ...any) {
	if m.recorder == nil {
		return
	}
	if related == nil {
		m.recorder.Eventf(obj, nil, "Warning", reason, action, note, args...)
		return
	}
	m.recorder.Eventf(obj, related, "Warning", reason, action, note, args...)
}

func (m *Mirror) normal(obj *unstructured.Unstructured, related *helmv2.HelmRelease, reason, action, note string, args ...any) {
	if m.recorder == nil {
		return
	}
	if related == nil {
		m.recorder.Eventf(obj, nil, "Normal", reason, action, note, args...)
		return
	}
	m.recorder.Eventf(obj, related, "Normal", reason, action, note, args...)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
