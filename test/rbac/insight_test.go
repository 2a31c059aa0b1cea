package rbac

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// helmRecord is a release record as Helm's secret driver writes it: the
// release as JSON, gzip'ed, base64'ed, under data key "release".
func helmRecord(t *testing.T, ns, release string, version int, notes string) *corev1.Secret {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": release, "namespace": ns, "version": version,
		"info": map[string]any{"status": "deployed", "notes": notes}, "manifest": ""})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", release, version),
			Labels: map[string]string{"owner": "helm", "name": release, "version": fmt.Sprint(version), "status": "deployed"}},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(buf.Bytes()))},
	}
}

// With nothing but its own ClusterRole, the operator reads what a release
// installed (workload health, Services, Secret key names, release notes) and
// shows it on the object; no request is refused (startOperator's cleanup).
// Users act on their release through annotations only if they may update
// their object: a namespace viewer cannot suspend it, an editor can.
func TestReleaseInsightAndOperationsWithOwnRole(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns := newNamespace(t)
	def := createDefinition(t, &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "Shop"},
			Schema:      &apiextensionsv1.JSON{Raw: []byte(`{"type":"object","properties":{"replicas":{"type":"integer"}}}`)},
			Release: v1alpha1.ReleaseSpec{
				Chart: &v1alpha1.ChartTemplate{Name: "shop", Version: "1.x",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}},
			},
		},
	})
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"replicas": int64(1)}}}
	obj.SetGroupVersionKind(mirror.GVK(def))
	obj.SetNamespace(ns)
	obj.SetName("one")
	must(t, env.Client.Create(ctx, obj))
	testenv.WaitFor(t, timeout, "the object's HelmRelease", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-one"}, &helmv2.HelmRelease{})
	})

	// What helm-controller would have installed, and its records.
	labels := map[string]string{"app": "shop-one"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-one"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop"}}}}},
	}
	must(t, env.Client.Create(ctx, dep))
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}}}
	must(t, env.Client.Status().Update(ctx, dep))
	must(t, env.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-one"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}}}))
	must(t, env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-one"},
		Data: map[string][]byte{"password": []byte("s3cr3t-value")}}))
	must(t, env.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-one"}}))
	must(t, env.Client.Create(ctx, helmRecord(t, ns, "shop-one", 1, "Connect to shop-one:8080")))
	testenv.WaitFor(t, timeout, "writing the HelmRelease status", func(ctx context.Context) error {
		hr := &helmv2.HelmRelease{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-one"}, hr); err != nil {
			return err
		}
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.StorageNamespace = ns
		hr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "InstallSucceeded",
			Message: "installed", ObservedGeneration: hr.Generation, LastTransitionTime: metav1.Now()}}
		hr.Status.History = helmv2.Snapshots{{Name: "shop-one", Namespace: ns, Version: 1, Status: "deployed", ChartName: "shop",
			ChartVersion: "1.0.0", Digest: "sha256:x", ConfigDigest: "sha256:y", FirstDeployed: metav1.Now(), LastDeployed: metav1.Now()}}
		hr.Status.Inventory = &helmv2.ResourceInventory{Entries: []helmv2.ResourceRef{
			{ID: ns + "_shop-one_apps_Deployment", Version: "v1"},
			{ID: ns + "_shop-one__Service", Version: "v1"},
			{ID: ns + "_shop-one__Secret", Version: "v1"},
			{ID: ns + "_shop-one__ConfigMap", Version: "v1"},
		}}
		return env.Client.Status().Update(ctx, hr)
	})
	testenv.WaitFor(t, timeout, "Healthy and access information on the object", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		healthy := false
		for _, c := range conds {
			if m := c.(map[string]any); m["type"] == "Healthy" && m["status"] == "True" {
				healthy = true
			}
		}
		if !healthy {
			return fmt.Errorf("not Healthy: %v", conds)
		}
		raw, _ := json.Marshal(obj.Object["status"])
		for _, want := range []string{`"dns":"shop-one.` + ns + `.svc"`, `"keys":["password"]`, `"notes":"Connect to shop-one:8080"`, `"endpoint":"shop-one.` + ns + `.svc:8080"`} {
			if !strings.Contains(string(raw), want) {
				return fmt.Errorf("status lacks %s: %s", want, raw)
			}
		}
		if strings.Contains(string(raw), "s3cr3t") {
			t.Fatalf("a Secret value reached the object's status: %s", raw)
		}
		return nil
	})

	// Operations: a viewer may not set them, an editor may.
	bind(t, ns, "viewer", "view")
	bind(t, ns, "editor", "edit")
	suspend := func(user string) error {
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
		c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(mirror.GVK(def))
		u.SetNamespace(ns)
		u.SetName("one")
		patch := []byte(`{"metadata":{"annotations":{"` + mirror.AnnotationSuspend + `":"true"}}}`)
		return c.Patch(ctx, u, client.RawPatch(types.MergePatchType, patch))
	}
	// The aggregated roles may take a moment to reach the built-in ones.
	testenv.WaitFor(t, timeout, "the viewer to be refused", func(ctx context.Context) error {
		if err := suspend("viewer"); !apierrors.IsForbidden(err) {
			return fmt.Errorf("viewer's annotation: %v, want Forbidden", err)
		}
		return nil
	})
	// Refused by the API server, the annotation never reached the object.
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.GetAnnotations()[mirror.AnnotationSuspend]; ok {
		t.Fatalf("the viewer's annotation is on the object")
	}
	hr := &helmv2.HelmRelease{}
	must(t, env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-one"}, hr))
	if hr.Spec.Suspend {
		t.Fatalf("HelmRelease suspended although only a viewer asked")
	}
	testenv.WaitFor(t, timeout, "the editor's suspension forwarded", func(ctx context.Context) error {
		if err := suspend("editor"); err != nil {
			return err
		}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-one"}, hr); err != nil {
			return err
		}
		if !hr.Spec.Suspend {
			return fmt.Errorf("not suspended yet")
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
