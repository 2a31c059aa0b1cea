package definition

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// ConditionReleasesIsolated says whether a tenant who may create objects of
// the kind is confined to what the kind's releases may do: the releases run
// as a service account of the object's namespace (helm-controller
// impersonates it) rather than as helm-controller itself, and tenants cannot
// write HelmReleases directly around chartkind. It does not change Ready: the
// kind is served either way.
const ConditionReleasesIsolated = "ReleasesIsolated"

// Reasons of the ReleasesIsolated condition.
const (
	// ReasonServiceAccount: the definition's spec.release.serviceAccountName.
	ReasonServiceAccount = "ServiceAccount"
	// ReasonDefaultServiceAccount: the operator's --default-service-account.
	ReasonDefaultServiceAccount = "DefaultServiceAccount"
	// ReasonNoServiceAccount: releases run as helm-controller.
	ReasonNoServiceAccount = "NoServiceAccount"
	// ReasonHelmReleasesWritable: namespace roles (edit, admin) let tenants
	// create HelmReleases themselves, with any chart and service account.
	ReasonHelmReleasesWritable = "HelmReleasesWritable"
)

// isolation is the ReleasesIsolated condition of def.
func (r *Reconciler) isolation(def *v1alpha1.ApplicationDefinition) metav1.Condition {
	sa, isDefault := r.Policy.ServiceAccount(&def.Spec.Release)
	if sa == "" {
		return metav1.Condition{Type: ConditionReleasesIsolated, Status: metav1.ConditionFalse, Reason: ReasonNoServiceAccount, Message: NoServiceAccountWarning(def.Name)}
	}
	if r.HelmReleaseWriters != nil {
		writers, known := r.HelmReleaseWriters()
		if known && len(writers) > 0 {
			return metav1.Condition{Type: ConditionReleasesIsolated, Status: metav1.ConditionFalse, Reason: ReasonHelmReleasesWritable,
				Message: HelmReleasesWritableWarning(writers)}
		}
		// Not read yet (the operator just started): keep what the last
		// reading said, rather than flip to True and back with two writes
		// and a Warning event on every restart.
		if c := meta.FindStatusCondition(def.Status.Conditions, ConditionReleasesIsolated); !known && c != nil && c.Reason == ReasonHelmReleasesWritable {
			return *c
		}
	}
	from, reason := "spec.release.serviceAccountName", ReasonServiceAccount
	if isDefault {
		from, reason = "the operator's --default-service-account", ReasonDefaultServiceAccount
	}
	return metav1.Condition{Type: ConditionReleasesIsolated, Status: metav1.ConditionTrue, Reason: reason,
		Message: fmt.Sprintf("releases run as service account %s of each object's namespace (%s; helm-controller impersonates it): they can create only what it may", sa, from)}
}

// NoServiceAccountWarning names the risk of a definition without
// spec.release.serviceAccountName; `chartkind generate` and `validate` print it too.
func NoServiceAccountWarning(definition string) string {
	return fmt.Sprintf("definition %s sets no spec.release.serviceAccountName, so its releases run with helm-controller's own identity "+
		"(unless chartkind or helm-controller runs with --default-service-account): a user who may create objects of this kind can make helm-controller "+
		"create any object its ClusterRole allows, e.g. a ClusterRoleBinding to cluster-admin through a chart value such as extraDeploy; "+
		"set spec.release.serviceAccountName to a service account with only the rights the chart needs (docs/security.md)", definition)
}

// HelmReleasesWritableWarning names the risk of namespace roles that let
// tenants write HelmReleases.
func HelmReleasesWritableWarning(roles []string) string {
	return fmt.Sprintf("ClusterRole %s lets users write HelmReleases in their namespaces (Flux's aggregated flux-edit role does this): "+
		"a tenant can create a HelmRelease with any chart and service account, bypassing this definition's service account and locked values; "+
		"remove Flux's aggregation into admin and edit (Flux multi-tenancy lockdown, docs/security.md)", strings.Join(roles, " and "))
}

// allDefinitions maps any event to every definition.
func (r *Reconciler) allDefinitions(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.ApplicationDefinitionList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
	}
	return out
}
