package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/lock"
	"github.com/chartkind/chartkind/internal/metrics"
)

// getRelease reads the object's HelmRelease through r; nil when it does not exist.
func (m *Mirror) getRelease(ctx context.Context, r client.Reader, t *target) (*helmv2.HelmRelease, error) {
	hr := &helmv2.HelmRelease{}
	if err := r.Get(ctx, t.releaseKey(), hr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, errorf("reading HelmRelease %s: %w", t.releaseKey(), err)
	}
	return hr, nil
}

// objectGone handles a key whose object does not exist: the HelmRelease of a
// deleted object is deleted; an unlinked HelmRelease of the kind is adopted by
// creating its object.
func (m *Mirror) objectGone(ctx context.Context, t *target, hr *helmv2.HelmRelease) (time.Duration, error) {
	if hr == nil || hr.DeletionTimestamp != nil {
		return 0, nil
	}
	if ref := metav1.GetControllerOf(hr); ref != nil {
		if !refersToKind(ref, t.gvk) || ref.Name != t.key.Name {
			return 0, nil // someone else's
		}
		return 0, m.deleteOrphanRelease(ctx, t, hr)
	}
	if claimed, err := m.claims(ctx, t, hr); err != nil || !claimed {
		return 0, err // never touch HelmReleases of no definition, or of a better-matching one
	}
	// Adopting creates an object: make sure on the API server that the
	// HelmRelease really is unlinked, not linked to an object just deleted.
	fresh, err := m.getRelease(ctx, m.live, t)
	if err != nil {
		return 0, err
	}
	if fresh == nil || fresh.DeletionTimestamp != nil {
		return 0, nil
	}
	if metav1.GetControllerOf(fresh) != nil {
		return 0, errorf("HelmRelease %s is linked after all, retrying", t.releaseKey())
	}
	return 0, m.adopt(ctx, t, fresh)
}

// deleteOrphanRelease deletes a HelmRelease whose controlling object is gone.
// The object's absence is checked on the API server, not a cache.
func (m *Mirror) deleteOrphanRelease(ctx context.Context, t *target, hr *helmv2.HelmRelease) error {
	ref := metav1.GetControllerOf(hr)
	obj, err := m.getLiveObject(ctx, t)
	if err != nil {
		return err
	}
	if obj != nil && obj.GetUID() == ref.UID {
		return nil // the owner is there after all
	}
	t.log.Info("deleting HelmRelease of deleted object", "helmRelease", hr.Name, "ownerUID", ref.UID)
	uid := hr.UID
	err = m.client.Delete(ctx, hr, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return errorf("deleting HelmRelease %s: %w", t.releaseKey(), err)
	}
	return nil
}

// adopt creates the object for a HelmRelease made directly, spec = values. The
// object's creation is then reconciled like any other, which links the two.
func (m *Mirror) adopt(ctx context.Context, t *target, hr *helmv2.HelmRelease) error {
	if errs := validation.IsDNS1123Subdomain(t.key.Name); len(errs) > 0 || len(t.key.Name) > t.names.MaxObjectNameLength() {
		t.log.Info("not adopting HelmRelease: the object name it implies is invalid", "helmRelease", hr.Name)
		return nil
	}
	values, err := decodeValues(hr.Spec.Values)
	if err != nil {
		t.log.Info("not adopting HelmRelease: values are not an object", "helmRelease", hr.Name, "error", err.Error())
		return nil
	}
	// The administrator's values are not the user's: they are not copied.
	if admin, err := adminValues(t); err == nil {
		values = lock.Strip(values, admin.paths)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	obj.SetGroupVersionKind(t.gvk)
	obj.SetNamespace(t.key.Namespace)
	obj.SetName(t.key.Name)
	if len(values) > 0 {
		obj.Object["spec"] = values
	}
	if err := m.client.Create(ctx, obj); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return errorf("adopting HelmRelease %s: object appeared meanwhile, retrying", hr.Name)
		}
		if apierrors.IsInvalid(err) {
			t.log.Info("not adopting HelmRelease: its values do not fit the kind's schema", "helmRelease", hr.Name, "error", err.Error())
			return nil
		}
		return errorf("adopting HelmRelease %s: %w", hr.Name, err)
	}
	t.log.Info("adopted HelmRelease", "helmRelease", hr.Name)
	m.normal(obj, hr, EventAdopted, "Adopt", "Created from HelmRelease %s, which had no object", hr.Name)
	metrics.ObserveMirror(ctx, t.gvk.Kind, metrics.DirectionToObject)
	return nil
}

// nameTooLong refuses an object whose release name would exceed Helm's limit.
func (m *Mirror) nameTooLong(ctx context.Context, t *target, obj *unstructured.Unstructured) error {
	msg := "release name " + t.names.ReleaseName(obj.GetName()) + " is longer than 53 characters: object names of this kind may have at most " +
		strconv.Itoa(t.names.MaxObjectNameLength()) + " characters"
	st, err := readStatus(obj)
	if err != nil {
		return err
	}
	old := st.deepCopy()
	st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonNameTooLong, Message: msg})
	if st.equal(old) {
		return nil
	}
	if err := m.writeStatus(ctx, obj, st); err != nil {
		return err
	}
	m.warn(obj, nil, EventNameTooLong, "CreateHelmRelease", "%s", msg)
	return nil
}

// foreignRelease handles a HelmRelease with the object's release name that the
// object does not control. It returns done when the reconcile must stop there.
func (m *Mirror) foreignRelease(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease) (bool, error) {
	ref := metav1.GetControllerOf(hr)
	switch {
	case ref != nil && refersToKind(ref, t.gvk) && ref.Name == obj.GetName():
		// Left behind by an earlier object of the same name, which is gone.
		return true, m.deleteOrphanRelease(ctx, t, hr)
	case ref == nil:
		claimed, err := m.claims(ctx, t, hr)
		if err != nil {
			return true, err
		}
		if claimed {
			return false, nil // unlinked release of this kind: link it
		}
	}
	msg := "HelmRelease " + hr.Name + " exists and is not a release of this kind: it is left alone"
	st, err := readStatus(obj)
	if err != nil {
		return true, err
	}
	old := st.deepCopy()
	st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonReleaseConflict, Message: msg})
	if st.equal(old) {
		return true, nil
	}
	if err := m.writeStatus(ctx, obj, st); err != nil {
		return true, err
	}
	m.warn(obj, nil, EventReleaseConflict, "CreateHelmRelease", "%s", msg)
	return true, nil
}

// releaseMissing handles an object without a (live) HelmRelease: a linked
// object whose HelmRelease was deleted is deleted too; otherwise the
// HelmRelease is created. An object linked to a HelmRelease of another name
// (the definition's prefix changed) is not deleted: it gets a HelmRelease of
// the new name, and the old one is left for the administrator.
func (m *Mirror) releaseMissing(ctx context.Context, t *target, obj *unstructured.Unstructured, cached *helmv2.HelmRelease) (time.Duration, error) {
	st, err := readStatus(obj)
	if err != nil {
		return 0, err
	}
	if st.Release != nil && st.Release.Name == t.releaseKey().Name && st.Release.Namespace == t.key.Namespace {
		// Linked: the cache may lag behind a HelmRelease just created, so ask the API server.
		hr, err := m.getRelease(ctx, m.live, t)
		if err != nil {
			return 0, err
		}
		if hr != nil && hr.DeletionTimestamp == nil {
			return 0, errorf("HelmRelease %s exists but is not cached yet", t.releaseKey())
		}
		t.log.Info("deleting object whose HelmRelease was deleted", "helmRelease", t.releaseKey().Name)
		uid := obj.GetUID()
		err = m.client.Delete(ctx, obj, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, errorf("deleting %s %s: %w", t.gvk.Kind, t.key, err)
		}
		return 0, nil
	}
	if cached != nil {
		// An unlinked HelmRelease is being deleted: create ours once it is gone.
		return 2 * time.Second, nil
	}
	values, err := specValues(obj)
	if err != nil {
		return 0, err
	}
	admin, err := adminValues(t)
	if err != nil {
		return 0, err
	}
	values = lock.Merge(values, admin.set)
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: t.key.Namespace, Name: t.releaseKey().Name}}
	m.applyDesired(t, obj, hr, values)
	if err := m.client.Create(ctx, hr); err != nil {
		return 0, errorf("creating HelmRelease %s: %w", t.releaseKey(), err)
	}
	t.log.V(1).Info("created HelmRelease", "helmRelease", hr.Name)
	metrics.ObserveMirror(ctx, t.gvk.Kind, metrics.DirectionToRelease)
	return m.syncStatus(ctx, t, obj, hr)
}

// syncValues decides which side's values win, using the digest of the values
// last synchronised (status.valuesDigest): a changed object is pushed, a changed
// HelmRelease is pulled into the object, and when both changed the object wins.
// It then writes the HelmRelease if anything chartkind owns differs.
func (m *Mirror) syncValues(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease) (*unstructured.Unstructured, *helmv2.HelmRelease, error) {
	st, err := readStatus(obj)
	if err != nil {
		return nil, nil, err
	}
	objValues, err := specValues(obj)
	if err != nil {
		return nil, nil, err
	}
	admin, err := adminValues(t)
	if err != nil {
		return nil, nil, err
	}
	hrValues, err := decodeValues(hr.Spec.Values)
	hrValuesOK := err == nil
	if err != nil {
		hrValues = nil // not an object: replaced by the object's values below
	}
	// What the HelmRelease should hold: the object's spec with the
	// administrator's values merged over it.
	objDigest, hrDigest := digest(lock.Merge(objValues, admin.set)), digest(hrValues)
	last := st.ValuesDigest
	linked := ownedBy(hr, obj)
	if linked && last != "" && objDigest != hrDigest && hrDigest != last {
		// The HelmRelease looks edited. The cache may just lag behind our own
		// last write, so decide on what the API server holds.
		fresh, err := m.getRelease(ctx, m.live, t)
		if err != nil {
			return nil, nil, err
		}
		if fresh == nil || fresh.DeletionTimestamp != nil {
			return nil, nil, errorf("HelmRelease %s is gone or going, retrying", t.releaseKey())
		}
		hr = fresh
		hrValues, err = decodeValues(hr.Spec.Values)
		hrValuesOK = err == nil
		if err != nil {
			hrValues = nil
		}
		hrDigest = digest(hrValues)
		linked = ownedBy(hr, obj)
	}

	// The object's spec can differ from the last synchronised values without
	// anyone editing it: the API server applies a new schema's defaults, or
	// prunes, when it reads a stored object. Only a change of generation is
	// an edit; anything else must not upgrade the release.
	edited := !linked || !hrValuesOK || hr.Annotations[AnnotationGeneration] != strconv.FormatInt(obj.GetGeneration(), 10)
	desired := lock.Merge(objValues, admin.set)
	switch {
	case objDigest == hrDigest:
	case linked && last != "" && hrDigest != last && (last == objDigest || !edited):
		// Edited on the HelmRelease only: pull into the object, except the
		// administrator's paths, whose values are put back.
		userValues := lock.Strip(hrValues, admin.paths)
		if digest(userValues) != digest(objValues) {
			pulled, err := m.pull(ctx, t, obj, hr, userValues)
			if err != nil {
				return nil, nil, err
			}
			if pulled != nil {
				obj, objValues = pulled, userValues
			}
		}
		desired = lock.Merge(objValues, admin.set)
		if restored := lock.Changed(hrValues, desired, admin.paths); len(restored) > 0 {
			m.warn(obj, hr, EventLockedValueRestored, "SyncValues",
				"HelmRelease %s changed locked value(s) %s: the values of ApplicationDefinition %s are restored",
				hr.Name, "spec."+strings.Join(restored, ", spec."), t.def.Name)
		}
	case !edited:
		// Not edited: the HelmRelease keeps the values last synchronised,
		// with the administrator's current values over them.
		desired = lock.Merge(hrValues, admin.set)
	case linked && last != "" && last != objDigest && last != hrDigest:
		m.warn(obj, hr, EventConflictObjectWins, "SyncValues",
			"Both the object and HelmRelease %s changed the values since they were last in step: the object's values win", hr.Name)
	}

	updated := hr.DeepCopy()
	m.applyDesired(t, obj, updated, desired)
	if releaseEqual(hr, updated) {
		return obj, hr, nil
	}
	if err := m.client.Update(ctx, updated); err != nil {
		return nil, nil, errorf("updating HelmRelease %s: %w", t.releaseKey(), err)
	}
	t.log.V(1).Info("updated HelmRelease", "helmRelease", updated.Name)
	metrics.ObserveMirror(ctx, t.gvk.Kind, metrics.DirectionToRelease)
	return obj, updated, nil
}

// pull writes the HelmRelease's values into the object's spec. Values the
// kind's schema refuses are not pulled: the object's values win instead.
func (m *Mirror) pull(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease, values map[string]any) (*unstructured.Unstructured, error) {
	updated := obj.DeepCopy()
	if len(values) == 0 {
		delete(updated.Object, "spec")
	} else {
		updated.Object["spec"] = values
	}
	// A patch of the spec, conditional on the version read: the object may
	// come from the cache, which keeps neither kubectl's last-applied
	// annotation nor managedFields, and an update would drop the former.
	if err := m.client.Patch(ctx, updated, client.MergeFromWithOptions(obj, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsInvalid(err) {
			m.warn(obj, hr, EventInvalidValues, "SyncValues",
				"Values edited on HelmRelease %s do not fit the kind's schema, the object's values are restored: %v", hr.Name, err)
			return nil, nil
		}
		return nil, errorf("updating %s %s from its HelmRelease: %w", t.gvk.Kind, t.key, err)
	}
	m.written.record(objectKey(obj), obj.GetResourceVersion(), updated, m.now())
	m.normal(updated, hr, EventValuesPulled, "SyncValues", "Values edited on HelmRelease %s copied into the object", hr.Name)
	metrics.ObserveMirror(ctx, t.gvk.Kind, metrics.DirectionToObject)
	return updated, nil
}

// syncStatus reflects the HelmRelease's status, and what the release
// installed, into the object's. It returns when to look again at what the
// release installed (0: only on the next event).
func (m *Mirror) syncStatus(ctx context.Context, t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease) (time.Duration, error) {
	st, err := readStatus(obj)
	if err != nil {
		return 0, err
	}
	old := st.deepCopy()
	// The values last in step are the HelmRelease's: the object's spec may
	// also hold what the API server added on read (see syncValues).
	values, err := decodeValues(hr.Spec.Values)
	if err != nil {
		return 0, errorf("HelmRelease %s values: %w", hr.Name, err)
	}
	st.ValuesDigest = digest(values)
	st.Release = &releaseRef{Name: hr.Name, Namespace: hr.Namespace}
	st.Failures = hr.Status.Failures
	st.InstallFailures = hr.Status.InstallFailures
	st.UpgradeFailures = hr.Status.UpgradeFailures
	if len(hr.Status.History) > 0 && hr.Status.History[0].Status == "deployed" {
		st.Version = hr.Status.History[0].ChartVersion
		st.AppVersion = hr.Status.History[0].AppVersion
	}
	for _, ct := range mirroredConditions {
		if c := findCondition(hr.Status.Conditions, ct); c != nil {
			st.setCondition(copyCondition(c))
		} else {
			st.removeCondition(ct)
		}
	}
	ready := findCondition(hr.Status.Conditions, ConditionReady)
	processed := hr.Generation > 0 && releaseProcessed(hr, ready) &&
		hr.Annotations[AnnotationGeneration] == strconv.FormatInt(obj.GetGeneration(), 10)
	// What the object shows of the HelmRelease is as it is now: then so
	// is, after a restart, the observation the object shows (observe).
	// Asked only for an object not observed since the operator started.
	shownAsIs := func() bool { return st.equal(old) && sameReady(findCondition(old.Conditions, ConditionReady), ready) }
	recheck := m.observe(ctx, t, obj, hr, st, shownAsIs)
	st.LastHandledReconcileAt = hr.Status.LastHandledReconcileAt
	if hr.Spec.Suspend {
		st.setCondition(metav1.Condition{Type: ConditionSuspended, Status: metav1.ConditionTrue, Reason: ReasonSuspended,
			Message: "HelmRelease " + hr.Name + " is suspended: helm-controller makes no change until it is resumed" + resumeHint(t, obj)})
	} else {
		st.removeCondition(ConditionSuspended)
	}
	switch {
	case processed && ready != nil:
		st.ObservedGeneration = obj.GetGeneration()
		c := copyCondition(ready)
		if stuck(hr) && c.Status != metav1.ConditionTrue {
			why := "; the release will not be retried by itself"
			// Healthy is kstatus's verdict; with CEL health checks,
			// helm-controller's may differ, so it is not claimed then.
			if stuckButHealthy(st) && len(hr.Spec.HealthCheckExprs) == 0 {
				why = "; its objects are healthy now, but the release will not be retried by itself"
			}
			c.Message = strings.TrimSuffix(c.Message, ".") + why + ": " + retryHint(t.names.Singular, obj.GetNamespace(), obj.GetName())
		}
		st.setCondition(c)
	case processed:
		st.ObservedGeneration = obj.GetGeneration()
		st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionUnknown, Reason: ReasonProgressing,
			Message: "HelmRelease " + hr.Name + " has no Ready condition yet"})
	default:
		st.setCondition(metav1.Condition{Type: ConditionReady, Status: metav1.ConditionUnknown, Reason: ReasonProgressing,
			Message: "waiting for HelmRelease " + hr.Name + " to process generation " + strconv.FormatInt(obj.GetGeneration(), 10)})
	}
	dependencyStatus(t.deps, st, old)
	recheck = dependencyRecheckAfter(t.deps, recheck)
	if st.equal(old) {
		m.shown(t)
		return recheck, nil
	}
	if err := m.writeStatus(ctx, obj, st); err != nil {
		return 0, err
	}
	m.shown(t)
	m.healthEvents(obj, hr, old, st)
	if c := findCondition(st.Conditions, ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		if oc := findCondition(old.Conditions, ConditionReady); oc == nil || oc.Status != metav1.ConditionTrue {
			metrics.ObserveMirror(ctx, t.gvk.Kind, metrics.DirectionToObject)
		}
	}
	return recheck, nil
}

func (m *Mirror) writeStatus(ctx context.Context, obj *unstructured.Unstructured, st *objectStatus) error {
	u := obj.DeepCopy()
	raw, err := st.toUnstructured()
	if err != nil {
		return err
	}
	u.Object["status"] = raw
	if err := m.client.Status().Update(ctx, u); err != nil {
		return errorf("writing status of %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	m.written.record(objectKey(obj), obj.GetResourceVersion(), u, m.now())
	return nil
}

// applyDesired sets everything chartkind owns on hr: the definition's release
// settings, the values, labels, the controller reference and the generation
// annotation. Release settings the definition does not set are left as they
// are (see ownedFields.restoreOn).
func (m *Mirror) applyDesired(t *target, obj *unstructured.Unstructured, hr *helmv2.HelmRelease, values map[string]any) {
	rel := t.def.Spec.Release
	want := ownedFields{
		ChartRef:           rel.ChartRef.DeepCopy(),
		Interval:           rel.Interval,
		Timeout:            rel.Timeout.DeepCopy(),
		Install:            rel.Install.DeepCopy(),
		Upgrade:            rel.Upgrade.DeepCopy(),
		ValuesFrom:         append([]helmv2.ValuesReference(nil), rel.ValuesFrom...),
		ServiceAccountName: rel.ServiceAccountName,
		TargetNamespace:    rel.TargetNamespace,
		ReleaseName:        helmReleaseName(obj.GetNamespace(), t.names.ReleaseName(obj.GetName()), rel.StorageNamespace),
		StorageNamespace:   rel.StorageNamespace,
		MaxHistory:         copyInt(rel.MaxHistory),
		KubeConfig:         rel.KubeConfig.DeepCopy(),
		DriftDetection:     rel.DriftDetection.DeepCopy(),
		HealthCheckExprs:   append([]kustomize.CustomHealthCheck(nil), rel.HealthCheckExprs...),
		Test:               rel.Test.DeepCopy(),
		Rollback:           rel.Rollback.DeepCopy(),
		Uninstall:          rel.Uninstall.DeepCopy(),
	}
	for i := range rel.PostRenderers {
		want.PostRenderers = append(want.PostRenderers, *rel.PostRenderers[i].DeepCopy())
	}
	want.DependsOn, want.OwnsDependsOn = dependsOn(rel.DependsOn, t.deps, hr)
	if want.Interval.Duration == 0 {
		want.Interval = metav1.Duration{Duration: 10 * time.Minute}
	}
	if rel.Chart != nil {
		want.Chart = &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
			Chart: rel.Chart.Name, Version: rel.Chart.Version, SourceRef: rel.Chart.SourceRef,
		}}
	}
	want.restoreOn(&hr.Spec, hr.CreationTimestamp.IsZero())
	m.policy.Enforce(&rel, &hr.Spec)

	if len(values) == 0 {
		hr.Spec.Values = nil
	} else if cur, err := decodeValues(hr.Spec.Values); err != nil || digest(cur) != digest(values) {
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: canonicalJSON(values)}
	}

	labels := hr.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range rel.Labels {
		labels[k] = v
	}
	labels[LabelKind] = t.gvk.Kind
	labels[LabelName] = obj.GetName()
	labels[LabelDefinition] = t.def.Name
	shardLabel(obj, labels)
	hr.SetLabels(labels)

	ann := hr.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationGeneration] = strconv.FormatInt(obj.GetGeneration(), 10)
	applyOperations(obj, hr, ann)
	switch {
	case t.deps != nil && t.deps.keep:
		// Unreadable annotation: dependencies left as they are.
	case len(want.DependsOn) > 0:
		ann[AnnotationDependsOnForwarded] = "true"
	default:
		delete(ann, AnnotationDependsOnForwarded)
	}
	hr.SetAnnotations(ann)

	ctrl := metav1.OwnerReference{
		APIVersion: t.gvk.GroupVersion().String(), Kind: t.gvk.Kind, Name: obj.GetName(), UID: obj.GetUID(),
		Controller: boolPtr(true),
	}
	refs := []metav1.OwnerReference{ctrl}
	for _, r := range hr.GetOwnerReferences() {
		if r.Controller == nil || !*r.Controller {
			if r.UID != obj.GetUID() {
				refs = append(refs, r)
			}
		}
	}
	hr.SetOwnerReferences(refs)
}

// helmReleaseName is the Helm release name of an object's HelmRelease named
// name. Helm keys release records by name within their storage namespace:
// when the definition stores every release's records in one namespace,
// objects of the same name in two namespaces would share one Helm release
// and each upgrade would replace the other's objects. So with a storage
// namespace the object's namespace is part of the name, shortened the way
// helm-controller shortens names over Helm's 53 characters.
func helmReleaseName(namespace, name, storageNamespace string) string {
	if storageNamespace == "" {
		return name
	}
	full := namespace + "-" + name
	if len(full) <= 53 {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:40] + "-" + hex.EncodeToString(sum[:])[:12]
}

// releaseEqual compares what applyDesired may change.
func releaseEqual(a, b *helmv2.HelmRelease) bool {
	if !equality.Semantic.DeepEqual(a.Labels, b.Labels) || !equality.Semantic.DeepEqual(a.Annotations, b.Annotations) ||
		!equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences) {
		return false
	}
	av, errA := decodeValues(a.Spec.Values)
	bv, errB := decodeValues(b.Spec.Values)
	if errA != nil || errB != nil || digest(av) != digest(bv) {
		return false
	}
	return a.Spec.Suspend == b.Spec.Suspend && equality.Semantic.DeepEqual(ownedOf(&a.Spec), ownedOf(&b.Spec))
}

func boolPtr(b bool) *bool { return &b }

// resumeHint says how a user resumes a release suspended through the object.
func resumeHint(t *target, obj *unstructured.Unstructured) string {
	if suspendRequested(obj) != "true" {
		return ""
	}
	return "; to resume: kubectl annotate " + t.names.Singular + " " + obj.GetName() + " -n " + obj.GetNamespace() + " " + AnnotationSuspend + "-"
}

// administrator holds a definition's spec.values as the mirror uses them.
type administrator struct {
	set   map[string]any
	paths []string
}

// adminValues reads the definition's administrator values and locked paths.
func adminValues(t *target) (administrator, error) {
	set, err := lock.Set(t.def)
	if err != nil {
		return administrator{}, err
	}
	paths, err := lock.Paths(t.def)
	if err != nil {
		return administrator{}, err
	}
	return administrator{set: set, paths: paths}, nil
}

// releaseProcessed reports whether helm-controller is done with hr's
// current generation, so that its Ready condition (ready) is the verdict on
// it.
//
// helm-controller moves status.observedGeneration only once a reconcile
// ends; while it retries a failed upgrade, only the conditions say which
// generation they are about, and a failure they report is final for that
// attempt. A success they report is not yet: Flux's patch helper writes a
// status's conditions first and the rest of it (history, inventory) in a
// second request, so a HelmRelease can be Ready=True for the new
// generation while its history still names no deployed release, or the
// previous one. Shown then, the object would be Ready with no version or
// the old one.
func releaseProcessed(hr *helmv2.HelmRelease, ready *metav1.Condition) bool {
	if hr.Status.ObservedGeneration == hr.Generation {
		return true
	}
	return ready != nil && ready.ObservedGeneration == hr.Generation && ready.Status != metav1.ConditionTrue
}
