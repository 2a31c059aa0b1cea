package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/testenv"
)

// escalatingSpec is bitnami nginx values whose extraDeploy renders a
// ClusterRoleBinding of user to cluster-admin: a value the chart offers.
func escalatingSpec(user string) map[string]any {
	return map[string]any{
		"service": map[string]any{"type": "ClusterIP"},
		"extraDeploy": []any{map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": "escalate-" + user},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
			"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}},
		}},
	}
}

func (e *realEnv) canDoAnything(t *testing.T, user string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}}}
	must(t, e.Client.Create(context.Background(), sar))
	return sar.Status.Allowed
}

// asUser is a client that acts as user (impersonation), as kubectl would for them.
func (e *realEnv) asUser(t *testing.T, user string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: e.Scheme})
	must(t, err)
	return c
}

func (e *realEnv) nginxDefinition(t *testing.T, name, kind, prefix, serviceAccount string, values *v1alpha1.AdministratorValues) {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: kind},
			Release: v1alpha1.ReleaseSpec{
				Prefix:             prefix,
				Interval:           metav1.Duration{Duration: time.Hour},
				Timeout:            &metav1.Duration{Duration: 45 * time.Second},
				ServiceAccountName: serviceAccount,
				Chart: &v1alpha1.ChartTemplate{Name: "nginx", Version: "*",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: e.repo.Name, Namespace: e.ns}},
			},
			Values: values,
		},
	}
	must(t, e.Client.Create(context.Background(), def))
	e.WaitForReady(t, def, stepTimeout)
}

// A user who may only edit one namespace creates an application whose chart
// value renders a ClusterRoleBinding. With helm-controller's own identity the
// binding is created and the user can do anything (the hazard is real); with
// the definition's serviceAccountName (helm-controller impersonates it, as in
// Flux multi-tenancy) the release cannot create cluster-scoped objects, and
// the user's object says so.
func realChartEscalation(t *testing.T, e *realEnv) {
	ctx := context.Background()
	const tenant, user = "tenant-a", "mallory"
	must(t, e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenant}}))
	must(t, e.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: user + "-edit"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}))
	if e.canDoAnything(t, user) {
		t.Fatalf("%s can do anything before the test", user)
	}

	done := step(t, "with helm-controller's own identity, a namespace editor's chart value binds them to cluster-admin")
	e.nginxDefinition(t, "opennginx", "OpenNginx", "open-", "", nil)
	mallory := e.asUser(t, user)
	open := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "OpenNginx",
		"metadata": map[string]any{"name": "x", "namespace": tenant}, "spec": escalatingSpec(user)}}
	testenv.WaitFor(t, stepTimeout, user+" may create OpenNginx (aggregated edit role)", func(ctx context.Context) error {
		return mallory.Create(ctx, open.DeepCopy())
	})
	testenv.WaitFor(t, stepTimeout, "the ClusterRoleBinding rendered from extraDeploy", func(ctx context.Context) error {
		return e.Client.Get(ctx, types.NamespacedName{Name: "escalate-" + user}, &rbacv1.ClusterRoleBinding{})
	})
	if !e.canDoAnything(t, user) {
		t.Errorf("the ClusterRoleBinding exists but %s cannot do anything", user)
	}
	t.Logf("hazard shown: %s, bound only to edit in %s, is cluster-admin through a chart value", user, tenant)
	must(t, e.Client.Delete(ctx, open))
	testenv.WaitFor(t, stepTimeout, "uninstall to remove the binding", func(ctx context.Context) error {
		err := e.Client.Get(ctx, types.NamespacedName{Name: "escalate-" + user}, &rbacv1.ClusterRoleBinding{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	done()

	done = step(t, "with extraDeploy locked, the API server refuses the same object at create, naming the path and the definition")
	e.nginxDefinition(t, "lockednginx", "LockedNginx", "locked-", "", &v1alpha1.AdministratorValues{Locked: []string{"extraDeploy"}})
	refused := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "LockedNginx",
		"metadata": map[string]any{"name": "z", "namespace": tenant}, "spec": escalatingSpec(user)}}
	var createErr error
	testenv.WaitFor(t, stepTimeout, user+" may create LockedNginx, and the create is refused as invalid", func(ctx context.Context) error {
		createErr = mallory.Create(ctx, refused.DeepCopy())
		if apierrors.IsInvalid(createErr) {
			return nil
		}
		if createErr == nil {
			return fmt.Errorf("LockedNginx with extraDeploy was accepted")
		}
		return createErr // Forbidden until the kind's role aggregates into edit
	})
	if msg := createErr.Error(); !strings.Contains(msg, "spec.extraDeploy is locked") || !strings.Contains(msg, "ApplicationDefinition lockednginx") {
		t.Errorf("refusal does not name the locked path and the definition: %v", msg)
	}
	t.Logf("refused at create: %v", createErr)
	if err := e.Client.Get(ctx, types.NamespacedName{Namespace: tenant, Name: "locked-z"}, &helmv2.HelmRelease{}); !apierrors.IsNotFound(err) {
		t.Errorf("a HelmRelease exists for the refused object: %v", err)
	}
	// The same object without the locked value is accepted and installs.
	allowed := refused.DeepCopy()
	unstructured.RemoveNestedField(allowed.Object, "spec", "extraDeploy")
	must(t, mallory.Create(ctx, allowed))
	e.waitConditionIn(t, tenant, allowed, "Ready", "True")
	if e.canDoAnything(t, user) {
		t.Errorf("%s can do anything through the locked kind", user)
	}
	must(t, e.Client.Delete(ctx, allowed))
	done()

	done = step(t, "with serviceAccountName, the same value fails the release and the object says why")
	// The tenant's deployer may do anything in its namespace, nothing else.
	must(t, e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "deployer"}}))
	must(t, e.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "deployer-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "deployer", Namespace: tenant}}}))
	e.nginxDefinition(t, "tenantnginx", "TenantNginx", "tenant-", "deployer", nil)
	locked := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "TenantNginx",
		"metadata": map[string]any{"name": "y", "namespace": tenant}, "spec": escalatingSpec(user)}}
	testenv.WaitFor(t, stepTimeout, user+" may create TenantNginx", func(ctx context.Context) error {
		return mallory.Create(ctx, locked.DeepCopy())
	})
	u := e.waitConditionIn(t, tenant, locked, "Ready", "False", "forbidden", "clusterrolebindings")
	t.Logf("Ready of the refused release: %v", conditionOf(u, "Ready")["message"])
	if err := e.Client.Get(ctx, types.NamespacedName{Name: "escalate-" + user}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRoleBinding created through the impersonated release: %v", err)
	}
	if e.canDoAnything(t, user) {
		t.Errorf("%s can do anything through the impersonated release", user)
	}
	if !strings.Contains(fmt.Sprint(conditionOf(u, "Ready")["message"]), "system:serviceaccount:"+tenant+":deployer") {
		t.Errorf("the message does not name the identity the release ran as: %v", conditionOf(u, "Ready")["message"])
	}
	must(t, e.Client.Delete(ctx, locked))
	done()
}
