// Package rbac maintains, for every kind chartkind serves, three ClusterRoles
// that Kubernetes aggregates into its built-in admin, edit and view roles. A
// user who may edit a namespace can then create Postgres objects in it, and a
// user who may view it can read them, with no RBAC work by the administrator
// per kind; when the definition goes, the roles and the permissions go with it.
//
// The roles grant the kind and nothing else: users reach HelmReleases only
// through the mirror, which copies an object's spec into the HelmRelease's
// values and nothing more (see docs/rbac.md).
package rbac

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/crd"
	names "github.com/chartkind/chartkind/internal/definition"
)

// The operator reads, creates, updates and deletes the per-kind roles by name;
// it never lists or watches ClusterRoles, so it holds no list or watch.
//
// Kubernetes lets a user create a role only with permissions the user holds
// (escalation prevention). The operator holds every verb the per-kind roles
// grant on apps.chartkind.io, patch, deletecollection and list/watch of the
// status subresource included, which it never uses itself: holding them costs nothing
// on resources it already fully controls, whereas the alternative, the
// escalate verb on clusterroles, would let it grant anything to anyone.
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;create;update;delete
// +kubebuilder:rbac:groups=apps.chartkind.io,resources=*,verbs=patch;deletecollection
// +kubebuilder:rbac:groups=apps.chartkind.io,resources=*/status,verbs=get;list;watch

// Aggregation labels of the built-in roles (rbac.authorization.k8s.io).
const (
	AggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	AggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	AggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

// Role levels, the last part of each role's name.
const (
	Admin = "admin"
	Edit  = "edit"
	View  = "view"
)

// Verbs granted on the kind.
var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

// RoleName is the name of the kind's ClusterRole for level (admin, edit or
// view), e.g. chartkind:postgreses.apps.chartkind.io:edit. It is derived from
// the CRD name, which is unique among served kinds and immutable.
func RoleName(def *v1alpha1.ApplicationDefinition, level string) string {
	return "chartkind:" + names.Effective(def).CRDName() + ":" + level
}

// Desired returns the kind's admin, edit and view ClusterRoles, in that order.
//
// admin and edit may read and change objects of the kind (not their status,
// which only the operator writes); view may read objects and their status.
// Because Kubernetes aggregates view into edit and edit into admin, every
// level also gets the levels below it.
func Desired(def *v1alpha1.ApplicationDefinition) []*rbacv1.ClusterRole {
	n := names.Effective(def)
	role := func(level, aggregate string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{
				Name: RoleName(def, level),
				Labels: map[string]string{
					crd.ManagedByLabel:  crd.ManagedByValue,
					crd.DefinitionLabel: def.Name,
					aggregate:           "true",
				},
			},
			Rules: rules,
		}
	}
	write := rbacv1.PolicyRule{APIGroups: []string{n.Group}, Resources: []string{n.Plural}, Verbs: writeVerbs}
	read := rbacv1.PolicyRule{APIGroups: []string{n.Group}, Resources: []string{n.Plural, n.Plural + "/status"}, Verbs: readVerbs}
	return []*rbacv1.ClusterRole{
		role(Admin, AggregateToAdmin, write),
		role(Edit, AggregateToEdit, write),
		role(View, AggregateToView, read),
	}
}

// Roles keeps the per-kind ClusterRoles of served kinds; it implements the
// definition controller's KindObserver.
type Roles struct {
	client client.Client
	reader client.Reader
}

// New returns Roles writing through c and reading through r. r should read
// from the API server (a manager's APIReader): a cached reader would make the
// operator watch every ClusterRole in the cluster for three per kind.
func New(c client.Client, r client.Reader) *Roles {
	return &Roles{client: c, reader: r}
}

// KindServed creates or updates the kind's ClusterRoles. When they are as
// wanted it only reads, so calling it on every reconcile writes nothing.
// A ClusterRole of the same name that chartkind did not create for this
// definition is left alone and reported.
func (r *Roles) KindServed(ctx context.Context, def *v1alpha1.ApplicationDefinition, _ *chart.Chart) error {
	for _, want := range Desired(def) {
		if err := r.ensure(ctx, def, want); err != nil {
			return err
		}
	}
	return nil
}

func (r *Roles) ensure(ctx context.Context, def *v1alpha1.ApplicationDefinition, want *rbacv1.ClusterRole) error {
	cur := &rbacv1.ClusterRole{}
	err := r.reader.Get(ctx, types.NamespacedName{Name: want.Name}, cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.client.Create(ctx, want.DeepCopy()); err != nil {
			return fmt.Errorf("creating ClusterRole %s: %w", want.Name, hint(err, def))
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading ClusterRole %s: %w", want.Name, err)
	}
	if !ours(cur, def) {
		return fmt.Errorf("ClusterRole %s already exists and was not created by chartkind for ApplicationDefinition %s: it is not taken over", want.Name, def.Name)
	}
	upd := cur.DeepCopy()
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		upd.Labels[k] = v
	}
	upd.Rules = want.Rules
	upd.AggregationRule = nil
	if equality.Semantic.DeepEqual(cur.Labels, upd.Labels) && equality.Semantic.DeepEqual(cur.Rules, upd.Rules) && cur.AggregationRule == nil {
		return nil
	}
	if err := r.client.Update(ctx, upd); err != nil {
		return fmt.Errorf("updating ClusterRole %s: %w", want.Name, hint(err, def))
	}
	return nil
}

// KindRetired deletes the kind's ClusterRoles, whatever the definition's
// deletionPolicy: with Retain the objects stay, but nothing mirrors them any
// more, so users should not go on creating them.
func (r *Roles) KindRetired(ctx context.Context, def *v1alpha1.ApplicationDefinition) error {
	for _, level := range []string{Admin, Edit, View} {
		name := RoleName(def, level)
		cur := &rbacv1.ClusterRole{}
		err := r.reader.Get(ctx, types.NamespacedName{Name: name}, cur)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("reading ClusterRole %s: %w", name, err)
		case !ours(cur, def):
			continue // someone else's role of the same name: never deleted
		}
		uid := cur.UID
		if err := r.client.Delete(ctx, cur, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting ClusterRole %s: %w", name, err)
		}
	}
	return nil
}

// ours reports whether chartkind created role for def.
func ours(role *rbacv1.ClusterRole, def *v1alpha1.ApplicationDefinition) bool {
	return role.Labels[crd.ManagedByLabel] == crd.ManagedByValue && role.Labels[crd.DefinitionLabel] == def.Name
}

// hint explains the usual cause of a forbidden role write: a kind outside
// apps.chartkind.io whose group the operator was not given rights on, so
// Kubernetes refuses to let it grant them.
func hint(err error, def *v1alpha1.ApplicationDefinition) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	g := names.Effective(def).Group
	if g == v1alpha1.DefaultGroup {
		return err
	}
	return fmt.Errorf("%w (the operator needs the same rights on group %s as on %s: add it to the Helm chart's rbac.extraGroups)", err, g, v1alpha1.DefaultGroup)
}
