package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// An object becomes a HelmRelease with the definition's release settings, its
// spec as values, chartkind's labels and a controller reference; spec updates
// replace the values; definition-owned fields edited on the HelmRelease are restored.
func TestObjectMirroredToHelmRelease(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("mirrorwidget", "MirrorWidget"))

	obj := createObject(t, def, ns, "alpha", map[string]any{"replicas": int64(2), "size": "1Gi", "extra": "x"})
	hr := waitRelease(t, ns, "mirrorwidget-alpha", nil)

	if got, want := canon(values(hr)), canon(spec(obj)); got != want {
		t.Errorf("values = %s, want %s", got, want)
	}
	for k, v := range map[string]string{mirror.LabelKind: "MirrorWidget", mirror.LabelName: "alpha", mirror.LabelDefinition: "mirrorwidget", "team": "platform"} {
		if hr.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, hr.Labels[k], v)
		}
	}
	ref := metav1.GetControllerOf(hr)
	if ref == nil || ref.UID != obj.GetUID() || ref.Kind != "MirrorWidget" || ref.APIVersion != "apps.chartkind.io/v1alpha1" || ref.Name != "alpha" {
		t.Errorf("controller reference = %+v", ref)
	}
	if hr.Annotations[mirror.AnnotationGeneration] != "1" {
		t.Errorf("generation annotation = %q", hr.Annotations[mirror.AnnotationGeneration])
	}
	if hr.Spec.Chart == nil || hr.Spec.Chart.Spec.Chart != "widget" || hr.Spec.Chart.Spec.Version != "1.x" ||
		hr.Spec.Chart.Spec.SourceRef.Name != "charts" || hr.Spec.Chart.Spec.SourceRef.Namespace != "flux-system" {
		t.Errorf("chart = %+v", hr.Spec.Chart)
	}
	if hr.Spec.Interval.Duration != 5*time.Minute || hr.Spec.Install == nil || hr.Spec.Install.Remediation == nil || hr.Spec.Install.Remediation.Retries != 3 {
		t.Errorf("interval %s install %+v", hr.Spec.Interval.Duration, hr.Spec.Install)
	}
	if hr.Spec.ReleaseName != "mirrorwidget-alpha" {
		t.Errorf("releaseName = %q", hr.Spec.ReleaseName)
	}

	// Spec update: values replaced, the removed field disappears. (The
	// operator may be writing the object's status meanwhile: a conflict is
	// retried, as a user would.)
	testenv.WaitFor(t, timeout, "updating the object's spec", func(ctx context.Context) error {
		obj = mustGetObject(t, def, ns, "alpha")
		obj.Object["spec"] = map[string]any{"replicas": int64(4), "tags": map[string]any{"env": "prod"}}
		return env.Client.Update(ctx, obj)
	})
	hr = waitRelease(t, ns, "mirrorwidget-alpha", func(hr *helmv2.HelmRelease) error {
		if got, want := canon(values(hr)), `{"replicas":4,"tags":{"env":"prod"}}`; got != want {
			return fmt.Errorf("values %s, want %s", got, want)
		}
		if hr.Annotations[mirror.AnnotationGeneration] != "2" {
			return fmt.Errorf("generation annotation %q", hr.Annotations[mirror.AnnotationGeneration])
		}
		return nil
	})

	// Definition-owned fields edited on the HelmRelease are restored.
	hr.Spec.Interval = metav1.Duration{Duration: time.Hour}
	hr.Spec.Chart.Spec.Version = "9.9.9"
	hr.Spec.ServiceAccountName = "" // unset by the definition: stays as the user leaves it
	delete(hr.Labels, mirror.LabelKind)
	hr.Labels["team"] = "hijacked"
	if err := env.Client.Update(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	waitRelease(t, ns, "mirrorwidget-alpha", func(hr *helmv2.HelmRelease) error {
		if hr.Spec.Interval.Duration != 5*time.Minute || hr.Spec.Chart.Spec.Version != "1.x" {
			return fmt.Errorf("interval %s version %s not restored", hr.Spec.Interval.Duration, hr.Spec.Chart.Spec.Version)
		}
		if hr.Labels[mirror.LabelKind] != "MirrorWidget" || hr.Labels["team"] != "platform" {
			return fmt.Errorf("labels not restored: %v", hr.Labels)
		}
		if got := canon(values(hr)); got != `{"replicas":4,"tags":{"env":"prod"}}` {
			return fmt.Errorf("values changed: %s", got)
		}
		return nil
	})

	// An object without spec gets a HelmRelease without values.
	createObject(t, def, ns, "empty", nil)
	waitRelease(t, ns, "mirrorwidget-empty", func(hr *helmv2.HelmRelease) error {
		if len(values(hr)) != 0 {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
}

// HelmRelease status, as helm-controller writes it, is reflected in the
// object's status; observedGeneration waits until the HelmRelease has
// processed the values of the object's generation.
func TestStatusMirrored(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("statuswidget", "StatusWidget"))
	createObject(t, def, ns, "beta", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "statuswidget-beta", nil)

	// Before helm-controller processed it: Ready Unknown, Progressing, no observedGeneration.
	obj := waitObject(t, def, ns, "beta", func(u *unstructured.Unstructured) error {
		c := condition(u, "Ready")
		if c == nil || c["status"] != "Unknown" || c["reason"] != "Progressing" {
			return fmt.Errorf("Ready = %v", c)
		}
		if name, _, _ := unstructured.NestedString(u.Object, "status", "release", "name"); name != "statuswidget-beta" {
			return fmt.Errorf("status.release.name = %q", name)
		}
		return nil
	})
	if og, found, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration"); found && og != 0 {
		t.Errorf("observedGeneration = %d before the HelmRelease processed anything", og)
	}

	// helm-controller installs it.
	setReleaseStatus(t, ns, "statuswidget-beta", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{
			readyCondition(metav1.ConditionTrue, "InstallSucceeded", "Helm install succeeded for release statuswidget-beta.v1 with chart widget@1.2.0"),
			{Type: "Released", Status: metav1.ConditionTrue, Reason: "InstallSucceeded", Message: "installed", LastTransitionTime: metav1.Now()},
		}
		hr.Status.History = helmv2.Snapshots{{Name: "statuswidget-beta", Namespace: ns, Version: 1, Status: "deployed",
			ChartName: "widget", ChartVersion: "1.2.0", AppVersion: "3.1", Digest: "sha256:x", ConfigDigest: "sha256:y",
			FirstDeployed: metav1.Now(), LastDeployed: metav1.Now()}}
		hr.Status.Failures = 1
	})
	waitObject(t, def, ns, "beta", func(u *unstructured.Unstructured) error {
		c := condition(u, "Ready")
		if c == nil || c["status"] != "True" || c["reason"] != "InstallSucceeded" || !strings.Contains(fmt.Sprint(c["message"]), "install succeeded") {
			return fmt.Errorf("Ready = %v", c)
		}
		if r := condition(u, "Released"); r == nil || r["status"] != "True" {
			return fmt.Errorf("Released = %v", r)
		}
		if v, _, _ := unstructured.NestedString(u.Object, "status", "version"); v != "1.2.0" {
			return fmt.Errorf("version = %q", v)
		}
		if v, _, _ := unstructured.NestedString(u.Object, "status", "appVersion"); v != "3.1" {
			return fmt.Errorf("appVersion = %q", v)
		}
		if f, _, _ := unstructured.NestedInt64(u.Object, "status", "failures"); f != 1 {
			return fmt.Errorf("failures = %d", f)
		}
		if og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); og != u.GetGeneration() {
			return fmt.Errorf("observedGeneration = %d, generation %d", og, u.GetGeneration())
		}
		return nil
	})
	out := kubectl(t, "get", "statuswidgets", "-n", ns)
	if !strings.Contains(out, "True") || !strings.Contains(out, "1.2.0") {
		t.Errorf("kubectl get does not show READY and VERSION:\n%s", out)
	}

	// A spec change: until the HelmRelease has processed it, Ready is Unknown
	// and observedGeneration stays at the old generation, even though the old
	// Ready=True is still on the HelmRelease.
	obj = mustGetObject(t, def, ns, "beta")
	obj.Object["spec"] = map[string]any{"replicas": int64(3)}
	if err := env.Client.Update(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	newGen := obj.GetGeneration()
	waitObject(t, def, ns, "beta", func(u *unstructured.Unstructured) error {
		newGen = u.GetGeneration()
		c := condition(u, "Ready")
		if c == nil || c["status"] != "Unknown" || c["reason"] != "Progressing" {
			return fmt.Errorf("Ready = %v", c)
		}
		if og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); og != 1 {
			return fmt.Errorf("observedGeneration = %d, want 1", og)
		}
		return nil
	})
	hr := waitRelease(t, ns, "statuswidget-beta", func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"replicas":3}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
	if hr.Status.ObservedGeneration == hr.Generation {
		t.Fatalf("HelmRelease generation did not change on a values update")
	}
	// helm-controller upgrades, and fails.
	setReleaseStatus(t, ns, "statuswidget-beta", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{
			readyCondition(metav1.ConditionFalse, "UpgradeFailed", "Helm upgrade failed: boom"),
			{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "RetriesExceeded", Message: "retries exhausted", LastTransitionTime: metav1.Now()},
		}
		hr.Status.UpgradeFailures = 2
		failed := *hr.Status.History[0]
		failed.Status, failed.ChartVersion, failed.Version = "failed", "1.3.0", 2
		hr.Status.History = append(helmv2.Snapshots{&failed}, hr.Status.History...)
	})
	waitObject(t, def, ns, "beta", func(u *unstructured.Unstructured) error {
		c := condition(u, "Ready")
		if c == nil || c["status"] != "False" || c["reason"] != "UpgradeFailed" {
			return fmt.Errorf("Ready = %v", c)
		}
		if s := condition(u, "Stalled"); s == nil || s["status"] != "True" {
			return fmt.Errorf("Stalled = %v", s)
		}
		if r := condition(u, "Released"); r != nil {
			return fmt.Errorf("Released still there: %v", r)
		}
		if og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration"); og != newGen {
			return fmt.Errorf("observedGeneration = %d, want %d", og, newGen)
		}
		if v, _, _ := unstructured.NestedString(u.Object, "status", "version"); v != "1.2.0" {
			return fmt.Errorf("version = %q, want the deployed 1.2.0", v)
		}
		if f, _, _ := unstructured.NestedInt64(u.Object, "status", "upgradeFailures"); f != 2 {
			return fmt.Errorf("upgradeFailures = %d", f)
		}
		return nil
	})
}

// Deleting an object deletes its HelmRelease; deleting a HelmRelease deletes its object.
func TestDeletionBothWays(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("deletewidget", "DeleteWidget"))
	a := createObject(t, def, ns, "a", map[string]any{"replicas": int64(1)})
	createObject(t, def, ns, "b", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "deletewidget-a", nil)
	waitRelease(t, ns, "deletewidget-b", nil)
	waitObject(t, def, ns, "b", func(u *unstructured.Unstructured) error {
		if n, _, _ := unstructured.NestedString(u.Object, "status", "release", "name"); n == "" {
			return fmt.Errorf("not linked yet")
		}
		return nil
	})

	if err := env.Client.Delete(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "HelmRelease of deleted object", func(ctx context.Context) error {
		_, err := getRelease(ctx, ns, "deletewidget-a")
		return err
	})

	hr, err := getRelease(context.Background(), ns, "deletewidget-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "object of deleted HelmRelease", func(ctx context.Context) error {
		_, err := getObject(ctx, def, ns, "b")
		return err
	})
	// And it stays gone: no HelmRelease is recreated.
	time.Sleep(short)
	if _, err := getRelease(context.Background(), ns, "deletewidget-b"); !apierrors.IsNotFound(err) {
		t.Errorf("HelmRelease recreated: %v", err)
	}
}

// A HelmRelease created directly for the kind's chart with the kind's prefix
// is adopted: its object is created with spec = values and linked; later
// direct edits of its values update the object's spec.
func TestHelmReleaseAdoptedAndPulled(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("adoptwidget", "AdoptWidget"))

	hr := widgetRelease(ns, "adoptwidget-legacy", `{"replicas": 5, "size": "3Gi"}`)
	if err := env.Client.Create(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	obj := waitObject(t, def, ns, "legacy", func(u *unstructured.Unstructured) error {
		if canon(spec(u)) != `{"replicas":5,"size":"3Gi"}` {
			return fmt.Errorf("spec %s", canon(spec(u)))
		}
		return nil
	})
	hr = waitRelease(t, ns, "adoptwidget-legacy", func(hr *helmv2.HelmRelease) error {
		if ref := metav1.GetControllerOf(hr); ref == nil || ref.UID != obj.GetUID() {
			return fmt.Errorf("not linked: %v", hr.OwnerReferences)
		}
		if hr.Labels[mirror.LabelName] != "legacy" || hr.Spec.Interval.Duration != 5*time.Minute {
			return fmt.Errorf("labels %v interval %s", hr.Labels, hr.Spec.Interval.Duration)
		}
		return nil
	})
	if canon(values(hr)) != `{"replicas":5,"size":"3Gi"}` {
		t.Errorf("values changed by adoption: %s", canon(values(hr)))
	}
	waitEvent(t, ns, obj.GetUID(), mirror.EventAdopted, "Normal")

	// Wait until linked and in step, then edit the HelmRelease's values directly.
	waitObject(t, def, ns, "legacy", func(u *unstructured.Unstructured) error {
		if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
			return fmt.Errorf("no valuesDigest yet")
		}
		return nil
	})
	// kubectl's record of what it applied, which the operator's cache
	// drops: the pull must not drop it from the object.
	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	testenv.WaitFor(t, timeout, "annotating the object as kubectl apply does", func(ctx context.Context) error {
		u := mustGetObject(t, def, ns, "legacy")
		u.SetAnnotations(map[string]string{lastApplied: `{"spec":{"replicas":5}}`})
		return env.Client.Update(ctx, u)
	})
	editValues(t, ns, "adoptwidget-legacy", `{"replicas": 2, "tags": {"owner": "ops"}}`)
	obj = waitObject(t, def, ns, "legacy", func(u *unstructured.Unstructured) error {
		if canon(spec(u)) != `{"replicas":2,"tags":{"owner":"ops"}}` {
			return fmt.Errorf("spec %s", canon(spec(u)))
		}
		return nil
	})
	if got := obj.GetAnnotations()[lastApplied]; got != `{"spec":{"replicas":5}}` {
		t.Errorf("pulling the values into the object changed kubectl's %s to %q", lastApplied, got)
	}
	waitRelease(t, ns, "adoptwidget-legacy", func(hr *helmv2.HelmRelease) error {
		if hr.Annotations[mirror.AnnotationGeneration] != fmt.Sprint(obj.GetGeneration()) {
			return fmt.Errorf("generation annotation %q, object generation %d", hr.Annotations[mirror.AnnotationGeneration], obj.GetGeneration())
		}
		if canon(values(hr)) != `{"replicas":2,"tags":{"owner":"ops"}}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
}

func editValues(t *testing.T, ns, name, raw string) {
	t.Helper()
	testenv.WaitFor(t, timeout, "editing HelmRelease values", func(ctx context.Context) error {
		hr, err := getRelease(ctx, ns, name)
		if err != nil {
			return err
		}
		hr.Spec.Values = &apiextensionsv1.JSON{Raw: []byte(raw)}
		return env.Client.Update(ctx, hr)
	})
}

// When the object and its HelmRelease both changed since they were last in
// step (here while the operator was down), the object wins and a Warning
// event says so.
func TestBothChangedObjectWins(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("conflictwidget", "ConflictWidget"))
	createObject(t, def, ns, "c", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "conflictwidget-c", nil)
	waitObject(t, def, ns, "c", func(u *unstructured.Unstructured) error {
		if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
			return fmt.Errorf("no valuesDigest yet")
		}
		return nil
	})
	op.stop()

	obj := mustGetObject(t, def, ns, "c")
	obj.Object["spec"] = map[string]any{"replicas": int64(3)}
	if err := env.Client.Update(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	editValues(t, ns, "conflictwidget-c", `{"replicas": 4}`)

	op.restart()
	waitRelease(t, ns, "conflictwidget-c", func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"replicas":3}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
	waitEvent(t, ns, obj.GetUID(), mirror.EventConflictObjectWins, "Warning")
	if got := canon(spec(mustGetObject(t, def, ns, "c"))); got != `{"replicas":3}` {
		t.Errorf("object spec = %s", got)
	}
}
