package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	names "github.com/chartkind/chartkind/internal/definition"
)

// DefaultConfigurationName is the name of the ValidatingWebhookConfiguration.
const DefaultConfigurationName = "chartkind"

// DefaultTimeoutSeconds bounds how long the API server waits for the webhook.
// Validation is in memory and takes well under a millisecond; a webhook that
// has not answered in 5 seconds is stuck, and users should learn so before
// kubectl's own timeouts.
const DefaultTimeoutSeconds = 5

// CAInjectAnnotation asks cert-manager's CA injector to fill caBundle from a
// Certificate ("namespace/name").
const CAInjectAnnotation = "cert-manager.io/inject-ca-from"

// SpecChangedCondition is the match condition that keeps the API server from
// calling the webhook for updates that leave spec as it was. The handler
// allows those anyway; the condition also lets them through while the
// operator is down, whatever the failure policy: a finalizer or a label can
// always be removed.
var SpecChangedCondition = admissionregistrationv1.MatchCondition{
	Name:       "spec-changed",
	Expression: "request.operation != 'UPDATE' || has(object.spec) != has(oldObject.spec) || (has(object.spec) && object.spec != oldObject.spec)",
}

// ConfigOptions configure the ValidatingWebhookConfiguration.
type ConfigOptions struct {
	// Name of the configuration; default DefaultConfigurationName.
	Name string
	// ClientConfig says how the API server reaches the webhook (a Service or
	// a URL), without caBundle. It is used only when chartkind creates the
	// configuration: an existing one keeps its own.
	ClientConfig admissionregistrationv1.WebhookClientConfig
	// FailurePolicy when chartkind creates the configuration; default Fail.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// ManageCABundle: the configuration's caBundle is the CA bundle given to
	// SetCABundle (self-managed certificates). Otherwise caBundle is left to
	// whoever fills it (cert-manager's CA injector).
	ManageCABundle bool
	// InjectCAFrom, when set, is the cert-manager Certificate
	// ("namespace/name") a configuration created by chartkind asks the CA
	// injector to take caBundle from.
	InjectCAFrom string
	Logger       logr.Logger
}

// Configurator keeps chartkind's entry of the ValidatingWebhookConfiguration
// in step: its rules name every served kind, and with self-managed
// certificates its caBundle is the current CA bundle. It creates the
// configuration when it is missing; otherwise it server-side applies only
// those fields, as field manager "chartkind", and only when they differ, so an
// idle operator writes nothing. It runs on the leader, where kinds are served.
//
// The entry has one rule per kind (CREATE and UPDATE of the resource, not its
// subresources), sorted by group and resource. One entry rather than one per
// kind keeps one clientConfig, one caBundle and one name in error messages.
type Configurator struct {
	opts   ConfigOptions
	client client.Client
	reader client.Reader
	log    logr.Logger

	trigger chan event.GenericEvent

	mu sync.Mutex
	// kinds maps a definition name to the resource it serves.
	kinds map[string]schema.GroupVersionResource
	// seeded are the resources of the configuration found at start-up, kept
	// until they are confirmed or no definition claims them: after a restart,
	// rules must not disappear until every definition has been reconciled.
	seeded   map[schema.GroupVersionResource]bool
	seedDone bool
	caBundle []byte
}

// NewConfigurator returns a Configurator using c (reads of definitions may be
// cached) and r (reads of the configuration, uncached so a write is never
// compared with a stale copy).
func NewConfigurator(c client.Client, r client.Reader, opts ConfigOptions) *Configurator {
	if opts.Name == "" {
		opts.Name = DefaultConfigurationName
	}
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = admissionregistrationv1.Fail
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	cfg := &Configurator{
		opts: opts, client: c, reader: r, log: log,
		trigger: make(chan event.GenericEvent, 1),
		kinds:   map[string]schema.GroupVersionResource{},
		seeded:  map[schema.GroupVersionResource]bool{},
	}
	cfg.kick() // create the configuration at start, even before any kind is served
	return cfg
}

// SetupWithManager runs the Configurator as a leader-elected controller: it
// reconciles on its own changes and when the configuration is edited.
func (c *Configurator) SetupWithManager(mgr ctrl.Manager) error {
	named := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == c.opts.Name })
	return ctrl.NewControllerManagedBy(mgr).
		Named("webhookconfiguration").
		For(&admissionregistrationv1.ValidatingWebhookConfiguration{}, builder.WithPredicates(named)).
		WatchesRawSource(source.Channel(c.trigger, &handler.EnqueueRequestForObject{})).
		Complete(c)
}

// kick asks for a reconcile; one pending request is enough, as a reconcile
// reads the latest state.
func (c *Configurator) kick() {
	select {
	case c.trigger <- event.GenericEvent{Object: &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: c.opts.Name}}}:
	default:
	}
}

// SetKind makes the webhook see the definition's resource.
func (c *Configurator) SetKind(definition string, gvr schema.GroupVersionResource) {
	c.mu.Lock()
	changed := c.kinds[definition] != gvr
	c.kinds[definition] = gvr
	c.mu.Unlock()
	if changed {
		c.kick()
	}
}

// RemoveKind stops the webhook seeing the definition's resource.
func (c *Configurator) RemoveKind(definition string) {
	c.mu.Lock()
	gvr, ok := c.kinds[definition]
	delete(c.kinds, definition)
	delete(c.seeded, gvr)
	c.mu.Unlock()
	if ok {
		c.kick()
	}
}

// SetCABundle sets the caBundle to inject (with ManageCABundle).
func (c *Configurator) SetCABundle(pem []byte) {
	c.mu.Lock()
	changed := !bytes.Equal(c.caBundle, pem)
	c.caBundle = slices.Clone(pem)
	c.mu.Unlock()
	if changed {
		c.kick()
	}
}

// Reconcile brings the configuration in step.
func (c *Configurator) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := c.reader.Get(ctx, types.NamespacedName{Name: c.opts.Name}, cfg)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, c.create(ctx)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", c.opts.Name, err)
	}
	i := slices.IndexFunc(cfg.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool { return w.Name == WebhookName })
	if i < 0 {
		return ctrl.Result{}, c.addEntry(ctx, cfg)
	}
	entry := cfg.Webhooks[i]
	c.seed(entry.Rules)
	rules, err := c.desiredRules(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	bundle, manage := c.bundle()
	rulesOK := equality.Semantic.DeepEqual(normalizeRules(entry.Rules), rules)
	bundleOK := !manage || bytes.Equal(entry.ClientConfig.CABundle, bundle)
	if rulesOK && bundleOK {
		return ctrl.Result{}, nil
	}
	if err := c.apply(ctx, rules, bundle, manage); err != nil {
		return ctrl.Result{}, err
	}
	c.log.Info("webhook configuration updated", "configuration", c.opts.Name, "resources", resourcesOf(rules),
		"rulesChanged", !rulesOK, "caBundleChanged", !bundleOK)
	return ctrl.Result{}, nil
}

func (c *Configurator) bundle() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opts.ManageCABundle {
		return nil, false
	}
	return slices.Clone(c.caBundle), true
}

// seed remembers the rules found in the configuration the first time it is
// read, so a restarted operator keeps them until definitions are reconciled.
func (c *Configurator) seed(rules []admissionregistrationv1.RuleWithOperations) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seedDone {
		return
	}
	c.seedDone = true
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, v := range r.APIVersions {
				for _, res := range r.Resources {
					c.seeded[schema.GroupVersionResource{Group: g, Version: v, Resource: res}] = true
				}
			}
		}
	}
}

// desiredRules are the served kinds' rules, plus seeded ones that a
// definition not being deleted still claims.
func (c *Configurator) desiredRules(ctx context.Context) ([]admissionregistrationv1.RuleWithOperations, error) {
	c.mu.Lock()
	want := map[schema.GroupVersionResource]bool{}
	for _, gvr := range c.kinds {
		want[gvr] = true
	}
	pending := len(c.seeded) > 0
	c.mu.Unlock()
	if pending {
		var defs v1alpha1.ApplicationDefinitionList
		if err := c.client.List(ctx, &defs); err != nil {
			return nil, fmt.Errorf("listing ApplicationDefinitions: %w", err)
		}
		claimed := map[schema.GroupVersionResource]bool{}
		for i := range defs.Items {
			if defs.Items[i].DeletionTimestamp == nil {
				n := names.Effective(&defs.Items[i])
				claimed[schema.GroupVersionResource{Group: n.Group, Version: crd.Version, Resource: n.Plural}] = true
			}
		}
		c.mu.Lock()
		for gvr := range c.seeded {
			if !claimed[gvr] || want[gvr] {
				delete(c.seeded, gvr) // unclaimed, or confirmed by a served kind
				continue
			}
			want[gvr] = true
		}
		c.mu.Unlock()
	}
	gvrs := make([]schema.GroupVersionResource, 0, len(want))
	for gvr := range want {
		gvrs = append(gvrs, gvr)
	}
	return rulesFor(gvrs), nil
}

// rulesFor returns one rule per resource, sorted, in the form the API server
// stores (so that comparing with what it returns is exact).
func rulesFor(gvrs []schema.GroupVersionResource) []admissionregistrationv1.RuleWithOperations {
	sort.Slice(gvrs, func(i, j int) bool {
		a, b := gvrs[i], gvrs[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		return a.Version < b.Version
	})
	rules := make([]admissionregistrationv1.RuleWithOperations, 0, len(gvrs))
	for _, gvr := range gvrs {
		rules = append(rules, admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{gvr.Group},
				APIVersions: []string{gvr.Version},
				Resources:   []string{gvr.Resource},
				Scope:       ptr.To(admissionregistrationv1.NamespacedScope),
			},
		})
	}
	return rules
}

// normalizeRules treats "no rules" alike however it is spelled.
func normalizeRules(rules []admissionregistrationv1.RuleWithOperations) []admissionregistrationv1.RuleWithOperations {
	if rules == nil {
		return []admissionregistrationv1.RuleWithOperations{}
	}
	return rules
}

func resourcesOf(rules []admissionregistrationv1.RuleWithOperations) []string {
	out := []string{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, res+"."+g)
			}
		}
	}
	return out
}

// entry is chartkind's complete webhook entry, as created.
func (c *Configurator) entry(rules []admissionregistrationv1.RuleWithOperations, bundle []byte) admissionregistrationv1.ValidatingWebhook {
	cc := *c.opts.ClientConfig.DeepCopy()
	cc.CABundle = bundle
	return admissionregistrationv1.ValidatingWebhook{
		Name:                    WebhookName,
		ClientConfig:            cc,
		Rules:                   rules,
		FailurePolicy:           ptr.To(c.opts.FailurePolicy),
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](DefaultTimeoutSeconds),
		AdmissionReviewVersions: []string{"v1"},
		MatchConditions:         []admissionregistrationv1.MatchCondition{SpecChangedCondition},
		// Every namespace and object: the rules already name only chartkind's kinds.
		NamespaceSelector: &metav1.LabelSelector{},
		ObjectSelector:    &metav1.LabelSelector{},
	}
}

// create creates the configuration with chartkind's entry.
func (c *Configurator) create(ctx context.Context) error {
	if c.opts.ClientConfig.URL == nil && c.opts.ClientConfig.Service == nil {
		return errors.New("ValidatingWebhookConfiguration " + c.opts.Name + " does not exist, and chartkind cannot create it: no webhook Service or URL is configured")
	}
	rules, err := c.desiredRules(ctx)
	if err != nil {
		return err
	}
	bundle, _ := c.bundle()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{
			Name:   c.opts.Name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "chartkind"},
		},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{c.entry(rules, bundle)},
	}
	if c.opts.InjectCAFrom != "" {
		cfg.Annotations = map[string]string{CAInjectAnnotation: c.opts.InjectCAFrom}
	}
	c.mu.Lock()
	c.seedDone = true // nothing to seed from
	c.mu.Unlock()
	if err := c.client.Create(ctx, cfg, client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("creating ValidatingWebhookConfiguration %s: %w", c.opts.Name, err)
	}
	c.log.Info("webhook configuration created", "configuration", c.opts.Name, "resources", resourcesOf(rules))
	return nil
}

// addEntry adds chartkind's entry to a configuration that lacks it, with a
// strategic merge patch (webhooks merge by name), leaving other entries alone.
func (c *Configurator) addEntry(ctx context.Context, cfg *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	if c.opts.ClientConfig.URL == nil && c.opts.ClientConfig.Service == nil {
		return fmt.Errorf("ValidatingWebhookConfiguration %s has no webhook %s, and chartkind cannot add it: no webhook Service or URL is configured", c.opts.Name, WebhookName)
	}
	rules, err := c.desiredRules(ctx)
	if err != nil {
		return err
	}
	bundle, _ := c.bundle()
	orig := cfg.DeepCopy()
	cfg.Webhooks = append(cfg.Webhooks, c.entry(rules, bundle))
	if err := c.client.Patch(ctx, cfg, client.StrategicMergeFrom(orig), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("adding webhook %s to ValidatingWebhookConfiguration %s: %w", WebhookName, c.opts.Name, err)
	}
	c.log.Info("webhook added to existing configuration", "configuration", c.opts.Name, "resources", resourcesOf(rules))
	return nil
}

// apply server-side applies the fields chartkind owns: the rules, and the
// caBundle when it manages certificates. An empty rules list is sent
// explicitly, so that it replaces rules owned by the create.
func (c *Configurator) apply(ctx context.Context, rules []admissionregistrationv1.RuleWithOperations, bundle []byte, manage bool) error {
	rs := make([]any, 0, len(rules))
	for _, r := range rules {
		ops := make([]any, 0, len(r.Operations))
		for _, op := range r.Operations {
			ops = append(ops, string(op))
		}
		rs = append(rs, map[string]any{
			"operations":  ops,
			"apiGroups":   toAny(r.APIGroups),
			"apiVersions": toAny(r.APIVersions),
			"resources":   toAny(r.Resources),
			"scope":       string(*r.Scope),
		})
	}
	entry := map[string]any{"name": WebhookName, "rules": rs}
	if manage {
		entry["clientConfig"] = map[string]any{"caBundle": base64.StdEncoding.EncodeToString(bundle)}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": admissionregistrationv1.SchemeGroupVersion.String(),
		"kind":       "ValidatingWebhookConfiguration",
		"metadata":   map[string]any{"name": c.opts.Name},
		"webhooks":   []any{entry},
	}}
	if err := c.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ValidatingWebhookConfiguration %s: %w", c.opts.Name, err)
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
