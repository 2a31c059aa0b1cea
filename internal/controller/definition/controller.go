// Package definition is the ApplicationDefinition controller: for each
// definition it resolves the schema, generates the CRD, refuses conflicts,
// applies the CRD with server-side apply, waits until it is Established and
// then has the engine serve the kind. Each step has its own Ready reason, in
// the style of Flux's helm-controller.
package definition

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/crd"
	names "github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/source"
	"github.com/chartkind/chartkind/internal/tenancy"
)

// sourceRetry is how often a definition whose source is missing or not ready
// is looked at again, in case an event was missed; sources are watched.
const sourceRetry = 5 * time.Minute

// Finalizer lets the controller stop the kind, and delete the CRD when asked
// to, before a definition goes.
const Finalizer = "chartkind.io/finalizer"

// FieldManager is chartkind's server-side apply field manager.
const FieldManager = "chartkind"

// SpecHashAnnotation on a CRD is the hash of what chartkind last applied; with
// the definition's status.appliedCRD it lets an unchanged CRD go without a
// new apply (crdUpToDate).
const SpecHashAnnotation = "chartkind.io/applied-hash"

// ConditionReady is the definition's Ready condition.
const ConditionReady = "Ready"

// Reasons of the Ready condition, one per step.
const (
	ReasonProgressing           = "Progressing"
	ReasonChartNotFound         = "ChartNotFound"
	ReasonSchemaInvalid         = "SchemaInvalid"
	ReasonCRDConflict           = "CRDConflict"
	ReasonApplyFailed           = "ApplyFailed"
	ReasonWaitingForEstablished = "WaitingForEstablished"
	ReasonServeFailed           = "ServeFailed"
	ReasonServing               = "Serving"
	// ReasonServiceAccountRequired: the operator runs with
	// --require-service-account and the definition has no serviceAccountName.
	ReasonServiceAccountRequired = "ServiceAccountRequired"
	// ReasonInvalidRelease: a CEL expression of spec.release
	// (healthCheckExprs, dependsOn[].readyExpr) does not compile as
	// helm-controller reads it.
	ReasonInvalidRelease = "InvalidRelease"
)

// Server serves and stops kinds; the engine implements it.
type Server interface {
	Serve(ctx context.Context, def *v1alpha1.ApplicationDefinition) error
	Stop(definitionName string)
}

// KindObserver learns which kinds are served and which are retired: the
// admission webhook loads the chart's schema, the RBAC step maintains the
// kind's aggregated roles. KindServed is called on every successful reconcile
// (after a restart too), so it must be idempotent and cheap when nothing
// changed; c is nil when the definition has only an inline spec.schema.
// KindRetired is called when the definition is deleted.
type KindObserver interface {
	KindServed(ctx context.Context, def *v1alpha1.ApplicationDefinition, c *chart.Chart) error
	KindRetired(ctx context.Context, def *v1alpha1.ApplicationDefinition) error
}

// Reconciler reconciles ApplicationDefinitions.
type Reconciler struct {
	Client client.Client
	// APIReader reads from the API server, bypassing the cache.
	APIReader client.Reader
	Engine    Server
	// Observers are told about served and retired kinds, in order.
	Observers []KindObserver
	Recorder  events.EventRecorder
	// ChartsDir holds charts as <name>/ directories or <name>-<version>.tgz files.
	ChartsDir string
	// Fetcher downloads chart artifacts from source-controller; defaults to
	// a Fetcher with default limits.
	Fetcher *source.Fetcher
	// MaxConcurrentReconciles defaults to 1.
	MaxConcurrentReconciles int
	// RequireServiceAccount refuses definitions without
	// spec.release.serviceAccountName (ReasonServiceAccountRequired).
	RequireServiceAccount bool
	// Policy is the operator's multi-tenant release policy: a default
	// service account satisfies RequireServiceAccount and isolates releases.
	Policy tenancy.Policy
	// HelmReleaseWriters, when set, returns the namespace roles that let
	// tenants write HelmReleases directly (tenancy.RoleWatch), and whether
	// that is known yet.
	HelmReleaseWriters func() ([]string, bool)
	// Resync, when set, makes every definition be reconciled again on each
	// event: the operator sends one when HelmReleaseWriters changes.
	Resync <-chan event.GenericEvent

	fetcherOnce sync.Once
	// generated caches the last CRD generated per definition, by input.
	generated sync.Map
}

// SetupWithManager registers the controller with mgr. It watches definitions,
// and CRDs so that Established and CRD deletions are noticed.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Resync != nil {
		b = b.WatchesRawSource(crsource.Channel(r.Resync, handler.EnqueueRequestsFromMapFunc(r.allDefinitions)))
	}
	return b.
		Named("applicationdefinition").
		For(&v1alpha1.ApplicationDefinition{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionPredicate()))).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(r.definitionsForCRD)).
		Watches(&v1alpha1.ApplicationDefinition{}, handler.EnqueueRequestsFromMapFunc(r.conflictingDefinitions)).
		Watches(&sourcev1.HelmChart{}, handler.EnqueueRequestsFromMapFunc(r.definitionsForSource(sourcev1.HelmChartKind)),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return artifactChanged(e.ObjectOld, e.ObjectNew) }})).
		Watches(&sourcev1.OCIRepository{}, handler.EnqueueRequestsFromMapFunc(r.definitionsForSource(sourcev1.OCIRepositoryKind)),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return artifactChanged(e.ObjectOld, e.ObjectNew) }})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Complete(r)
}

func deletionPredicate() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectNew.GetDeletionTimestamp() != nil || len(e.ObjectNew.GetFinalizers()) != len(e.ObjectOld.GetFinalizers())
	}}
}

// definitionsForCRD maps a CRD to the definitions naming it.
func (r *Reconciler) definitionsForCRD(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.ApplicationDefinitionList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		d := &list.Items[i]
		if names.Effective(d).CRDName() == o.GetName() || o.GetLabels()[crd.DefinitionLabel] == d.Name {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: d.Name}})
		}
	}
	return out
}

// conflictingDefinitions maps a definition to the others claiming the same
// CRD or kind, so a refused definition is retried when the first one goes.
func (r *Reconciler) conflictingDefinitions(ctx context.Context, o client.Object) []reconcile.Request {
	def, ok := o.(*v1alpha1.ApplicationDefinition)
	if !ok {
		return nil
	}
	var list v1alpha1.ApplicationDefinitionList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		d := &list.Items[i]
		if d.Name != def.Name && claimsSame(d, def) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: d.Name}})
		}
	}
	return out
}

func claimsSame(a, b *v1alpha1.ApplicationDefinition) bool {
	na, nb := names.Effective(a), names.Effective(b)
	return na.CRDName() == nb.CRDName() || (na.Group == nb.Group && na.Kind == nb.Kind)
}

// earlier orders definitions by creation time, then name.
func earlier(a, b *v1alpha1.ApplicationDefinition) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

// stepError is a failed step: the Ready reason and message to report, and
// whether to retry with backoff (transient) or wait for a change.
type stepError struct {
	reason    string
	message   string
	transient bool
	requeue   time.Duration
}

func (e *stepError) Error() string { return e.reason + ": " + e.message }

func fail(reason, format string, args ...any) *stepError {
	return &stepError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// Reconcile runs the steps for one definition.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logr.FromContextOrDiscard(ctx)
	// Read from the API server: right after a status write the cache may
	// still hold the old status, and comparing with it would write (and
	// announce) the same transition twice.
	def := &v1alpha1.ApplicationDefinition{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, def); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if def.DeletionTimestamp != nil {
		return ctrl.Result{}, r.finalize(ctx, def)
	}
	if !controllerutil.ContainsFinalizer(def, Finalizer) {
		controllerutil.AddFinalizer(def, Finalizer)
		if err := r.Client.Update(ctx, def); err != nil {
			return ctrl.Result{}, err
		}
	}

	orig := def.DeepCopy()
	n := names.Effective(def)
	def.Status.ObservedGeneration = def.Generation
	def.Status.CRDName = n.CRDName()
	def.Status.Names = &v1alpha1.EffectiveNames{Kind: n.Kind, Group: n.Group, Plural: n.Plural, Singular: n.Singular, Prefix: n.Prefix}

	msg, stepErr := r.runSteps(ctx, def)
	var ready metav1.Condition
	if stepErr != nil {
		status := metav1.ConditionFalse
		if stepErr.reason == ReasonWaitingForEstablished {
			status = metav1.ConditionUnknown
		}
		ready = metav1.Condition{Type: ConditionReady, Status: status, Reason: stepErr.reason, Message: stepErr.message}
	} else {
		ready = metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonServing, Message: msg}
	}
	ready.ObservedGeneration = def.Generation
	meta.SetStatusCondition(&def.Status.Conditions, ready)
	iso := r.isolation(def)
	iso.ObservedGeneration = def.Generation
	meta.SetStatusCondition(&def.Status.Conditions, iso)

	if err := r.writeStatus(ctx, orig, def); err != nil {
		return ctrl.Result{}, err
	}
	if stepErr == nil {
		return ctrl.Result{}, nil
	}
	if stepErr.transient {
		log.V(1).Info("step failed, retrying", "reason", stepErr.reason, "message", stepErr.message)
		return ctrl.Result{}, stepErr
	}
	return ctrl.Result{RequeueAfter: stepErr.requeue}, nil
}

// runSteps runs every step in order and returns the Ready message, or the first failure.
func (r *Reconciler) runSteps(ctx context.Context, def *v1alpha1.ApplicationDefinition) (string, *stepError) {
	if sa, _ := r.Policy.ServiceAccount(&def.Spec.Release); r.RequireServiceAccount && sa == "" {
		// Not served: the CRD is not created nor updated, and after a restart
		// the kind is not served (existing HelmReleases stay as they are).
		return "", fail(ReasonServiceAccountRequired, "the operator runs with --require-service-account and this definition sets no spec.release.serviceAccountName: "+
			"set it to a service account, in each namespace objects of the kind are created in, with only the rights the chart needs (docs/security.md)")
	}
	if problems := names.ReleaseProblems(def); len(problems) > 0 {
		// Caught here rather than by helm-controller, which would stall
		// every release of the kind with InvalidCELExpression. Like a
		// missing service account: the CRD is left as it is and no
		// HelmRelease is given these settings.
		return "", fail(ReasonInvalidRelease, "%s: fix the expressions; until then these release settings reach no HelmRelease", strings.Join(problems, "; "))
	}
	src, serr := r.resolveSchema(ctx, def)
	if serr != nil {
		return "", r.keepServing(ctx, def, serr)
	}
	res, serr := r.generateCRD(src)
	if serr != nil {
		return "", r.keepServing(ctx, def, serr)
	}
	if serr := r.checkConflicts(ctx, def, res.CRD); serr != nil {
		return "", serr
	}
	if serr := r.checkSchemaChange(ctx, def, res, src); serr != nil {
		return "", r.keepServing(ctx, def, serr)
	}
	if serr := r.applyCRD(ctx, def, res.CRD); serr != nil {
		return "", serr
	}
	if serr := r.waitEstablished(ctx, res.CRD.Name); serr != nil {
		return "", serr
	}
	// What is served, once the API server serves it.
	def.Status.ChartVersion = src.chartVersion
	def.Status.ArtifactDigest = src.artifactDigest
	def.Status.SchemaDigest = res.SchemaDigest
	if serr := r.serve(ctx, def, src.in.Chart); serr != nil {
		return "", serr
	}
	return servingMessage(res), nil
}

// keepServing goes on serving the kind with the CRD already in place when the
// new schema cannot be had (the source is down, the new chart's schema is
// broken or its change refused): objects keep being mirrored, and the CRD is
// left as it is. It returns serr, for the condition.
func (r *Reconciler) keepServing(ctx context.Context, def *v1alpha1.ApplicationDefinition, serr *stepError) *stepError {
	name := names.Effective(def).CRDName()
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, c); err != nil {
		return serr
	}
	if c.Labels[crd.ManagedByLabel] != crd.ManagedByValue || c.Labels[crd.DefinitionLabel] != def.Name || c.DeletionTimestamp != nil || !established(c) {
		return serr
	}
	if err := r.Engine.Serve(ctx, def); err != nil {
		return serr
	}
	if def.Status.SchemaDigest != "" {
		serr.message += fmt.Sprintf("; still serving the CustomResourceDefinition generated from chart version %s (schema %s)",
			orUnknown(def.Status.ChartVersion), def.Status.SchemaDigest)
	}
	return serr
}

func orUnknown(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func established(c *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// servingMessage says what is served and, when the CRD checks less than the
// chart's schema, says so: the kind works, but some invalid values will only
// be caught when Helm renders the release. It depends only on the schema, so
// it changes (and is written) only when the schema does.
func servingMessage(res *generate.Result) string {
	msg := fmt.Sprintf("Serving kind %s (%s)", res.CRD.Spec.Names.Kind, res.CRD.Name)
	switch {
	case res.OpenSpec:
		msg += "; the chart has no values.schema.json, so spec accepts any values"
	case len(res.Warnings) > 0:
		msg += fmt.Sprintf("; %d part(s) of the schema cannot be expressed in a CRD and are checked only by Helm, e.g. %s (`chartkind generate` lists them all)",
			len(res.Warnings), res.Warnings[0])
	}
	return msg
}

// generateCRD builds the CRD from the definition and chart. Conversion of a
// large schema takes a good part of a second, so the last result per
// definition is kept and reused while its inputs are unchanged.
func (r *Reconciler) generateCRD(src resolved) (*generate.Result, *stepError) {
	key, err := generationKey(src.in)
	if err == nil {
		if v, ok := r.generated.Load(src.in.Definition.Name); ok && v.(cachedCRD).key == key {
			return v.(cachedCRD).res, nil
		}
	}
	res, gerr := generate.CRD(src.in)
	if gerr != nil {
		return nil, fail(ReasonSchemaInvalid, "%v", gerr)
	}
	if err == nil {
		r.generated.Store(src.in.Definition.Name, cachedCRD{key: key, res: res})
	}
	return res, nil
}

type cachedCRD struct {
	key string
	res *generate.Result
}

// generationKey identifies everything generate.CRD reads.
func generationKey(in generate.Input) (string, error) {
	var chartID [4]string
	if c := in.Chart; c != nil {
		chartID = [4]string{c.Name, c.Version, c.Source, generate.Digest(c.Schema, c.Values)}
	}
	b, err := json.Marshal(struct {
		Name   string
		UID    types.UID
		Labels map[string]string
		Spec   v1alpha1.ApplicationDefinitionSpec
		Chart  [4]string
	}{in.Definition.Name, in.Definition.UID, in.Definition.Labels, in.Definition.Spec, chartID})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// checkConflicts refuses a CRD another definition claimed first, and a CRD
// that exists without chartkind's labels for this definition.
func (r *Reconciler) checkConflicts(ctx context.Context, def *v1alpha1.ApplicationDefinition, want *apiextensionsv1.CustomResourceDefinition) *stepError {
	var list v1alpha1.ApplicationDefinitionList
	if err := r.Client.List(ctx, &list); err != nil {
		return &stepError{reason: ReasonProgressing, message: "listing definitions: " + err.Error(), transient: true}
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == def.Name || other.DeletionTimestamp != nil {
			continue
		}
		if claimsSame(other, def) && earlier(other, def) {
			on := names.Effective(other)
			return fail(ReasonCRDConflict, "ApplicationDefinition %s already claims %s (kind %s.%s)", other.Name, on.CRDName(), on.Kind, on.Group)
		}
	}
	existing := &apiextensionsv1.CustomResourceDefinition{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: want.Name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return &stepError{reason: ReasonProgressing, message: "reading CRD " + want.Name + ": " + err.Error(), transient: true}
	}
	if existing.Labels[crd.ManagedByLabel] != crd.ManagedByValue || existing.Labels[crd.DefinitionLabel] != def.Name {
		owner := "not managed by chartkind"
		if d := existing.Labels[crd.DefinitionLabel]; existing.Labels[crd.ManagedByLabel] == crd.ManagedByValue && d != "" {
			owner = "managed for ApplicationDefinition " + d
		}
		return fail(ReasonCRDConflict, "CustomResourceDefinition %s already exists and is %s: it is not taken over", want.Name, owner)
	}
	return nil
}

// applyCRD server-side applies the CRD as chartkind, unless the CRD on the
// API server already is what it would apply (crdUpToDate), and records the
// apply in def.Status.AppliedCRD.
func (r *Reconciler) applyCRD(ctx context.Context, def *v1alpha1.ApplicationDefinition, want *apiextensionsv1.CustomResourceDefinition) *stepError {
	hash, err := hashCRD(want)
	if err != nil {
		return fail(ReasonApplyFailed, "hashing CustomResourceDefinition %s: %v", want.Name, err)
	}
	existing := &apiextensionsv1.CustomResourceDefinition{}
	getErr := r.APIReader.Get(ctx, types.NamespacedName{Name: want.Name}, existing)
	if apierrors.IsNotFound(getErr) {
		// Create, rather than apply, a CRD that does not exist yet: a forced
		// apply would take over a CRD someone else created since the conflict
		// check. Once created it is chartkind's, and the apply below makes the
		// field manager chartkind's Apply entry own its fields.
		c := want.DeepCopy()
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations[SpecHashAnnotation] = hash
		c.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
		if err := r.Client.Create(ctx, c, client.FieldOwner(FieldManager)); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return &stepError{reason: ReasonProgressing, message: fmt.Sprintf("CustomResourceDefinition %s appeared while chartkind was creating it; checking who owns it", want.Name), transient: true}
			}
			return &stepError{reason: ReasonApplyFailed, message: fmt.Sprintf("creating CustomResourceDefinition %s: %v", want.Name, err), transient: true}
		}
	}
	if getErr == nil && crdUpToDate(def.Status.AppliedCRD, existing, want, hash) {
		return nil
	}
	c := want.DeepCopy()
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[SpecHashAnnotation] = hash
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		return fail(ReasonApplyFailed, "converting CustomResourceDefinition %s: %v", want.Name, err)
	}
	u := &unstructured.Unstructured{Object: raw}
	u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return &stepError{reason: ReasonApplyFailed, message: fmt.Sprintf("applying CustomResourceDefinition %s: %v", want.Name, err), transient: true}
	}
	// u is now the CRD the apply returned: its generation is the one this
	// apply left, not that of a later change by someone else.
	def.Status.AppliedCRD = &v1alpha1.AppliedCRD{Digest: hash, UID: u.GetUID(), Generation: u.GetGeneration()}
	return nil
}

// crdUpToDate says whether live, the CRD on the API server, is what chartkind
// would apply (want, whose hashCRD is digest), so that the apply can be
// skipped: an apply that changes nothing still costs a PATCH request, one per
// kind on every restart and on every reconcile of a definition.
//
// The spec cannot be compared with want directly, since the API server
// defaults it. Instead rec, kept in the definition's status, names the
// object and generation chartkind's last apply left and what it applied:
// live must be that object (a CRD deleted and created again has another
// UID), at that generation (any change to the spec, by hand or by another
// manager, moves it), and the apply must have been of this digest (a new
// chart version, definition spec or operator version changes it). The
// labels and annotations chartkind sets, whose changes do not move the
// generation, are compared one by one, the digest annotation among them.
func crdUpToDate(rec *v1alpha1.AppliedCRD, live, want *apiextensionsv1.CustomResourceDefinition, digest string) bool {
	if rec == nil || live.DeletionTimestamp != nil {
		return false
	}
	if rec.Digest != digest || rec.UID != live.UID || rec.Generation != live.Generation {
		return false
	}
	if live.Annotations[SpecHashAnnotation] != digest {
		return false
	}
	for k, v := range want.Labels {
		if got, ok := live.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k, v := range want.Annotations {
		if got, ok := live.Annotations[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// waitEstablished checks that the API server serves the CRD.
func (r *Reconciler) waitEstablished(ctx context.Context, name string) *stepError {
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, c); err != nil {
		return &stepError{reason: ReasonWaitingForEstablished, message: err.Error(), transient: true}
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.NamesAccepted && cond.Status == apiextensionsv1.ConditionFalse {
			return fail(ReasonCRDConflict, "CustomResourceDefinition %s: names not accepted: %s", name, cond.Message)
		}
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return nil
		}
	}
	return &stepError{reason: ReasonWaitingForEstablished, message: "waiting for CustomResourceDefinition " + name + " to be established", requeue: 2 * time.Second}
}

// serve has the engine serve the kind and tells the observers.
func (r *Reconciler) serve(ctx context.Context, def *v1alpha1.ApplicationDefinition, c *chart.Chart) *stepError {
	if err := r.Engine.Serve(ctx, def); err != nil {
		return &stepError{reason: ReasonServeFailed, message: err.Error(), transient: true}
	}
	for _, o := range r.Observers {
		if err := o.KindServed(ctx, def, c); err != nil {
			return &stepError{reason: ReasonServeFailed, message: err.Error(), transient: true}
		}
	}
	return nil
}

// finalize stops the kind and, with deletionPolicy Delete, deletes the CRD.
func (r *Reconciler) finalize(ctx context.Context, def *v1alpha1.ApplicationDefinition) error {
	if !controllerutil.ContainsFinalizer(def, Finalizer) {
		return nil
	}
	r.Engine.Stop(def.Name)
	r.generated.Delete(def.Name)
	if serr := r.cleanupHelmCharts(ctx, def, types.NamespacedName{}); serr != nil {
		return errors.New(serr.message)
	}
	for _, o := range r.Observers {
		if err := o.KindRetired(ctx, def); err != nil {
			return fmt.Errorf("retiring kind of %s: %w", def.Name, err)
		}
	}
	if def.Spec.DeletionPolicy == v1alpha1.DeletionDelete {
		name := names.Effective(def).CRDName()
		c := &apiextensionsv1.CustomResourceDefinition{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, c)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		case c.Labels[crd.ManagedByLabel] == crd.ManagedByValue && c.Labels[crd.DefinitionLabel] == def.Name:
			uid := c.UID
			if err := r.Client.Delete(ctx, c, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting CustomResourceDefinition %s: %w", name, err)
			}
			r.event(def, "Normal", "CRDDeleted", "Delete", "Deleted CustomResourceDefinition %s (deletionPolicy Delete)", name)
		}
		if err := r.deleteReleases(ctx, def); err != nil {
			return err
		}
	}
	controllerutil.RemoveFinalizer(def, Finalizer)
	if err := r.Client.Update(ctx, def); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// releaseDefinitionLabel is the label the mirror puts on every HelmRelease,
// naming the definition of its object's kind.
const releaseDefinitionLabel = "apps.chartkind.io/definition"

// deleteReleases deletes the HelmReleases of the definition's objects, which
// go with the CRD: nothing else would (no garbage collector is assumed, and the
// kind is no longer served).
func (r *Reconciler) deleteReleases(ctx context.Context, def *v1alpha1.ApplicationDefinition) error {
	_, err := DeleteKindReleases(ctx, r.Client, def)
	return err
}

// DeleteKindReleases deletes the HelmReleases c lists (a cache: a shard's
// holds its own shard's) that are labelled with def and controlled by an
// object of its kind, and returns their namespace/name. A HelmRelease
// replaced meanwhile (another UID) is left alone.
func DeleteKindReleases(ctx context.Context, c client.Client, def *v1alpha1.ApplicationDefinition) ([]string, error) {
	n := names.Effective(def)
	var list helmv2.HelmReleaseList
	if err := c.List(ctx, &list, client.MatchingLabels{releaseDefinitionLabel: def.Name}); err != nil {
		return nil, fmt.Errorf("listing HelmReleases of %s: %w", def.Name, err)
	}
	var deleted []string
	for i := range list.Items {
		hr := &list.Items[i]
		ref := metav1.GetControllerOf(hr)
		if ref == nil || ref.Kind != n.Kind || !strings.HasPrefix(ref.APIVersion, n.Group+"/") || hr.DeletionTimestamp != nil {
			continue
		}
		uid := hr.UID
		if err := c.Delete(ctx, hr, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return deleted, fmt.Errorf("deleting HelmRelease %s/%s: %w", hr.Namespace, hr.Name, err)
		}
		deleted = append(deleted, hr.Namespace+"/"+hr.Name)
	}
	return deleted, nil
}

// writeStatus writes the status when it changed, and records an event when
// the Ready condition changed.
func (r *Reconciler) writeStatus(ctx context.Context, orig, def *v1alpha1.ApplicationDefinition) error {
	if equality.Semantic.DeepEqual(orig.Status, def.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, def, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	old := meta.FindStatusCondition(orig.Status.Conditions, ConditionReady)
	cur := meta.FindStatusCondition(def.Status.Conditions, ConditionReady)
	if cur != nil && (old == nil || old.Status != cur.Status || old.Reason != cur.Reason) {
		typ := "Normal"
		if cur.Status == metav1.ConditionFalse {
			typ = "Warning"
		}
		r.event(def, typ, cur.Reason, "Reconcile", "%s", cur.Message)
	}
	oldIso := meta.FindStatusCondition(orig.Status.Conditions, ConditionReleasesIsolated)
	curIso := meta.FindStatusCondition(def.Status.Conditions, ConditionReleasesIsolated)
	if curIso != nil && curIso.Status == metav1.ConditionFalse && (oldIso == nil || oldIso.Status != metav1.ConditionFalse || oldIso.Reason != curIso.Reason) {
		r.event(def, "Warning", curIso.Reason, "Reconcile", "%s", curIso.Message)
	}
	return nil
}

func (r *Reconciler) event(def *v1alpha1.ApplicationDefinition, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(def, nil, typ, reason, action, note, args...)
	}
}

func hashCRD(c *apiextensionsv1.CustomResourceDefinition) (string, error) {
	b, err := json.Marshal(struct {
		Labels      map[string]string
		Annotations map[string]string
		Spec        apiextensionsv1.CustomResourceDefinitionSpec
	}{c.Labels, c.Annotations, c.Spec})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}
