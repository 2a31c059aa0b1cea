package rbac

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/rbac"
	"github.com/chartkind/chartkind/internal/testenv"
)

// redisDefinition serves the Redis kind of examples/charts/redis.
func redisDefinition() *v1alpha1.ApplicationDefinition {
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "redis"},
		Spec: v1alpha1.ApplicationDefinitionSpec{
			Application: v1alpha1.ApplicationNames{Kind: "Redis"},
			Release: v1alpha1.ReleaseSpec{
				Chart: &v1alpha1.ChartTemplate{Name: "redis", Version: ">=0.1.0",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "examples", Namespace: "flux-system"}},
			},
		},
	}
}

// Users bound in a namespace to the built-in edit, admin or view roles get the
// served kind's verbs through chartkind's aggregated roles, and nothing on
// HelmReleases; the roles stay as they are while nothing changes, are
// restored when edited or deleted, and go with the definition.
func TestKindRolesAggregateIntoBuiltInRoles(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	ns, other := newNamespace(t), newNamespace(t)
	def := createDefinition(t, redisDefinition())

	// The three roles, labelled for aggregation and as chartkind's.
	for _, want := range rbac.Desired(def) {
		got := &rbacv1.ClusterRole{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: want.Name}, got); err != nil {
			t.Fatalf("ClusterRole %s: %v", want.Name, err)
		}
		for k, v := range want.Labels {
			if got.Labels[k] != v {
				t.Errorf("ClusterRole %s label %s=%q, want %q", got.Name, k, got.Labels[k], v)
			}
		}
	}

	bind(t, ns, "alice", "edit")
	bind(t, ns, "bob", "view")
	bind(t, ns, "carol", "admin")
	const kindGroup = v1alpha1.DefaultGroup
	redis := func(verb string) access { return access{verb: verb, group: kindGroup, resource: "redises"} }
	redisStatus := func(verb string) access {
		return access{verb: verb, group: kindGroup, resource: "redises", subresource: "status"}
	}
	helmReleases := func(verb string) access {
		return access{verb: verb, group: helmv2.GroupVersion.Group, resource: "helmreleases"}
	}
	type expectation struct {
		user, ns string
		a        access
		allowed  bool
	}
	var want []expectation
	for _, user := range []string{"alice", "carol"} {
		for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection", "get", "list", "watch"} {
			want = append(want, expectation{user, ns, redis(verb), true})
		}
		want = append(want,
			expectation{user, ns, redisStatus("get"), true},     // through view, aggregated into edit
			expectation{user, ns, redisStatus("update"), false}, // status is the operator's
			expectation{user, ns, redisStatus("patch"), false},
			expectation{user, other, redis("create"), false}, // bound in ns only
		)
	}
	for _, verb := range []string{"get", "list", "watch"} {
		want = append(want, expectation{"bob", ns, redis(verb), true}, expectation{"bob", ns, redisStatus(verb), true})
	}
	for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
		want = append(want, expectation{"bob", ns, redis(verb), false})
	}
	want = append(want, expectation{"dave", ns, redis("get"), false}) // bound to nothing
	// HelmReleases are out of reach of every user chartkind's roles serve:
	// they go through the object, whose spec only becomes values.
	for _, user := range []string{"alice", "bob", "carol"} {
		for _, verb := range []string{"create", "update", "patch", "delete", "get"} {
			want = append(want, expectation{user, ns, helmReleases(verb), false})
		}
	}

	check := func(ctx context.Context) error {
		var wrong []string
		for _, e := range want {
			ok, err := allowed(ctx, e.user, e.ns, e.a)
			if err != nil {
				return err
			}
			if ok != e.allowed {
				wrong = append(wrong, fmt.Sprintf("%s may %s in %s: %v, want %v", e.user, e.a, e.ns, ok, e.allowed))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d of %d answers wrong:\n%s", len(wrong), len(want), strings.Join(wrong, "\n"))
		}
		return nil
	}
	// Aggregation is asynchronous (kube-controller-manager).
	testenv.WaitFor(t, timeout, "the kind's roles to be aggregated into admin, edit and view", check)

	// Steady state: reconciling the definition again writes no role. Delete
	// one role (chartkind does not watch roles) and make the definition
	// reconcile: that role comes back, the other two are untouched.
	versions := map[string]string{}
	for _, r := range rbac.Desired(def) {
		got := &rbacv1.ClusterRole{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: r.Name}, got); err != nil {
			t.Fatal(err)
		}
		versions[r.Name] = got.ResourceVersion
	}
	edit := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: rbac.RoleName(def, rbac.Edit)}}
	if err := env.Client.Delete(ctx, edit); err != nil {
		t.Fatal(err)
	}
	touchDefinition(t, def.Name)
	testenv.WaitFor(t, timeout, "the deleted edit role to be recreated", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Name: edit.Name}, &rbacv1.ClusterRole{})
	})
	for _, level := range []string{rbac.Admin, rbac.View} {
		name := rbac.RoleName(def, level)
		got := &rbacv1.ClusterRole{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != versions[name] {
			t.Errorf("ClusterRole %s was written although unchanged (resourceVersion %s → %s)", name, versions[name], got.ResourceVersion)
		}
	}

	// A role widened by hand is put back at the next reconcile.
	view := &rbacv1.ClusterRole{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: rbac.RoleName(def, rbac.View)}, view); err != nil {
		t.Fatal(err)
	}
	view.Rules = append(view.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
	if err := env.Client.Update(ctx, view); err != nil {
		t.Fatal(err)
	}
	touchDefinition(t, def.Name)
	testenv.WaitFor(t, timeout, "the view role to be restored", func(ctx context.Context) error {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: view.Name}, view); err != nil {
			return err
		}
		if len(view.Rules) != 1 {
			return fmt.Errorf("rules %+v", view.Rules)
		}
		return nil
	})
	testenv.WaitFor(t, timeout, "the restored roles to be aggregated", check)

	// The definition goes (deletionPolicy Retain: the CRD and objects stay),
	// and with it the roles and every permission they gave.
	deleteDefinition(t, def.Name)
	for _, r := range rbac.Desired(def) {
		if err := env.Client.Get(ctx, types.NamespacedName{Name: r.Name}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole %s after the definition was deleted: %v", r.Name, err)
		}
	}
	testenv.WaitFor(t, timeout, "the permissions to be gone from admin, edit and view", func(ctx context.Context) error {
		for _, user := range []string{"alice", "bob", "carol"} {
			for _, verb := range []string{"get", "create"} {
				ok, err := allowed(ctx, user, ns, redis(verb))
				if err != nil {
					return err
				}
				if ok {
					return fmt.Errorf("%s may still %s", user, redis(verb))
				}
			}
		}
		return nil
	})
}

// touchDefinition changes an annotation of the definition, which makes the
// definition controller reconcile it.
func touchDefinition(t *testing.T, name string) {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: name}, def); err != nil {
		t.Fatal(err)
	}
	if def.Annotations == nil {
		def.Annotations = map[string]string{}
	}
	def.Annotations["test.chartkind.io/touched"] = time.Now().Format(time.RFC3339Nano)
	if err := env.Client.Update(context.Background(), def); err != nil {
		t.Fatal(err)
	}
}
