// Package webhook is chartkind's validating admission webhook. A CRD schema
// cannot express everything a chart's values.schema.json says (oneOf,
// conditionals, some patterns, anything that depends on values.yaml), so
// without the webhook such mistakes surface only when Helm renders the
// release, long after `kubectl apply` said "created". The webhook gives users
// Helm's verdict at apply time, in the API server's own words.
//
// Three parts: the Handler answers admission requests and learns, as a
// definition.KindObserver, which kinds exist and which validator checks each;
// the Configurator keeps the ValidatingWebhookConfiguration's rules (and
// caBundle) in step with the served kinds; the CertManager keeps a
// self-signed CA and serving certificate in a Secret and rotates them, unless
// certificates come from elsewhere (cert-manager). docs/webhook.md describes
// the behaviour users and administrators see.
package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/crd"
	names "github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/lock"
)

// Path is where the webhook server serves the handler.
const Path = "/validate"

// WebhookName is the name of chartkind's entry in the
// ValidatingWebhookConfiguration; the API server quotes it in every denial
// ("admission webhook \"validate.chartkind.io\" denied the request: ...").
const WebhookName = "validate.chartkind.io"

// FieldManager is the field manager of everything the webhook writes.
const FieldManager = "chartkind"

// Validator checks an object's spec as Helm checks release values: the spec
// coalesced with the chart's values.yaml, against values.schema.json. Errors
// are rooted at "spec".
type Validator interface {
	Validate(spec map[string]any) field.ErrorList
}

// NewValidatorFunc builds the validator of a kind from its chart (nil for a
// definition with only an inline schema) and the definition's inline schema
// (nil when the chart's is used).
type NewValidatorFunc func(c *chart.Chart, schemaOverride []byte) (Validator, error)

// KindRegistry is told which resources the webhook must see; the
// Configurator implements it.
type KindRegistry interface {
	SetKind(definition string, gvr schema.GroupVersionResource)
	RemoveKind(definition string)
}

// kindEntry is a served kind and its validator.
type kindEntry struct {
	definition string
	gvr        schema.GroupVersionResource
	gk         schema.GroupKind
	digest     string
	validator  Validator
	// set are the definition's spec.values.set, merged over each spec.
	set map[string]any
	// onDemand entries were loaded through the Loader (on a replica that is
	// not the leader) and are re-read every onDemandRefresh, since no
	// KindServed or KindRetired will tell this replica about changes.
	onDemand bool
	loadedAt time.Time
}

// Handler answers admission requests for every generated kind and implements
// definition.KindObserver.
type Handler struct {
	newValidator NewValidatorFunc
	registry     KindRegistry
	log          logr.Logger

	mu         sync.RWMutex
	byDef      map[string]*kindEntry
	byResource map[schema.GroupResource]*kindEntry
	loader     Loader

	loadMu   sync.Mutex // guards loading and failedAt
	loading  map[schema.GroupResource]*sync.Mutex
	failedAt map[schema.GroupResource]time.Time
}

// NewHandler returns a Handler building validators with newValidator (nil:
// DefaultValidator) and registering kinds with registry (nil: none).
func NewHandler(newValidator NewValidatorFunc, registry KindRegistry, log logr.Logger) *Handler {
	if newValidator == nil {
		newValidator = DefaultValidator
	}
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return &Handler{
		newValidator: newValidator, registry: registry, log: log,
		byDef: map[string]*kindEntry{}, byResource: map[schema.GroupResource]*kindEntry{},
	}
}

// digest identifies what a validator is built from, so a reconcile that
// changes none of it (the usual case) keeps the validator.
func digest(c *chart.Chart, override []byte) string {
	h := sha256.New()
	part := func(b []byte) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	part(override)
	if c != nil {
		part(c.Schema)
		part(c.Values)
	} else {
		part(nil)
		part(nil)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// KindServed (re)builds the kind's validator when its chart schema, values or
// inline schema changed, and registers the kind with the webhook
// configuration. A validator that cannot be built is an error (the definition
// reports ServeFailed and is retried); the kind's objects are then admitted
// unchecked, with a warning, rather than checked against an outdated schema.
func (h *Handler) KindServed(_ context.Context, def *v1alpha1.ApplicationDefinition, c *chart.Chart) error {
	if err := h.load(def, c, false); err != nil {
		return err
	}
	if h.registry != nil {
		n := names.Effective(def)
		h.registry.SetKind(def.Name, schema.GroupVersionResource{Group: n.Group, Version: crd.Version, Resource: n.Plural})
	}
	return nil
}

// Loader reads the definition and chart a served kind was generated from,
// without writing anything. Only the leader runs the definition steps that
// call KindServed; on the other replicas the handler loads a kind through the
// Loader on its first request, so that every replica behind the webhook
// Service gives the same verdict.
type Loader func(ctx context.Context, gr schema.GroupResource) (*v1alpha1.ApplicationDefinition, *chart.Chart, error)

// SetLoader sets the Loader used for kinds KindServed has not loaded.
func (h *Handler) SetLoader(l Loader) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loader = l
}

// loaderRetry is how long a kind the Loader failed to load is admitted
// unchecked before the Loader is tried again.
const loaderRetry = 30 * time.Second

// onDemandRefresh is how long an on-demand validator is used before the
// Loader is asked again whether it is still the served one.
var onDemandRefresh = 30 * time.Second

// stale reports whether e must be re-read through the Loader.
func (e *kindEntry) stale() bool {
	return e.onDemand && time.Since(e.loadedAt) > onDemandRefresh
}

// loadOnDemand loads (or re-reads) the kind of gr through the Loader, one
// load per kind at a time; nil when there is no Loader or it failed, in which case an
// on-demand entry that can no longer be confirmed is dropped rather than
// used with a possibly outdated schema.
func (h *Handler) loadOnDemand(ctx context.Context, gr schema.GroupResource) *kindEntry {
	h.mu.RLock()
	loader := h.loader
	h.mu.RUnlock()
	if loader == nil {
		return nil
	}
	// One load per kind at a time, so a slow artifact download for one kind
	// never holds up the first requests of another.
	h.loadMu.Lock()
	if h.loading == nil {
		h.loading, h.failedAt = map[schema.GroupResource]*sync.Mutex{}, map[schema.GroupResource]time.Time{}
	}
	kindMu := h.loading[gr]
	if kindMu == nil {
		kindMu = &sync.Mutex{}
		h.loading[gr] = kindMu
	}
	h.loadMu.Unlock()
	kindMu.Lock()
	defer kindMu.Unlock()
	if e := h.lookup(gr); e != nil && !e.stale() {
		return e // loaded while this request waited
	}
	h.loadMu.Lock()
	failed, recent := h.failedAt[gr]
	h.loadMu.Unlock()
	if recent && time.Since(failed) < loaderRetry {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	def, c, err := loader(ctx, gr)
	if err == nil {
		err = h.load(def, c, true)
	}
	h.loadMu.Lock()
	if err != nil {
		h.failedAt[gr] = time.Now()
	} else {
		delete(h.failedAt, gr)
	}
	h.loadMu.Unlock()
	if err != nil {
		if e := h.lookup(gr); e != nil && e.onDemand {
			h.remove(e.definition)
		}
		h.log.Info("could not load the kind's chart schema; admitting it unchecked for now", "resource", gr.String(), "error", err.Error())
		return nil
	}
	return h.lookup(gr)
}

// load (re)builds the kind's validator when what it is built from changed.
func (h *Handler) load(def *v1alpha1.ApplicationDefinition, c *chart.Chart, onDemand bool) error {
	n := names.Effective(def)
	gvr := schema.GroupVersionResource{Group: n.Group, Version: crd.Version, Resource: n.Plural}
	gk := schema.GroupKind{Group: n.Group, Kind: n.Kind}
	var override []byte
	if def.Spec.Schema != nil && len(def.Spec.Schema.Raw) > 0 {
		override = def.Spec.Schema.Raw
	}
	// The administrator's values are merged over the spec before Helm's
	// check, as they are in the HelmRelease.
	set, err := lock.Set(def)
	if err != nil {
		return fmt.Errorf("building the admission validator of %s: %w", gk, err)
	}
	d := digest(c, override)
	if def.Spec.Values != nil && def.Spec.Values.Set != nil {
		d += "+" + string(def.Spec.Values.Set.Raw)
	}

	h.mu.Lock()
	cur := h.byDef[def.Name]
	switch {
	case onDemand && cur != nil && !cur.onDemand:
		// KindServed (the leader's definition steps) is authoritative: an
		// on-demand load that read an older status must not replace it.
		h.mu.Unlock()
		return nil
	case cur != nil && cur.digest == d && cur.gvr == gvr && cur.gk == gk:
		cur.onDemand, cur.loadedAt = onDemand, time.Now()
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()

	begin := time.Now()
	v, err := h.newValidator(c, override)
	if err != nil {
		h.remove(def.Name)
		return fmt.Errorf("building the admission validator of %s: %w", gk, err)
	}
	h.mu.Lock()
	if old := h.byDef[def.Name]; old != nil {
		if onDemand && !old.onDemand {
			h.mu.Unlock()
			return nil // KindServed won the race
		}
		delete(h.byResource, old.gvr.GroupResource())
	}
	e := &kindEntry{definition: def.Name, gvr: gvr, gk: gk, digest: d, validator: v, set: set, onDemand: onDemand, loadedAt: time.Now()}
	h.byDef[def.Name] = e
	h.byResource[gvr.GroupResource()] = e
	h.mu.Unlock()
	h.log.Info("admission validator loaded", "definition", def.Name, "kind", gk.String(), "resource", gvr.Resource,
		"chartVersion", chartVersion(c), "inlineSchema", override != nil, "onDemand", onDemand, "took", time.Since(begin).String())
	return nil
}

func chartVersion(c *chart.Chart) string {
	if c == nil {
		return ""
	}
	return c.Version
}

// KindRetired drops the kind's validator and removes it from the webhook
// configuration.
func (h *Handler) KindRetired(_ context.Context, def *v1alpha1.ApplicationDefinition) error {
	h.remove(def.Name)
	if h.registry != nil {
		h.registry.RemoveKind(def.Name)
	}
	return nil
}

func (h *Handler) remove(definition string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.byDef[definition]; e != nil {
		delete(h.byResource, e.gvr.GroupResource())
		delete(h.byDef, definition)
		h.log.Info("admission validator unloaded", "definition", definition, "kind", e.gk.String())
	}
}

func (h *Handler) lookup(gr schema.GroupResource) *kindEntry {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.byResource[gr]
}

// Handle decides on one admission request.
//
// Only creates and updates of the object itself are checked. An update that
// leaves the spec as it was is allowed unchecked: labels, annotations,
// finalizers and the operator's own bookkeeping must never be blocked because
// the spec, valid when it was written, fails a newer chart's schema. A kind
// whose validator is not loaded (the operator has just started, or the chart
// cannot be read) is admitted with a warning: the CRD schema has already
// checked the spec's structure, and rejecting every write until the chart
// is back would turn a chart outage into an outage of the kind.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	begin := time.Now()
	kind, op := req.Kind.Kind, string(req.Operation)
	verdict := VerdictIgnored
	defer func() {
		admissionRequests.WithLabelValues(kind, op, verdict).Inc()
		admissionDuration.WithLabelValues(kind).Observe(time.Since(begin).Seconds())
	}()
	log := h.log.WithValues("kind", kind, "namespace", req.Namespace, "name", req.Name, "operation", op, "uid", req.UID)

	if req.SubResource != "" || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.Allowed("")
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
		verdict = VerdictError
		log.Error(err, "decoding admission request")
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding %s: %w", kind, err))
	}
	spec, _ := obj.Object["spec"].(map[string]any)
	if req.Operation == admissionv1.Update {
		old := &unstructured.Unstructured{}
		if err := old.UnmarshalJSON(req.OldObject.Raw); err != nil {
			verdict = VerdictError
			log.Error(err, "decoding admission request's old object")
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old %s: %w", kind, err))
		}
		if equality.Semantic.DeepEqual(old.Object["spec"], obj.Object["spec"]) {
			verdict = VerdictUnchanged
			return admission.Allowed("spec unchanged")
		}
	}

	gr := schema.GroupResource{Group: req.Resource.Group, Resource: req.Resource.Resource}
	e := h.lookup(gr)
	if e == nil || e.stale() {
		e = h.loadOnDemand(ctx, gr)
	}
	if e == nil {
		verdict = VerdictUnchecked
		log.V(1).Info("admitted without checking values: no validator loaded for the kind")
		return admission.Allowed("").WithWarnings(fmt.Sprintf(
			"chartkind has not loaded the chart schema of %s yet: spec was checked against the CRD schema only, Helm may still reject the values",
			gr.String()))
	}
	if spec == nil {
		spec = map[string]any{}
	}
	errs := e.validator.Validate(lock.Merge(spec, e.set))
	if len(errs) == 0 {
		verdict = VerdictAllowed
		log.V(1).Info("admitted", "took", time.Since(begin).String())
		return admission.Allowed("")
	}
	verdict = VerdictDenied
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName()
	}
	status := apierrors.NewInvalid(e.gk, name, errs).Status()
	log.Info("denied", "reason", status.Message)
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}
