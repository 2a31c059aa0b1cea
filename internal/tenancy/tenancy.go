// Package tenancy is the operator's multi-tenant release policy: which
// service account a release runs as when its definition names none, and
// whether a HelmRelease may reference a source in another namespace. The
// mirror applies it to every HelmRelease it writes; the definition
// controller reports it in the ReleasesIsolated condition.
//
// It mirrors helm-controller's own multi-tenancy lockdown flags
// (--default-service-account, --no-cross-namespace-refs), so that an
// operator configured like a locked-down Flux writes HelmReleases Flux will
// accept, and says so on each definition instead of failing release by
// release.
package tenancy

import (
	helmv2 "github.com/fluxcd/helm-controller/api/v2"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// Policy is set by operator flags; the zero Policy changes nothing.
type Policy struct {
	// DefaultServiceAccount is the service account (of the object's
	// namespace) helm-controller impersonates for releases of definitions
	// without spec.release.serviceAccountName. Empty: such releases run as
	// helm-controller itself (or helm-controller's own default).
	DefaultServiceAccount string
	// NoCrossNamespaceRefs writes every HelmRelease's chart source reference
	// without a namespace: helm-controller then reads the source of that kind
	// and name in the release's own namespace, as it must when it runs with
	// --no-cross-namespace-refs=true. chartkind itself still reads the chart
	// (for its schema) through the definition's sourceRef namespace.
	NoCrossNamespaceRefs bool
}

// ServiceAccount returns the service account the releases of a definition
// with these release settings run as, and whether it is the operator's
// default rather than the definition's own. "" means helm-controller's
// identity.
func (p Policy) ServiceAccount(rel *v1alpha1.ReleaseSpec) (name string, isDefault bool) {
	if rel.ServiceAccountName != "" {
		return rel.ServiceAccountName, false
	}
	return p.DefaultServiceAccount, p.DefaultServiceAccount != ""
}

// Enforce sets on s what the policy requires of every HelmRelease of a
// definition with release settings rel. It runs after the definition's own
// settings were put back on s, so it also undoes a direct edit of the
// HelmRelease that would escape the policy (a service account removed, a
// source namespace added).
func (p Policy) Enforce(rel *v1alpha1.ReleaseSpec, s *helmv2.HelmReleaseSpec) {
	if sa, isDefault := p.ServiceAccount(rel); isDefault && s.ServiceAccountName != sa {
		s.ServiceAccountName = sa
	}
	if !p.NoCrossNamespaceRefs {
		return
	}
	if s.Chart != nil && s.Chart.Spec.SourceRef.Namespace != "" {
		s.Chart.Spec.SourceRef.Namespace = ""
	}
	if s.ChartRef != nil && s.ChartRef.Namespace != "" {
		s.ChartRef.Namespace = ""
	}
}
