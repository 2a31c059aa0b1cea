package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// kstatusOf computes what Flux's Kustomization health checks, kubectl wait
// and CI tools built on kstatus read from the object.
func kstatusOf(t *testing.T, u *unstructured.Unstructured) status.Status {
	t.Helper()
	res, err := status.Compute(u)
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	return res.Status
}

func waitKstatus(t *testing.T, get func(ctx context.Context) (*unstructured.Unstructured, error), want status.Status) {
	t.Helper()
	var last string
	testenv.WaitFor(t, timeout, "kstatus "+string(want), func(ctx context.Context) error {
		u, err := get(ctx)
		if err != nil {
			return err
		}
		res, err := status.Compute(u)
		if err != nil {
			return err
		}
		last = string(res.Status) + ": " + res.Message
		if res.Status != want {
			return fmt.Errorf("kstatus %s", last)
		}
		return nil
	})
}

// Application objects read right with kstatus at every stage: InProgress as
// soon as they exist (before chartkind has written any status), while the
// release is pending, and after a spec change; Current once Ready; Failed
// once the release is stalled.
func TestKstatusStages(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("kstatuswidget", "KstatusWidget"))

	// With the operator stopped nothing writes status: the object as the
	// API server serves it must already be InProgress.
	op.stop()
	created := createObject(t, def, ns, "w", map[string]any{"replicas": int64(1)})
	if got := kstatusOf(t, created); got != status.InProgressStatus {
		t.Errorf("kstatus of the create response = %s, want InProgress (status: %v)", got, created.Object["status"])
	}
	fresh := mustGetObject(t, def, ns, "w")
	if got := kstatusOf(t, fresh); got != status.InProgressStatus {
		t.Fatalf("kstatus of a new object with no status written = %s, want InProgress (status: %v)", got, fresh.Object["status"])
	}
	var list unstructured.UnstructuredList
	list.SetAPIVersion(fresh.GetAPIVersion())
	list.SetKind(fresh.GetKind() + "List")
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || kstatusOf(t, &list.Items[0]) != status.InProgressStatus {
		t.Fatalf("kstatus of the listed object is not InProgress: %v", list.Items)
	}

	op.restart()
	get := func(ctx context.Context) (*unstructured.Unstructured, error) { return getObject(ctx, def, ns, "w") }
	waitRelease(t, ns, "kstatuswidget-w", nil)
	waitObject(t, def, ns, "w", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Ready"); c == nil || c["reason"] != "Progressing" {
			return fmt.Errorf("Ready = %v", c)
		}
		return nil
	})
	if got := kstatusOf(t, mustGetObject(t, def, ns, "w")); got != status.InProgressStatus {
		t.Errorf("kstatus while the release is pending = %s, want InProgress", got)
	}

	// helm-controller writes a status in two requests, its conditions
	// first: Ready=True for the generation, while the reconcile goes on
	// and the history names no deployed release yet. That is not a
	// verdict, or the object would be Ready with no version.
	setReleaseStatus(t, ns, "kstatuswidget-w", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = -1
		ready := readyCondition(metav1.ConditionTrue, "InstallSucceeded", "installed")
		ready.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{ready,
			{Type: "Reconciling", Status: metav1.ConditionTrue, Reason: "Progressing", Message: "Running 'install' action", ObservedGeneration: hr.Generation, LastTransitionTime: metav1.Now()}}
	})
	// The Reconciling condition shown tells the mirror saw that status.
	midway := waitObject(t, def, ns, "w", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Reconciling"); c == nil || c["status"] != "True" {
			return fmt.Errorf("Reconciling = %v", c)
		}
		return nil
	})
	if c := condition(midway, "Ready"); c == nil || c["reason"] != "Progressing" {
		t.Errorf("Ready while helm-controller has written only the conditions of a successful install = %v, want Progressing", c)
	}
	setReleaseStatus(t, ns, "kstatuswidget-w", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "InstallSucceeded", "installed")}
		hr.Status.History = helmv2.Snapshots{{Name: hr.Name, Namespace: ns, Version: 1, Status: "deployed", ChartName: "widget", ChartVersion: "1.2.3",
			ConfigDigest: "sha256:0", FirstDeployed: metav1.Now(), LastDeployed: metav1.Now()}}
	})
	waitKstatus(t, get, status.CurrentStatus)
	if v, _, _ := unstructured.NestedString(mustGetObject(t, def, ns, "w").Object, "status", "version"); v != "1.2.3" {
		t.Errorf("status.version once Ready = %q, want the deployed chart version 1.2.3", v)
	}

	// A spec change is InProgress until the release has processed it.
	var obj *unstructured.Unstructured
	testenv.WaitFor(t, timeout, "editing the object", func(ctx context.Context) error {
		var err error
		if obj, err = getObject(ctx, def, ns, "w"); err != nil {
			return err
		}
		obj.Object["spec"] = map[string]any{"replicas": int64(2)}
		return env.Client.Update(ctx, obj)
	})
	if got := kstatusOf(t, obj); got != status.InProgressStatus {
		t.Errorf("kstatus right after a spec change = %s, want InProgress", got)
	}
	waitKstatus(t, get, status.InProgressStatus)
	// The failed upgrade below is helm-controller's verdict on the
	// HelmRelease that carries the new values: written before the mirror
	// updated it, it would be about the old generation, and rightly not
	// count (the race CI met on a loaded machine).
	waitRelease(t, ns, "kstatuswidget-w", func(hr *helmv2.HelmRelease) error {
		if got, want := hr.Annotations[mirror.AnnotationGeneration], fmt.Sprint(obj.GetGeneration()); got != want {
			return fmt.Errorf("HelmRelease for generation %s, want %s", got, want)
		}
		return nil
	})

	setReleaseStatus(t, ns, "kstatuswidget-w", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{
			readyCondition(metav1.ConditionFalse, "UpgradeFailed", "Helm upgrade failed: timeout waiting for: [Deployment/x/y status: 'InProgress']"),
			{Type: "Stalled", Status: metav1.ConditionTrue, Reason: "RetriesExceeded", Message: "Failed to upgrade after 1 attempt(s)", LastTransitionTime: metav1.Now()},
		}
	})
	waitKstatus(t, get, status.FailedStatus)
	// The user is told how to retry, since they may not touch the HelmRelease.
	u := mustGetObject(t, def, ns, "w")
	msg := fmt.Sprint(condition(u, "Ready")["message"])
	for _, want := range []string{"to retry", "kubectl annotate kstatuswidget w -n " + ns, meta.ReconcileRequestAnnotation + "=$T", meta.ForceRequestAnnotation + "=$T"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Ready message of a stalled release lacks %q: %s", want, msg)
		}
	}
}

// Users who may update their object reconcile, retry, suspend and resume its
// release through annotations; an administrator's own suspension of the
// HelmRelease is not undone.
func TestOperationsThroughAnnotations(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("opswidget", "OpsWidget"))
	createObject(t, def, ns, "o", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "opswidget-o", nil)

	annotate := func(kv map[string]any) {
		t.Helper()
		u := newObject(def, ns, "o", nil)
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": kv}})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Patch(ctx, u, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
	}

	// Reconcile now, force, reset: forwarded as they are.
	annotate(map[string]any{
		meta.ReconcileRequestAnnotation: "r1",
		meta.ForceRequestAnnotation:     "r1",
		helmv2.ResetRequestAnnotation:   "r1",
	})
	waitRelease(t, ns, "opswidget-o", func(hr *helmv2.HelmRelease) error {
		for _, k := range []string{meta.ReconcileRequestAnnotation, meta.ForceRequestAnnotation, helmv2.ResetRequestAnnotation} {
			if hr.Annotations[k] != "r1" {
				return fmt.Errorf("annotation %s = %q", k, hr.Annotations[k])
			}
		}
		return nil
	})
	setReleaseStatus(t, ns, "opswidget-o", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.LastHandledReconcileAt = "r1"
		hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "UpgradeSucceeded", "upgraded")}
	})
	waitObject(t, def, ns, "o", func(u *unstructured.Unstructured) error {
		if v, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledReconcileAt"); v != "r1" {
			return fmt.Errorf("status.lastHandledReconcileAt = %q", v)
		}
		return nil
	})

	// Suspend and resume.
	annotate(map[string]any{mirror.AnnotationSuspend: "true"})
	waitRelease(t, ns, "opswidget-o", func(hr *helmv2.HelmRelease) error {
		if !hr.Spec.Suspend {
			return fmt.Errorf("not suspended")
		}
		return nil
	})
	waitObject(t, def, ns, "o", func(u *unstructured.Unstructured) error {
		c := condition(u, "Suspended")
		if c == nil || c["status"] != "True" || !strings.Contains(fmt.Sprint(c["message"]), "to resume") {
			return fmt.Errorf("Suspended = %v", c)
		}
		return nil
	})
	annotate(map[string]any{mirror.AnnotationSuspend: nil})
	waitRelease(t, ns, "opswidget-o", func(hr *helmv2.HelmRelease) error {
		if hr.Spec.Suspend {
			return fmt.Errorf("still suspended")
		}
		return nil
	})
	waitObject(t, def, ns, "o", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Suspended"); c != nil {
			return fmt.Errorf("Suspended = %v", c)
		}
		return nil
	})

	// The administrator suspends the HelmRelease itself (flux suspend): an
	// unrelated change to the object does not resume it.
	testenv.WaitFor(t, timeout, "suspending the HelmRelease", func(ctx context.Context) error {
		hr, err := getRelease(ctx, ns, "opswidget-o")
		if err != nil {
			return err
		}
		hr.Spec.Suspend = true
		return env.Client.Update(ctx, hr)
	})
	testenv.WaitFor(t, timeout, "editing the object", func(ctx context.Context) error {
		obj, err := getObject(ctx, def, ns, "o")
		if err != nil {
			return err
		}
		obj.Object["spec"] = map[string]any{"replicas": int64(5)}
		return env.Client.Update(ctx, obj)
	})
	hr := waitRelease(t, ns, "opswidget-o", func(hr *helmv2.HelmRelease) error {
		if canon(values(hr)) != `{"replicas":5}` {
			return fmt.Errorf("values %s", canon(values(hr)))
		}
		return nil
	})
	if !hr.Spec.Suspend {
		t.Errorf("the administrator's suspension was undone by a values change")
	}
}
