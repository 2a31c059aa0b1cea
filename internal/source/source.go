// Package source reads a definition's chart through Flux: it describes the
// HelmChart chartkind asks source-controller to build for a definition, picks
// the artifact a definition's chart comes from, and downloads, verifies and
// loads that artifact. It never talks to a chart repository itself: Flux holds
// the credentials, the version resolution and the caching, and chartkind reads
// exactly the chart helm-controller will install.
package source

import (
	"fmt"
	"strings"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// Labels on the HelmChart chartkind creates for a definition.
const (
	ManagedByLabel  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "chartkind"
	DefinitionLabel = "chartkind.io/definition"
)

// DefaultInterval is how often source-controller looks for a new chart
// version when the definition's release sets no interval.
const DefaultInterval = 10 * time.Minute

// Reasons say why the chart could not be read; the definition controller
// reports them as its Ready reason.
const (
	// ReasonSourceNotFound: the Flux source (or the referenced HelmChart or
	// OCIRepository) does not exist, or the reference is incomplete.
	ReasonSourceNotFound = "SourceNotFound"
	// ReasonArtifactNotReady: source-controller has not produced the chart
	// artifact yet, or reports a failure producing it.
	ReasonArtifactNotReady = "ArtifactNotReady"
	// ReasonArtifactFailed: the artifact could not be downloaded, its digest
	// does not match, or it is not a loadable chart of acceptable size.
	ReasonArtifactFailed = "ArtifactFailed"
)

// Error is a chart that cannot be read from its source, with the reason to
// report. Transient errors are retried with backoff; the others wait for the
// source to change.
type Error struct {
	Reason    string
	Transient bool
	Err       error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(reason string, transient bool, format string, args ...any) *Error {
	return &Error{Reason: reason, Transient: transient, Err: fmt.Errorf(format, args...)}
}

// HelmChartName is the name of the HelmChart chartkind keeps for a
// definition, in the namespace of the definition's source.
func HelmChartName(def *v1alpha1.ApplicationDefinition) string {
	name := "chartkind-" + def.Name
	if len(name) > validation.DNS1123SubdomainMaxLength {
		name = name[:validation.DNS1123SubdomainMaxLength]
	}
	return strings.TrimRight(name, "-.")
}

// DesiredHelmChart is the HelmChart that makes source-controller build the
// chart named by the definition's spec.release.chart, the same way
// helm-controller does for a HelmRelease's chart template. It returns an error
// when the definition has no chart template or its source has no namespace
// (the definition is cluster-scoped, so there is no namespace to default to).
func DesiredHelmChart(def *v1alpha1.ApplicationDefinition) (*sourcev1.HelmChart, error) {
	ct := def.Spec.Release.Chart
	if ct == nil {
		return nil, fmt.Errorf("ApplicationDefinition %s: spec.release.chart is not set", def.Name)
	}
	ns := ct.SourceRef.Namespace
	if ns == "" {
		return nil, fmt.Errorf("ApplicationDefinition %s: spec.release.chart.sourceRef.namespace is required to read the chart through Flux (the definition is cluster-scoped); or give the schema inline in spec.schema", def.Name)
	}
	version := ct.Version
	if version == "" {
		version = "*"
	}
	interval := def.Spec.Release.Interval
	if interval.Duration == 0 {
		interval = metav1.Duration{Duration: DefaultInterval}
	}
	kind := ct.SourceRef.Kind
	if kind == "" {
		kind = sourcev1.HelmRepositoryKind
	}
	hc := &sourcev1.HelmChart{
		TypeMeta: metav1.TypeMeta{APIVersion: sourcev1.GroupVersion.String(), Kind: sourcev1.HelmChartKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      HelmChartName(def),
			Namespace: ns,
			Labels:    map[string]string{ManagedByLabel: ManagedByValue, DefinitionLabel: def.Name},
		},
		Spec: sourcev1.HelmChartSpec{
			Chart:     ct.Name,
			Version:   version,
			SourceRef: sourcev1.LocalHelmChartSourceReference{Kind: kind, Name: ct.SourceRef.Name},
			Interval:  interval,
		},
	}
	if def.UID != "" {
		// Owned by the definition, so a garbage collector removes it with the
		// definition even if chartkind is not running; chartkind deletes it
		// itself on finalization too.
		hc.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "ApplicationDefinition",
			Name: def.Name, UID: def.UID,
		}}
	}
	return hc, nil
}

// Owned reports whether hc was created by chartkind for the definition.
func Owned(hc *sourcev1.HelmChart, definition string) bool {
	return hc.Labels[ManagedByLabel] == ManagedByValue && hc.Labels[DefinitionLabel] == definition
}

// ChartRefKinds are the kinds spec.release.chartRef may name.
var ChartRefKinds = []string{sourcev1.OCIRepositoryKind, sourcev1.HelmChartKind}

// ChartRefNamespace is the namespace of the definition's chartRef, or an error
// when it has none.
func ChartRefNamespace(def *v1alpha1.ApplicationDefinition, ref *helmv2.CrossNamespaceSourceReference) (string, error) {
	if ref.Namespace == "" {
		return "", fmt.Errorf("ApplicationDefinition %s: spec.release.chartRef.namespace is required to read the chart through Flux (the definition is cluster-scoped); or give the schema inline in spec.schema", def.Name)
	}
	return ref.Namespace, nil
}

// Artifact is what a source's status says about its artifact.
type Artifact struct {
	// Object names the source for messages, e.g. "HelmChart flux-system/chartkind-postgres".
	Object string
	// Artifact is nil when the source has none yet.
	Artifact *meta.Artifact
	// Ready is the source's Ready condition, nil when it has none.
	Ready *metav1.Condition
	// Stale is true when the source's status describes an older generation
	// than its spec, so the artifact may not be the one asked for.
	Stale bool
}

// FromHelmChart reads the artifact of a HelmChart.
func FromHelmChart(hc *sourcev1.HelmChart) Artifact {
	return Artifact{
		Object:   fmt.Sprintf("HelmChart %s/%s", hc.Namespace, hc.Name),
		Artifact: hc.Status.Artifact,
		Ready:    apimeta.FindStatusCondition(hc.Status.Conditions, meta.ReadyCondition),
		Stale:    hc.Status.ObservedGeneration < hc.Generation,
	}
}

// FromOCIRepository reads the artifact of an OCIRepository.
func FromOCIRepository(repo *sourcev1.OCIRepository) Artifact {
	return Artifact{
		Object:   fmt.Sprintf("OCIRepository %s/%s", repo.Namespace, repo.Name),
		Artifact: repo.Status.Artifact,
		Ready:    apimeta.FindStatusCondition(repo.Status.Conditions, meta.ReadyCondition),
		Stale:    repo.Status.ObservedGeneration < repo.Generation,
	}
}

// Usable returns the artifact to read, or why there is none. An artifact is
// read as soon as it exists and describes the current spec, even when the
// source is not Ready for another reason (e.g. a later fetch failed): the
// artifact is still the chart helm-controller installs.
func (a Artifact) Usable() (*meta.Artifact, *Error) {
	if a.Artifact != nil && !a.Stale {
		return a.Artifact, nil
	}
	why := "source-controller has not produced an artifact yet"
	if a.Stale {
		why = "source-controller has not yet processed the latest spec"
	}
	if a.Ready != nil && a.Ready.Status == metav1.ConditionFalse {
		why = fmt.Sprintf("%s: %s", a.Ready.Reason, a.Ready.Message)
	}
	return nil, errorf(ReasonArtifactNotReady, false, "%s: %s", a.Object, why)
}
