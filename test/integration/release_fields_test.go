package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxmeta "github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// allReleaseFields sets every Flux release setting a definition may own.
func allReleaseFields(r *v1alpha1.ReleaseSpec) {
	hist := 3
	r.StorageNamespace = "helm-storage"
	r.MaxHistory = &hist
	r.DependsOn = []helmv2.DependencyReference{{Name: "cnpg", Namespace: "operators"}}
	r.KubeConfig = &fluxmeta.KubeConfigReference{SecretRef: &fluxmeta.SecretKeyReference{Name: "tenant-kubeconfig", Key: "value"}}
	r.DriftDetection = &helmv2.DriftDetection{Mode: helmv2.DriftDetectionEnabled,
		Ignore: []helmv2.IgnoreRule{{Paths: []string{"/spec/replicas"}}}}
	r.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.ready == 'yes'", Failed: "data.ready == 'broken'"}}}
	r.PostRenderers = []helmv2.PostRenderer{{Kustomize: &helmv2.Kustomize{
		Images: []kustomize.Image{{Name: "redis", NewTag: "7.4-hardened"}}}}}
	r.Test = &helmv2.Test{Enable: true}
	r.Rollback = &helmv2.Rollback{CleanupOnFail: true}
	r.Uninstall = &helmv2.Uninstall{KeepHistory: true}
}

// ownedSpec is what of a HelmRelease's spec the new settings cover.
func ownedSpec(s *helmv2.HelmReleaseSpec) []any {
	return []any{s.StorageNamespace, s.MaxHistory, s.DependsOn, s.KubeConfig, s.DriftDetection, s.HealthCheckExprs,
		s.PostRenderers, s.Test, s.Rollback, s.Uninstall}
}

// TestReleaseFieldsMirroredAndRestored: every Flux release setting of the
// definition reaches the HelmRelease as the API server stores it; edits of
// them on the HelmRelease are put back; the operator is quiet afterwards.
func TestReleaseFieldsMirroredAndRestored(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := widgetDefinition("fieldswidget", "FieldsWidget")
	allReleaseFields(&def.Spec.Release)
	def = createDefinition(t, def)
	createObject(t, def, ns, "w1", map[string]any{"replicas": int64(1)})
	rel := "fieldswidget-w1"

	want := &helmv2.HelmReleaseSpec{}
	r := def.Spec.Release // as the API server stored it, defaults included
	want.StorageNamespace, want.MaxHistory, want.DependsOn, want.KubeConfig = r.StorageNamespace, r.MaxHistory, r.DependsOn, r.KubeConfig
	want.DriftDetection, want.HealthCheckExprs, want.PostRenderers = r.DriftDetection, r.HealthCheckExprs, r.PostRenderers
	want.Test, want.Rollback, want.Uninstall = r.Test, r.Rollback, r.Uninstall
	inStep := func(hr *helmv2.HelmRelease) error {
		if !equality.Semantic.DeepEqual(ownedSpec(&hr.Spec), ownedSpec(want)) {
			return fmt.Errorf("HelmRelease settings %+v, want %+v", ownedSpec(&hr.Spec), ownedSpec(want))
		}
		return nil
	}
	waitRelease(t, ns, rel, inStep)

	// Someone edits each setting on the HelmRelease: all are put back.
	hr := waitRelease(t, ns, rel, nil)
	patch := client.MergeFrom(hr.DeepCopy())
	zero := 0
	hr.Spec.StorageNamespace = "elsewhere"
	hr.Spec.MaxHistory = &zero
	hr.Spec.DependsOn = append(hr.Spec.DependsOn, helmv2.DependencyReference{Name: "mine"})
	hr.Spec.KubeConfig = &fluxmeta.KubeConfigReference{SecretRef: &fluxmeta.SecretKeyReference{Name: "my-own-cluster"}}
	hr.Spec.DriftDetection.Mode = helmv2.DriftDetectionDisabled
	hr.Spec.HealthCheckExprs = nil
	hr.Spec.PostRenderers = nil
	hr.Spec.Test.Enable = false
	hr.Spec.Rollback = nil
	hr.Spec.Uninstall.KeepHistory = false
	must(t, env.Client.Patch(context.Background(), hr, patch))
	waitRelease(t, ns, rel, inStep)

	waitCounts(t, def.Name, 1, 0)
	assertNoWrites(t, def, ns, 3*time.Second, "in steady state with every release setting", nil)

	// A changed setting reaches the existing HelmRelease.
	updateDefinition(t, def.Name, func(d *v1alpha1.ApplicationDefinition) {
		d.Spec.Release.DriftDetection.Mode = helmv2.DriftDetectionWarn
		d.Spec.Release.PostRenderers = nil
	})
	waitRelease(t, ns, rel, func(hr *helmv2.HelmRelease) error {
		if hr.Spec.DriftDetection == nil || hr.Spec.DriftDetection.Mode != helmv2.DriftDetectionWarn {
			return fmt.Errorf("driftDetection %+v", hr.Spec.DriftDetection)
		}
		return nil
	})
}

// TestReleaseFieldsRefusedAtAdmission: mistakes in the new settings are
// refused by the API server when the definition is applied, naming the field.
func TestReleaseFieldsRefusedAtAdmission(t *testing.T) {
	neg := -1
	cases := map[string]struct {
		edit func(r *v1alpha1.ReleaseSpec)
		want string
	}{
		"maxHistory": {func(r *v1alpha1.ReleaseSpec) { r.MaxHistory = &neg }, "spec.release.maxHistory"},
		"storageNamespace": {func(r *v1alpha1.ReleaseSpec) { r.StorageNamespace = "Not_A_Namespace" },
			"spec.release.storageNamespace"},
		"dependsOn name": {func(r *v1alpha1.ReleaseSpec) { r.DependsOn = []helmv2.DependencyReference{{Name: ""}} },
			"spec.release.dependsOn[].name must be a HelmRelease name"},
		"dependsOn namespace": {func(r *v1alpha1.ReleaseSpec) {
			r.DependsOn = []helmv2.DependencyReference{{Name: "op", Namespace: strings.Repeat("n", 64)}}
		}, "spec.release.dependsOn[].namespace must be a namespace name"},
		"kubeConfig both": {func(r *v1alpha1.ReleaseSpec) {
			r.KubeConfig = &fluxmeta.KubeConfigReference{SecretRef: &fluxmeta.SecretKeyReference{Name: "a"}, ConfigMapRef: &fluxmeta.LocalObjectReference{Name: "b"}}
		}, "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef"},
		"kubeConfig none": {func(r *v1alpha1.ReleaseSpec) { r.KubeConfig = &fluxmeta.KubeConfigReference{} },
			"exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef"},
		"driftDetection mode": {func(r *v1alpha1.ReleaseSpec) { r.DriftDetection = &helmv2.DriftDetection{Mode: "on"} },
			"spec.release.driftDetection.mode"},
		"healthCheckExprs": {func(r *v1alpha1.ReleaseSpec) {
			r.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap"}}
		}, "spec.release.healthCheckExprs[].current must not be empty"},
		"uninstall deletionPropagation": {func(r *v1alpha1.ReleaseSpec) {
			p := "now"
			r.Uninstall = &helmv2.Uninstall{DeletionPropagation: &p}
		}, "spec.release.uninstall.deletionPropagation"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			def := widgetDefinition("refusedfields", "RefusedFields")
			c.edit(&def.Spec.Release)
			err := env.Client.Create(context.Background(), def)
			if err == nil {
				deleteDefinition(t, def.Name)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want Invalid naming %q", err, c.want)
			}
		})
	}
}

// TestUserDependencies: an object depending on another application object
// gets its HelmRelease in dependsOn; a missing dependency and a cycle are
// clear conditions; a removed annotation clears dependsOn.
func TestUserDependencies(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("depwidget", "DepWidget"))
	ctx := context.Background()
	annotate := func(name, deps string) {
		t.Helper()
		testenv.WaitFor(t, timeout, "annotating "+name, func(ctx context.Context) error {
			u, err := getObject(ctx, def, ns, name)
			if err != nil {
				return err
			}
			ann := u.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			if deps == "" {
				delete(ann, mirror.AnnotationDependsOn)
			} else {
				ann[mirror.AnnotationDependsOn] = deps
			}
			u.SetAnnotations(ann)
			return env.Client.Update(ctx, u)
		})
	}
	waitCond := func(name, typ, status, reason, msg string) {
		t.Helper()
		waitObject(t, def, ns, name, func(u *unstructured.Unstructured) error {
			c := condition(u, typ)
			if c == nil || c["status"] != status || c["reason"] != reason || !strings.Contains(fmt.Sprint(c["message"]), msg) {
				st, _, _ := unstructured.NestedMap(u.Object, "status")
				return fmt.Errorf("%s: %v (status %v, annotations %v)", typ, c, st, u.GetAnnotations())
			}
			return nil
		})
	}

	app := newObject(def, ns, "app", map[string]any{"replicas": int64(1)})
	app.SetAnnotations(map[string]string{mirror.AnnotationDependsOn: "db"})
	must(t, env.Client.Create(ctx, app))
	waitCond("app", "Ready", "False", mirror.ReasonDependencyNotFound, "DepWidget db (annotation apps.chartkind.io/depends-on) does not exist in namespace "+ns)
	waitRelease(t, ns, "depwidget-app", func(hr *helmv2.HelmRelease) error {
		if len(hr.Spec.DependsOn) != 1 || hr.Spec.DependsOn[0].Name != "depwidget-db" {
			return fmt.Errorf("dependsOn %+v", hr.Spec.DependsOn)
		}
		return nil
	})

	// The dependency appears: app waits for it, as helm-controller does.
	createObject(t, def, ns, "db", map[string]any{"replicas": int64(1)})
	waitCond("app", mirror.ConditionDependenciesReady, "False", mirror.ReasonDependencyNotReady, "waiting for DepWidget db (HelmRelease depwidget-db) to be Ready")
	setReleaseStatus(t, ns, "depwidget-db", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		c := readyCondition(metav1.ConditionTrue, "InstallSucceeded", "installed")
		c.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{c}
	})
	// Nothing about app's HelmRelease changed: the periodic recheck notices.
	testenv.WaitFor(t, 45*time.Second, "app's dependencies Ready", func(ctx context.Context) error {
		u, err := getObject(ctx, def, ns, "app")
		if err != nil {
			return err
		}
		if c := condition(u, mirror.ConditionDependenciesReady); c == nil || c["status"] != "True" {
			return fmt.Errorf("DependenciesReady %v", c)
		}
		return nil
	})

	// db depends on app: a cycle, shown on both.
	annotate("db", "DepWidget/app")
	waitCond("db", "Ready", "False", mirror.ReasonDependencyCycle, "DepWidget db → DepWidget app → DepWidget db")
	setReleaseStatus(t, ns, "depwidget-app", func(hr *helmv2.HelmRelease) {
		hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionFalse, "DependencyNotReady", "dependency is not ready")}
	})
	waitCond("app", "Ready", "False", mirror.ReasonDependencyCycle, "DepWidget app → DepWidget db → DepWidget app")
	// Both look at their dependencies again every 15s, reading only.
	waitCounts(t, def.Name, 2, 1)
	assertNoWrites(t, def, ns, 17*time.Second, "while a dependency cycle is shown", nil)

	// An entry naming no kind is refused in the condition.
	annotate("db", "Nosuchkind/x")
	waitCond("db", mirror.ConditionDependenciesReady, "False", mirror.ReasonInvalidDependency, "no ApplicationDefinition serves kind Nosuchkind")

	// Without the annotation, dependsOn and the condition go.
	annotate("db", "")
	annotate("app", "")
	waitRelease(t, ns, "depwidget-app", func(hr *helmv2.HelmRelease) error {
		if len(hr.Spec.DependsOn) != 0 || hr.Annotations[mirror.AnnotationDependsOnForwarded] != "" {
			return fmt.Errorf("dependsOn %+v", hr.Spec.DependsOn)
		}
		return nil
	})
	waitObject(t, def, ns, "app", func(u *unstructured.Unstructured) error {
		if c := condition(u, mirror.ConditionDependenciesReady); c != nil {
			return fmt.Errorf("DependenciesReady still there: %v", c)
		}
		return nil
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
