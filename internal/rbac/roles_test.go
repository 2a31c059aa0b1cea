package rbac

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func definition(name, kind, group string) *v1alpha1.ApplicationDefinition {
	return &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: kind, Group: group}},
	}
}

// writeCounter is a fake client that counts the writes made through it.
type writeCounter struct {
	client.WithWatch
	writes atomic.Int32
}

func newClient(t *testing.T, objs ...client.Object) *writeCounter {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	w := &writeCounter{}
	count := func() { w.writes.Add(1) }
	w.WithWatch = fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			count()
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			count()
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, o, opts...)
		},
	}).Build()
	return w
}

func getRole(t *testing.T, c client.Client, name string) *rbacv1.ClusterRole {
	t.Helper()
	r := &rbacv1.ClusterRole{}
	if err := c.Get(context.Background(), types.NamespacedName{Name: name}, r); err != nil {
		t.Fatalf("getting ClusterRole %s: %v", name, err)
	}
	return r
}

func TestDesiredRoles(t *testing.T) {
	def := definition("pg", "Postgres", "")
	roles := Desired(def)
	if len(roles) != 3 {
		t.Fatalf("got %d roles, want 3", len(roles))
	}
	want := []struct {
		name, aggregate string
		verbs           []string
		resources       []string
	}{
		{"chartkind:postgreses.apps.chartkind.io:admin", AggregateToAdmin, writeVerbs, []string{"postgreses"}},
		{"chartkind:postgreses.apps.chartkind.io:edit", AggregateToEdit, writeVerbs, []string{"postgreses"}},
		{"chartkind:postgreses.apps.chartkind.io:view", AggregateToView, readVerbs, []string{"postgreses", "postgreses/status"}},
	}
	for i, w := range want {
		r := roles[i]
		if r.Name != w.name {
			t.Errorf("role %d name %q, want %q", i, r.Name, w.name)
		}
		if r.Labels[w.aggregate] != "true" || r.Labels["app.kubernetes.io/managed-by"] != "chartkind" || r.Labels["chartkind.io/definition"] != "pg" {
			t.Errorf("role %s labels %v", r.Name, r.Labels)
		}
		// Exactly one aggregation label: a view role aggregated into edit
		// directly would be harmless, but an edit role in view would not.
		n := 0
		for k := range r.Labels {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("role %s has %d aggregation labels", r.Name, n)
		}
		if len(r.Rules) != 1 {
			t.Fatalf("role %s has %d rules", r.Name, len(r.Rules))
		}
		rule := r.Rules[0]
		if !slices.Equal(rule.APIGroups, []string{"apps.chartkind.io"}) || !slices.Equal(rule.Resources, w.resources) || !slices.Equal(rule.Verbs, w.verbs) {
			t.Errorf("role %s rule %+v", r.Name, rule)
		}
		if len(rule.ResourceNames) != 0 || len(rule.NonResourceURLs) != 0 {
			t.Errorf("role %s rule %+v grants more than the kind", r.Name, rule)
		}
	}
	// view never grants writes; no role grants the status subresource's writes.
	for _, r := range roles {
		for _, rule := range r.Rules {
			for _, res := range rule.Resources {
				if strings.HasSuffix(res, "/status") && slices.ContainsFunc(rule.Verbs, func(v string) bool { return !slices.Contains(readVerbs, v) }) {
					t.Errorf("role %s may write %s", r.Name, res)
				}
			}
		}
	}
}

func TestDesiredRolesFollowGroupAndPlural(t *testing.T) {
	def := definition("cache", "Cache", "db.example.com")
	def.Spec.Application.Plural = "caches"
	r := Desired(def)[2]
	if r.Name != "chartkind:caches.db.example.com:view" || r.Rules[0].APIGroups[0] != "db.example.com" || r.Rules[0].Resources[0] != "caches" {
		t.Errorf("role %s rules %+v", r.Name, r.Rules)
	}
}

// KindServed creates the roles once; calling it again writes nothing; a role
// edited by someone is put back; KindRetired deletes them.
func TestKindServedIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	roles := New(c, c)
	def := definition("pg", "Postgres", "")

	if err := roles.KindServed(ctx, def, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.writes.Load(); got != 3 {
		t.Errorf("first KindServed made %d writes, want 3 creates", got)
	}
	for _, want := range Desired(def) {
		got := getRole(t, c, want.Name)
		if got.Labels[AggregateToAdmin]+got.Labels[AggregateToEdit]+got.Labels[AggregateToView] != "true" || len(got.Rules) != 1 {
			t.Errorf("role %s: labels %v rules %v", got.Name, got.Labels, got.Rules)
		}
	}

	c.writes.Store(0)
	for range 3 {
		if err := roles.KindServed(ctx, def, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.writes.Load(); got != 0 {
		t.Errorf("KindServed with nothing changed made %d writes", got)
	}

	// Someone widens the edit role and drops its aggregation label; a label
	// of their own stays.
	edit := getRole(t, c, RoleName(def, Edit))
	edit.Rules[0].Verbs = []string{"*"}
	delete(edit.Labels, AggregateToEdit)
	edit.Labels["team"] = "platform"
	if err := c.WithWatch.Update(ctx, edit); err != nil {
		t.Fatal(err)
	}
	c.writes.Store(0)
	if err := roles.KindServed(ctx, def, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.writes.Load(); got != 1 {
		t.Errorf("restoring one role made %d writes, want 1", got)
	}
	edit = getRole(t, c, RoleName(def, Edit))
	if !slices.Equal(edit.Rules[0].Verbs, writeVerbs) || edit.Labels[AggregateToEdit] != "true" || edit.Labels["team"] != "platform" {
		t.Errorf("edit role not restored: labels %v rules %+v", edit.Labels, edit.Rules)
	}

	if err := roles.KindRetired(ctx, def); err != nil {
		t.Fatal(err)
	}
	for _, want := range Desired(def) {
		err := c.Get(ctx, types.NamespacedName{Name: want.Name}, &rbacv1.ClusterRole{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole %s after KindRetired: %v", want.Name, err)
		}
	}
	// Retiring twice (the finalizer may run again) is fine.
	if err := roles.KindRetired(ctx, def); err != nil {
		t.Errorf("second KindRetired: %v", err)
	}
}

// A ClusterRole of the same name that chartkind did not make for this
// definition is neither taken over nor deleted.
func TestForeignRoleLeftAlone(t *testing.T) {
	ctx := context.Background()
	def := definition("pg", "Postgres", "")
	foreign := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName(def, View), Labels: map[string]string{"app.kubernetes.io/managed-by": "chartkind", "chartkind.io/definition": "other"}},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
	}
	c := newClient(t, foreign)
	roles := New(c, c)
	err := roles.KindServed(ctx, def, nil)
	if err == nil || !strings.Contains(err.Error(), "not taken over") {
		t.Fatalf("KindServed over a foreign role: %v", err)
	}
	if err := roles.KindRetired(ctx, def); err != nil {
		t.Fatal(err)
	}
	got := getRole(t, c, RoleName(def, View))
	if got.Labels["chartkind.io/definition"] != "other" || got.Rules[0].Resources[0] != "secrets" {
		t.Errorf("foreign role changed: %+v", got)
	}
}

// A forbidden write for a kind outside apps.chartkind.io says what to do.
func TestForbiddenNamesExtraGroups(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}, "x", nil)
	c := fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error { return forbidden },
	}).Build()
	err := New(c, c).KindServed(ctx, definition("cache", "Cache", "db.example.com"), nil)
	if err == nil || !strings.Contains(err.Error(), "rbac.extraGroups") || !strings.Contains(err.Error(), "db.example.com") || !apierrors.IsForbidden(err) {
		t.Errorf("error %v", err)
	}
	err = New(c, c).KindServed(ctx, definition("pg", "Postgres", ""), nil)
	if err == nil || strings.Contains(err.Error(), "extraGroups") {
		t.Errorf("error for the default group %v", err)
	}
}
