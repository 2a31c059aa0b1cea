package rbac

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/rbac"
	"github.com/chartkind/chartkind/internal/testenv"
)

// hijackSchema is a chart schema whose values are named like the HelmRelease
// fields a definition owns: a user filling them in must only set values.
const hijackSchema = `{
  "type": "object",
  "properties": {
    "replicas": {"type": "integer"},
    "chart": {"type": "string"},
    "serviceAccountName": {"type": "string"},
    "targetNamespace": {"type": "string"},
    "releaseName": {"type": "string"},
    "interval": {"type": "string"},
    "valuesFrom": {"type": "string"}
  }
}`

// The operator, impersonating its ServiceAccount bound only to config/rbac,
// does its whole job: serves a kind (CRD, aggregated roles, events), mirrors
// an object to a HelmRelease and its status back, deletes an object whose
// HelmRelease was deleted, and finalizes a definition with deletionPolicy
// Delete (CRD, HelmReleases and roles deleted). The cleanup of startOperator
// fails the test if any of its requests was refused. Along the way, an object
// whose values are named like the definition's release settings changes
// nothing but the values.
func TestOperatorRunsWithItsOwnRole(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := newNamespace(t)
	sa := "helm-deployer"
	def := createDefinition(t, &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "vault"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application:    v1alpha1.ApplicationNames{Kind: "Vault"},
			Schema:         &apiextensionsv1.JSON{Raw: []byte(hijackSchema)},
			DeletionPolicy: v1alpha1.DeletionDelete,
			Release: v1alpha1.ReleaseSpec{
				Labels: map[string]string{"team": "platform"},
				Chart: &v1alpha1.ChartTemplate{Name: "vault", Version: "1.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}},
				Interval:           metav1.Duration{Duration: 5 * time.Minute},
				ServiceAccountName: sa,
			},
		},
	})
	crdName := def.Status.CRDName
	for _, r := range rbac.Desired(def) {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: r.Name}, &rbacv1.ClusterRole{}); err != nil {
			t.Errorf("ClusterRole %s: %v", r.Name, err)
		}
	}

	// The Ready transition was recorded as an events.k8s.io Event.
	testenv.WaitFor(t, timeout, "an event about the definition", func(ctx context.Context) error {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "ApplicationDefinition" && e.Regarding.Name == def.Name && e.Reason == "Serving" {
				return nil
			}
		}
		return fmt.Errorf("none among %d events", len(list.Items))
	})

	// A user fills in values named like the release settings, and labels
	// named like chartkind's.
	values := map[string]any{
		"replicas": int64(2), "chart": "evil", "serviceAccountName": "cluster-admin", "targetNamespace": "kube-system",
		"releaseName": "other-release", "interval": "1s", "valuesFrom": "Secret/admin-token",
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": values}}
	obj.SetGroupVersionKind(mirror.GVK(def))
	obj.SetNamespace(ns)
	obj.SetName("one")
	obj.SetLabels(map[string]string{mirror.LabelDefinition: "other", "team": "hijack"})
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	var hr *helmv2.HelmRelease
	testenv.WaitFor(t, timeout, "the object's HelmRelease", func(ctx context.Context) error {
		hr = &helmv2.HelmRelease{}
		return env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vault-one"}, hr)
	})
	var gotValues map[string]any
	if err := json.Unmarshal(hr.Spec.Values.Raw, &gotValues); err != nil {
		t.Fatal(err)
	}
	if len(gotValues) != len(values) || gotValues["chart"] != "evil" || gotValues["serviceAccountName"] != "cluster-admin" {
		t.Errorf("values %v, want the object's spec %v", gotValues, values)
	}
	if hr.Spec.Chart == nil || hr.Spec.Chart.Spec.Chart != "vault" || hr.Spec.Chart.Spec.SourceRef.Name != "charts" ||
		hr.Spec.ServiceAccountName != sa || hr.Spec.TargetNamespace != "" || hr.Spec.ReleaseName != "vault-one" ||
		hr.Spec.Interval.Duration != 5*time.Minute || len(hr.Spec.ValuesFrom) != 0 {
		t.Errorf("HelmRelease settings came from the object: chart %+v serviceAccountName %q targetNamespace %q releaseName %q interval %s valuesFrom %v",
			hr.Spec.Chart, hr.Spec.ServiceAccountName, hr.Spec.TargetNamespace, hr.Spec.ReleaseName, hr.Spec.Interval.Duration, hr.Spec.ValuesFrom)
	}
	if hr.Labels[mirror.LabelDefinition] != def.Name || hr.Labels["team"] != "platform" {
		t.Errorf("HelmRelease labels came from the object: %v", hr.Labels)
	}

	// The object's status links it to the HelmRelease (a status write).
	testenv.WaitFor(t, timeout, "the object's status to name its HelmRelease", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if name, _, _ := unstructured.NestedString(obj.Object, "status", "release", "name"); name != hr.Name {
			return fmt.Errorf("status %v", obj.Object["status"])
		}
		return nil
	})

	// Deleting the HelmRelease deletes the object: the operator's own delete,
	// which no garbage collector would do (the object owns the release, not
	// the other way round).
	if err := env.Client.Delete(ctx, hr); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, timeout, "the object to be deleted with its HelmRelease", func(ctx context.Context) error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopy())
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})

	// A second object, then the definition goes with deletionPolicy Delete:
	// the finalizer deletes the CRD, the HelmReleases and the roles.
	two := obj.DeepCopy()
	two.SetName("two")
	two.SetResourceVersion("")
	two.SetUID("")
	if err := env.Client.Create(ctx, two); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, timeout, "the second object's HelmRelease", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vault-two"}, &helmv2.HelmRelease{})
	})
	deleteDefinition(t, def.Name)
	testenv.WaitFor(t, timeout, "the CRD to be deleted", func(ctx context.Context) error {
		err := env.Client.Get(ctx, types.NamespacedName{Name: crdName}, &apiextensionsv1.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("CRD %s: %v", crdName, err)
	})
	for _, r := range rbac.Desired(def) {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: r.Name}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole %s after the definition was deleted: %v", r.Name, err)
		}
	}
	testenv.WaitFor(t, timeout, "the second object's HelmRelease to be deleted", func(ctx context.Context) error {
		hr := &helmv2.HelmRelease{}
		err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vault-two"}, hr)
		if apierrors.IsNotFound(err) || (err == nil && hr.DeletionTimestamp != nil) {
			return nil
		}
		return fmt.Errorf("HelmRelease vault-two: %v", err)
	})
}
