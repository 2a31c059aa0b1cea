package rbac

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/operator"
	"github.com/chartkind/chartkind/internal/testenv"
)

// fluxEditRole is what Flux's installation adds (flux-edit-flux-system):
// every toolkit resource, aggregated into the built-in admin and edit roles.
func fluxEditRole() *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "flux-edit-test", Labels: map[string]string{
			"rbac.authorization.k8s.io/aggregate-to-admin": "true",
			"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
		}},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io"},
			Resources: []string{"*"},
			Verbs:     []string{"create", "delete", "deletecollection", "patch", "update"},
		}},
	}
}

// TestHelmReleasesWritableByTenants: with Flux's aggregated edit role
// installed, namespace editors may write HelmReleases directly, around every
// definition's service account and locked values; a definition that is
// otherwise isolated says so (ReleasesIsolated=False, HelmReleasesWritable,
// naming the roles, with a Warning event), and turns True again once the
// aggregation is removed (Flux's multi-tenancy lockdown). The operator runs
// with its own RBAC: reading admin and edit is allowed and nothing it does
// here is refused.
func TestHelmReleasesWritableByTenants(t *testing.T) {
	startOperator(t, func(o *operator.Options) { o.NamespaceRolesInterval = 500 * time.Millisecond })
	def := redisDefinition()
	def.Name, def.Spec.Application.Kind = "isoredis", "IsoRedis"
	def.Spec.Release.ServiceAccountName = "redis-deployer"
	createDefinition(t, def)
	waitIsolated(t, def.Name, metav1.ConditionTrue, "ServiceAccount")

	ctx := context.Background()
	role := fluxEditRole()
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), role) })
	// kube-controller-manager aggregates the role into edit and admin one
	// after the other: the condition names edit alone for a moment.
	waitIsolated(t, def.Name, metav1.ConditionFalse, "HelmReleasesWritable", "ClusterRole admin and edit", "lockdown")
	got := &v1alpha1.ApplicationDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: def.Name}, got); err != nil {
		t.Fatal(err)
	}
	if r := meta.FindStatusCondition(got.Status.Conditions, "Ready"); r == nil || r.Status != metav1.ConditionTrue {
		t.Errorf("Ready changed with the isolation: %+v", r)
	}
	waitDefinitionEvent(t, got, "HelmReleasesWritable")

	if err := env.Client.Delete(ctx, role); err != nil {
		t.Fatal(err)
	}
	waitIsolated(t, def.Name, metav1.ConditionTrue, "ServiceAccount")
}

// waitIsolated waits until the definition's ReleasesIsolated condition has
// status and reason, and a message naming each of contains.
func waitIsolated(t *testing.T, name string, status metav1.ConditionStatus, reason string, contains ...string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	testenv.WaitFor(t, timeout, fmt.Sprintf("definition %s: ReleasesIsolated=%s %s", name, status, reason), func(ctx context.Context) error {
		def := &v1alpha1.ApplicationDefinition{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, def); err != nil {
			return err
		}
		c = meta.FindStatusCondition(def.Status.Conditions, "ReleasesIsolated")
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("ReleasesIsolated %+v", c)
		}
		for _, s := range contains {
			if !strings.Contains(c.Message, s) {
				return fmt.Errorf("ReleasesIsolated message does not name %q: %s", s, c.Message)
			}
		}
		return nil
	})
	return c
}

// waitDefinitionEvent waits for a Warning event of reason about def
// (cluster-scoped objects' events go to the default namespace).
func waitDefinitionEvent(t *testing.T, def *v1alpha1.ApplicationDefinition, reason string) {
	t.Helper()
	testenv.WaitFor(t, timeout, "Warning event "+reason, func(ctx context.Context) error {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace("default")); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.UID == def.UID && e.Reason == reason && e.Type == "Warning" {
				return nil
			}
		}
		return fmt.Errorf("no Warning event %s for %s", reason, def.Name)
	})
}
