package definition

import (
	"context"
	"errors"
	"fmt"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/source"
)

// The operator reads charts through Flux: it keeps a HelmChart per definition
// and reads the artifacts of the sources definitions point at.
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=helmcharts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=ocirepositories,verbs=get;list;watch
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=helmrepositories;gitrepositories;buckets,verbs=get

// resolved is where a definition's schema comes from.
type resolved struct {
	in generate.Input
	// chartVersion and artifactDigest describe the chart, when there is one.
	chartVersion   string
	artifactDigest string
}

// resolveSchema finds what the CRD is generated from: the chart named by
// spec.release.chart in the charts directory when one is configured (a
// development and offline convenience), else the chart source-controller
// builds from the definition's Flux source; the definition's inline schema,
// when set, replaces the chart's values.schema.json (the chart's values.yaml
// is still used when the chart can be read).
func (r *Reconciler) resolveSchema(ctx context.Context, def *v1alpha1.ApplicationDefinition) (resolved, *stepError) {
	out := resolved{in: generate.Input{Definition: def}}
	inline := def.Spec.Schema != nil && len(def.Spec.Schema.Raw) > 0
	rel := def.Spec.Release
	if rel.Chart != nil && r.ChartsDir != "" {
		if c, err := FindChart(r.ChartsDir, rel.Chart.Name, rel.Chart.Version); err == nil {
			out.in.Chart, out.chartVersion = c, c.Version
			return out, r.cleanupHelmCharts(ctx, def, types.NamespacedName{})
		}
	}
	c, digest, serr := r.chartFromFlux(ctx, def)
	if serr != nil {
		if inline && def.Status.ArtifactDigest == "" && def.Status.ChartVersion == "" {
			// The inline schema is enough to serve the kind; without the
			// chart's values.yaml, fields are only nullable where the
			// schema says so. Once a chart has been read, an unreadable
			// source must not change the CRD (values.yaml decides which
			// fields are nullable): keep serving what is served.
			return out, nil
		}
		return out, serr
	}
	out.in.Chart, out.chartVersion, out.artifactDigest = c, c.Version, digest
	return out, nil
}

// chartFromFlux reads the definition's chart from the artifact of its
// HelmChart (for spec.release.chart) or of the source spec.release.chartRef
// names, returning the chart and the artifact's digest.
func (r *Reconciler) chartFromFlux(ctx context.Context, def *v1alpha1.ApplicationDefinition) (*chart.Chart, string, *stepError) {
	var art source.Artifact
	rel := def.Spec.Release
	switch {
	case rel.Chart != nil:
		hc, serr := r.ensureHelmChart(ctx, def)
		if serr != nil {
			return nil, "", serr
		}
		art = source.FromHelmChart(hc)
		if art.Artifact == nil {
			// Say why, when the reason is the source itself.
			if serr := r.checkChartSource(ctx, def); serr != nil {
				return nil, "", serr
			}
		}
	case rel.ChartRef != nil:
		if serr := r.cleanupHelmCharts(ctx, def, types.NamespacedName{}); serr != nil {
			return nil, "", serr
		}
		a, serr := r.chartRefArtifact(ctx, def)
		if serr != nil {
			return nil, "", serr
		}
		art = a
	default:
		return nil, "", fail(source.ReasonSourceNotFound, "neither spec.release.chart nor spec.release.chartRef is set")
	}
	a, err := art.Usable()
	if err != nil {
		return nil, "", sourceFailure(err)
	}
	c, ferr := r.fetcher().Fetch(ctx, art.Object, a)
	if ferr != nil {
		return nil, "", sourceFailure(ferr)
	}
	return c, a.Digest, nil
}

func (r *Reconciler) fetcher() *source.Fetcher {
	r.fetcherOnce.Do(func() {
		if r.Fetcher == nil {
			r.Fetcher = &source.Fetcher{}
		}
	})
	return r.Fetcher
}

// sourceFailure turns a source error into a failed step: transient ones are
// retried with backoff, the others wait for the source to change (every
// source chartkind reads is watched), with a slow retry as a safety net.
func sourceFailure(err error) *stepError {
	var se *source.Error
	if errors.As(err, &se) {
		return &stepError{reason: se.Reason, message: se.Error(), transient: se.Transient, requeue: sourceRetry}
	}
	return &stepError{reason: source.ReasonArtifactFailed, message: err.Error(), transient: true}
}

// ensureHelmChart creates or updates the HelmChart source-controller builds
// the definition's chart from, and removes ones left from an earlier spec.
func (r *Reconciler) ensureHelmChart(ctx context.Context, def *v1alpha1.ApplicationDefinition) (*sourcev1.HelmChart, *stepError) {
	want, err := source.DesiredHelmChart(def)
	if err != nil {
		return nil, fail(source.ReasonSourceNotFound, "%v", err)
	}
	key := client.ObjectKeyFromObject(want)
	if serr := r.cleanupHelmCharts(ctx, def, key); serr != nil {
		return nil, serr
	}
	hc := &sourcev1.HelmChart{}
	err = r.Client.Get(ctx, key, hc)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want, client.FieldOwner(FieldManager)); err != nil {
			if apierrors.IsNotFound(err) {
				// The namespace is missing, so the source is too.
				if serr := r.checkChartSource(ctx, def); serr != nil {
					return nil, serr
				}
				return nil, &stepError{reason: source.ReasonSourceNotFound, message: fmt.Sprintf("creating HelmChart %s: %v", key, err), requeue: sourceRetry}
			}
			return nil, &stepError{reason: source.ReasonArtifactNotReady, message: fmt.Sprintf("creating HelmChart %s: %v", key, err), transient: true}
		}
		r.event(def, "Normal", "HelmChartCreated", "Create", "Created HelmChart %s for chart %s", key, want.Spec.Chart)
		return want, nil
	case err != nil:
		return nil, &stepError{reason: ReasonProgressing, message: fmt.Sprintf("reading HelmChart %s: %v", key, err), transient: true}
	}
	if !source.Owned(hc, def.Name) {
		return nil, fail(source.ReasonSourceNotFound, "HelmChart %s exists and is not chartkind's for this definition: it is not taken over", key)
	}
	if equality.Semantic.DeepEqual(hc.Spec.Chart, want.Spec.Chart) && hc.Spec.Version == want.Spec.Version &&
		hc.Spec.SourceRef == want.Spec.SourceRef && hc.Spec.Interval == want.Spec.Interval {
		return hc, nil
	}
	upd := hc.DeepCopy()
	upd.Spec.Chart, upd.Spec.Version, upd.Spec.SourceRef, upd.Spec.Interval = want.Spec.Chart, want.Spec.Version, want.Spec.SourceRef, want.Spec.Interval
	if err := r.Client.Update(ctx, upd, client.FieldOwner(FieldManager)); err != nil {
		return nil, &stepError{reason: source.ReasonArtifactNotReady, message: fmt.Sprintf("updating HelmChart %s: %v", key, err), transient: true}
	}
	return upd, nil
}

// cleanupHelmCharts deletes the HelmCharts chartkind made for the definition
// other than keep (e.g. after the source moved namespaces, or the definition
// switched to chartRef or a charts directory chart).
func (r *Reconciler) cleanupHelmCharts(ctx context.Context, def *v1alpha1.ApplicationDefinition, keep types.NamespacedName) *stepError {
	var list sourcev1.HelmChartList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{source.DefinitionLabel: def.Name, source.ManagedByLabel: source.ManagedByValue}); err != nil {
		return &stepError{reason: ReasonProgressing, message: "listing HelmCharts: " + err.Error(), transient: true}
	}
	for i := range list.Items {
		hc := &list.Items[i]
		if client.ObjectKeyFromObject(hc) == keep || hc.DeletionTimestamp != nil {
			continue
		}
		uid := hc.UID
		if err := r.Client.Delete(ctx, hc, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return &stepError{reason: ReasonProgressing, message: fmt.Sprintf("deleting HelmChart %s/%s: %v", hc.Namespace, hc.Name, err), transient: true}
		}
	}
	return nil
}

// checkChartSource reports a missing HelmRepository, GitRepository or Bucket
// by name, and one that is not Ready with its own reason (e.g. its URL cannot
// be reached), which reads better than the HelmChart's own failure.
func (r *Reconciler) checkChartSource(ctx context.Context, def *v1alpha1.ApplicationDefinition) *stepError {
	ref := def.Spec.Release.Chart.SourceRef
	var obj client.Object
	switch ref.Kind {
	case sourcev1.HelmRepositoryKind, "":
		obj = &sourcev1.HelmRepository{}
	case sourcev1.GitRepositoryKind:
		obj = &sourcev1.GitRepository{}
	case sourcev1.BucketKind:
		obj = &sourcev1.Bucket{}
	default:
		return fail(source.ReasonSourceNotFound, "spec.release.chart.sourceRef.kind %q is not HelmRepository, GitRepository or Bucket", ref.Kind)
	}
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	kind := ref.Kind
	if kind == "" {
		kind = sourcev1.HelmRepositoryKind
	}
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return &stepError{reason: source.ReasonSourceNotFound, message: fmt.Sprintf("%s %s named by spec.release.chart.sourceRef does not exist", kind, key), requeue: sourceRetry}
		}
		// Can't tell (e.g. no permission): let the HelmChart's status speak.
		return nil
	}
	// An unreachable repository shows on the HelmChart only as "no artifact
	// available for HelmRepository source": say what the source itself says.
	if g, ok := obj.(interface{ GetConditions() []metav1.Condition }); ok {
		if c := apimeta.FindStatusCondition(g.GetConditions(), "Ready"); c != nil && c.Status == metav1.ConditionFalse {
			return &stepError{reason: source.ReasonArtifactNotReady, message: fmt.Sprintf("%s %s named by spec.release.chart.sourceRef is not ready: %s: %s",
				kind, key, c.Reason, c.Message), requeue: sourceRetry}
		}
	}
	return nil
}

// chartRefArtifact reads the artifact of the OCIRepository or HelmChart named
// by spec.release.chartRef.
func (r *Reconciler) chartRefArtifact(ctx context.Context, def *v1alpha1.ApplicationDefinition) (source.Artifact, *stepError) {
	ref := def.Spec.Release.ChartRef
	ns, err := source.ChartRefNamespace(def, ref)
	if err != nil {
		return source.Artifact{}, fail(source.ReasonSourceNotFound, "%v", err)
	}
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	var obj client.Object
	switch ref.Kind {
	case sourcev1.OCIRepositoryKind:
		obj = &sourcev1.OCIRepository{}
	case sourcev1.HelmChartKind:
		obj = &sourcev1.HelmChart{}
	default:
		return source.Artifact{}, fail(source.ReasonSourceNotFound, "spec.release.chartRef.kind %q is not OCIRepository or HelmChart", ref.Kind)
	}
	if err := r.Client.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return source.Artifact{}, &stepError{reason: source.ReasonSourceNotFound, message: fmt.Sprintf("%s %s named by spec.release.chartRef does not exist", ref.Kind, key), requeue: sourceRetry}
		}
		return source.Artifact{}, &stepError{reason: ReasonProgressing, message: fmt.Sprintf("reading %s %s: %v", ref.Kind, key, err), transient: true}
	}
	switch o := obj.(type) {
	case *sourcev1.OCIRepository:
		return source.FromOCIRepository(o), nil
	case *sourcev1.HelmChart:
		return source.FromHelmChart(o), nil
	}
	return source.Artifact{}, nil
}

// definitionsForSource maps a HelmChart or OCIRepository to the definitions
// reading it: the definition a chartkind HelmChart was made for, and every
// definition whose chartRef names the object.
func (r *Reconciler) definitionsForSource(kind string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var out []reconcile.Request
		if l := o.GetLabels(); l[source.ManagedByLabel] == source.ManagedByValue && l[source.DefinitionLabel] != "" {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: l[source.DefinitionLabel]}})
		}
		var list v1alpha1.ApplicationDefinitionList
		if err := r.Client.List(ctx, &list); err != nil {
			return out
		}
		for i := range list.Items {
			ref := list.Items[i].Spec.Release.ChartRef
			if ref != nil && ref.Kind == kind && ref.Name == o.GetName() && ref.Namespace == o.GetNamespace() {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
			}
		}
		return out
	}
}

// artifactChanged passes source events that can change what chartkind reads:
// a new artifact, a new generation, a Ready change, creation and deletion.
func artifactChanged(old, cur client.Object) bool {
	if old.GetGeneration() != cur.GetGeneration() || !equality.Semantic.DeepEqual(old.GetLabels(), cur.GetLabels()) {
		return true
	}
	type status struct {
		digest   string
		ready    metav1.ConditionStatus
		observed int64
	}
	read := func(o client.Object) status {
		var a source.Artifact
		var st status
		switch s := o.(type) {
		case *sourcev1.HelmChart:
			a, st.observed = source.FromHelmChart(s), s.Status.ObservedGeneration
		case *sourcev1.OCIRepository:
			a, st.observed = source.FromOCIRepository(s), s.Status.ObservedGeneration
		default:
			return st
		}
		if a.Artifact != nil {
			st.digest = a.Artifact.Digest + a.Artifact.URL
		}
		if a.Ready != nil {
			st.ready = a.Ready.Status
		}
		return st
	}
	return read(old) != read(cur)
}

// ServedChart reads, without writing anything, the chart the kind of the
// definition serving resource gr was generated from: the same chart
// (verified by status.schemaDigest) or an error. Replicas that are not the
// leader run no definition steps; the admission webhook loads the chart
// through this when a request for a kind reaches such a replica. c is nil
// for a definition served from an inline schema alone.
func (r *Reconciler) ServedChart(ctx context.Context, gr schema.GroupResource) (*v1alpha1.ApplicationDefinition, *chart.Chart, error) {
	var list v1alpha1.ApplicationDefinitionList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("listing definitions: %w", err)
	}
	var def *v1alpha1.ApplicationDefinition
	for i := range list.Items {
		d := &list.Items[i]
		ready := apimeta.FindStatusCondition(d.Status.Conditions, ConditionReady)
		refused := ready != nil && ready.Reason == ReasonCRDConflict
		if n := d.Status.Names; n != nil && n.Group == gr.Group && n.Plural == gr.Resource && d.DeletionTimestamp == nil && d.Status.SchemaDigest != "" && !refused {
			def = d
			break
		}
	}
	if def == nil {
		return nil, nil, fmt.Errorf("no served ApplicationDefinition for %s", gr)
	}
	var c *chart.Chart
	rel := def.Spec.Release
	if rel.Chart != nil && r.ChartsDir != "" {
		if found, err := FindChart(r.ChartsDir, rel.Chart.Name, rel.Chart.Version); err == nil {
			c = found
		}
	}
	if c == nil && def.Status.ArtifactDigest != "" {
		var art source.Artifact
		if rel.Chart != nil {
			want, err := source.DesiredHelmChart(def)
			if err != nil {
				return nil, nil, err
			}
			hc := &sourcev1.HelmChart{}
			if err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), hc); err != nil {
				return nil, nil, fmt.Errorf("reading HelmChart %s/%s: %w", want.Namespace, want.Name, err)
			}
			art = source.FromHelmChart(hc)
		} else if rel.ChartRef != nil {
			a, serr := r.chartRefArtifact(ctx, def)
			if serr != nil {
				return nil, nil, errors.New(serr.message)
			}
			art = a
		}
		a, uerr := art.Usable()
		if uerr != nil {
			return nil, nil, uerr
		}
		if a.Digest != def.Status.ArtifactDigest {
			return nil, nil, fmt.Errorf("%s now advertises %s, not the served artifact %s", art.Object, a.Digest, def.Status.ArtifactDigest)
		}
		fetched, err := r.fetcher().Fetch(ctx, art.Object, a)
		if err != nil {
			return nil, nil, err
		}
		c = fetched
	}
	schemaJSON := []byte(nil)
	if def.Spec.Schema != nil && len(def.Spec.Schema.Raw) > 0 {
		schemaJSON = def.Spec.Schema.Raw
	} else if c != nil {
		schemaJSON = c.Schema
	}
	var values []byte
	if c != nil {
		values = c.Values
	}
	if d := generate.Digest(schemaJSON, values); d != def.Status.SchemaDigest {
		return nil, nil, fmt.Errorf("the chart read for ApplicationDefinition %s has schema %s, not the served %s", def.Name, d, def.Status.SchemaDigest)
	}
	return def, c, nil
}
