package tenancy

import (
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestWritesHelmReleases(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule rbacv1.PolicyRule
		want bool
	}{
		{"flux-edit", rbacv1.PolicyRule{APIGroups: []string{HelmReleaseGroup, "source.toolkit.fluxcd.io"}, Resources: []string{"*"}, Verbs: []string{"create", "delete", "patch", "update"}}, true},
		{"explicit patch", rbacv1.PolicyRule{APIGroups: []string{HelmReleaseGroup}, Resources: []string{"helmreleases"}, Verbs: []string{"patch"}}, true},
		{"everything", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}, true},
		{"flux-view", rbacv1.PolicyRule{APIGroups: []string{HelmReleaseGroup}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}, false},
		{"status only", rbacv1.PolicyRule{APIGroups: []string{HelmReleaseGroup}, Resources: []string{"helmreleases/status"}, Verbs: []string{"update"}}, false},
		{"other group", rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"*"}, Verbs: []string{"*"}}, false},
		{"named objects only", rbacv1.PolicyRule{APIGroups: []string{HelmReleaseGroup}, Resources: []string{"helmreleases"}, ResourceNames: []string{"x"}, Verbs: []string{"update"}}, false},
	} {
		if got := WritesHelmReleases([]rbacv1.PolicyRule{tc.rule}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPolicyEnforce(t *testing.T) {
	spec := func() *helmv2.HelmReleaseSpec {
		return &helmv2.HelmReleaseSpec{
			Chart:    &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}}},
			ChartRef: &helmv2.CrossNamespaceSourceReference{Kind: "OCIRepository", Name: "oci", Namespace: "flux-system"},
		}
	}
	// The zero policy changes nothing.
	s := spec()
	Policy{}.Enforce(&v1alpha1.ReleaseSpec{}, s)
	if s.ServiceAccountName != "" || s.Chart.Spec.SourceRef.Namespace != "flux-system" || s.ChartRef.Namespace != "flux-system" {
		t.Fatalf("zero policy changed %+v", s)
	}
	p := Policy{DefaultServiceAccount: "releases", NoCrossNamespaceRefs: true}
	s = spec()
	p.Enforce(&v1alpha1.ReleaseSpec{}, s)
	if s.ServiceAccountName != "releases" || s.Chart.Spec.SourceRef.Namespace != "" || s.ChartRef.Namespace != "" {
		t.Fatalf("policy not enforced: %+v", s)
	}
	// The definition's own service account is not replaced.
	s = spec()
	s.ServiceAccountName = "own"
	p.Enforce(&v1alpha1.ReleaseSpec{ServiceAccountName: "own"}, s)
	if s.ServiceAccountName != "own" {
		t.Fatalf("definition's service account replaced: %q", s.ServiceAccountName)
	}
	if sa, def := p.ServiceAccount(&v1alpha1.ReleaseSpec{}); sa != "releases" || !def {
		t.Fatalf("ServiceAccount() = %q, %v", sa, def)
	}
}
