// Package operator wires chartkind's operator together: a controller-runtime
// manager running the ApplicationDefinition controller, the engine that serves
// the generated kinds and the mirror that keeps objects and HelmReleases in
// step. The `chartkind operator` command and the integration tests both build
// the operator here.
package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/chartkind/chartkind/api/v1alpha1"
	defctrl "github.com/chartkind/chartkind/internal/controller/definition"
	"github.com/chartkind/chartkind/internal/engine"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/tenancy"
	"github.com/chartkind/chartkind/internal/webhook"
)

// RBAC of the operator (make manifests writes config/rbac/role.yaml from these
// and the markers of the packages that need more; the Helm chart renders that
// file). Only the verbs the code uses: docs/rbac.md explains each rule. Kinds
// generated in groups other than apps.chartkind.io get the apps.chartkind.io
// rules through the chart's rbac.extraGroups. Leader election's Lease and
// events live in a namespaced Role (config/rbac/leader_election_role.yaml).
// +kubebuilder:rbac:groups=chartkind.io,resources=applicationdefinitions,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=chartkind.io,resources=applicationdefinitions/status,verbs=patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=helm.toolkit.fluxcd.io,resources=helmreleases,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps.chartkind.io,resources=*,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps.chartkind.io,resources=*/status,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// What releases installed, read on demand for health and access information
// (internal/insight; --release-insight=false drops the need):
// +kubebuilder:rbac:groups="",resources=services;persistentvolumeclaims,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets;replicasets,verbs=get
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get

// Options configure the operator.
type Options struct {
	// MetricsBindAddress is where Prometheus metrics are served; "0" or "" turns them off.
	MetricsBindAddress string
	// Pprof serves Go's runtime profiles (net/http/pprof, /debug/pprof/) on
	// the metrics address; it needs MetricsBindAddress. Profiles expose what
	// the process holds in memory: enable it only where the metrics address
	// is private.
	Pprof bool
	// HealthProbeBindAddress serves /healthz and /readyz; "0" or "" turns them off.
	HealthProbeBindAddress string
	// LeaderElection makes only one replica active at a time.
	LeaderElection bool
	// LeaderElectionID names the Lease; defaults to "chartkind-operator".
	LeaderElectionID string
	// LeaderElectionNamespace holds the Lease; defaults to the pod's namespace in a cluster.
	LeaderElectionNamespace string
	// ChartsDir holds the charts definitions point at, as <name>/ or <name>-<version>.tgz.
	ChartsDir string
	// RequireServiceAccount refuses definitions without
	// spec.release.serviceAccountName (Ready=False, ServiceAccountRequired):
	// the multi-tenant profile, see docs/security.md.
	RequireServiceAccount bool
	// Policy is the multi-tenant release policy: a default service account
	// for releases of definitions without one, and HelmReleases that never
	// reference a source in another namespace (internal/tenancy).
	Policy tenancy.Policy
	// NamespaceRolesInterval is how often the built-in admin and edit
	// ClusterRoles are read to tell whether tenants may write HelmReleases
	// directly (ReleasesIsolated=False, HelmReleasesWritable); default 1m,
	// negative turns the check off.
	NamespaceRolesInterval time.Duration
	// MaxConcurrentReconciles is the number of engine workers (application
	// objects reconciled at once); defaults to 4.
	MaxConcurrentReconciles int
	// Logger defaults to controller-runtime's global logger.
	Logger logr.Logger
	// Observers are told about served and retired kinds (see definition.KindObserver),
	// after the ones the operator sets up itself.
	Observers []defctrl.KindObserver
	// Webhook configures the validating admission webhook (webhook.go); nil disables it.
	Webhook *WebhookOptions
	// DisableInsight stops reading what each release installed: no Healthy
	// condition, no access information (and no read access needed to
	// workloads, Services, Ingresses and Secrets).
	DisableInsight bool
	// DisableReleaseNotes stops reading Helm's release records (Secrets) for
	// the notes rendered from NOTES.txt.
	DisableReleaseNotes bool
	// HealthInterval is how often a healthy release's objects are read again,
	// to notice workloads that degrade after install; default 5m.
	HealthInterval time.Duration
	// WatchLabelSelector, when set, makes this operator one shard of
	// several: it mirrors only the application objects whose labels match,
	// and their HelmReleases (docs/sharding.md).
	WatchLabelSelector string
	// ShardOnly runs only the mirror of this shard's objects: definitions,
	// CRDs, per-kind roles, definition counts and the webhook are left to the
	// operator that manages definitions. The shard serves a kind once its
	// definition's CRD exists and is established.
	ShardOnly bool
}

// Operator is a configured, not yet started operator.
type Operator struct {
	mgr    manager.Manager
	engine *engine.Engine
}

// Scheme returns the scheme the operator's clients use.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme, helmv2.AddToScheme, sourcev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// New builds an operator for the cluster cfg points at.
func New(cfg *rest.Config, opts Options) (*Operator, error) {
	if cfg == nil {
		return nil, errors.New("operator: no rest config")
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log.GetSink() == nil {
		log = ctrl.Log.WithName("chartkind")
	}
	bind := func(a string) string {
		if a == "" {
			return "0"
		}
		return a
	}
	probe := opts.HealthProbeBindAddress
	if probe == "0" {
		probe = ""
	}
	id := opts.LeaderElectionID
	if id == "" {
		id = "chartkind-operator"
	}
	sel, err := labels.Parse(opts.WatchLabelSelector)
	if err != nil {
		return nil, fmt.Errorf("operator: --watch-label-selector %q: %w", opts.WatchLabelSelector, err)
	}
	metrics := metricsserver.Options{BindAddress: bind(opts.MetricsBindAddress)}
	if opts.Pprof {
		if metrics.BindAddress == "0" {
			return nil, errors.New("operator: --pprof serves profiles on the metrics address: it needs --metrics-bind-address")
		}
		metrics.ExtraHandlers = pprofHandlers()
	}
	if opts.ShardOnly && opts.Webhook != nil {
		return nil, errors.New("operator: a shard that does not manage definitions serves no webhook: the operator that manages definitions does")
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOptions(sel),
		NewClient:               newClient,
		Logger:                  log,
		Metrics:                 metrics,
		HealthProbeBindAddress:  probe,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        id,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// The process ends when the manager stops, so hand over at once.
		LeaderElectionReleaseOnCancel: true,
		// Several operators may run in one process (tests restart it).
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("operator: creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("operator: dynamic client: %w", err)
	}
	recorder := mgr.GetEventRecorder("chartkind")
	own := engine.NewOwnWrites()
	m := mirror.New(own.Wrap(mgr.GetClient()), mgr.GetAPIReader(), recorder)
	m.SetShard(sel)
	m.SetPolicy(opts.Policy)
	if !opts.DisableInsight {
		// Live reads, on demand with backoff: caching every workload, Service
		// and Secret of the cluster to watch a few releases would cost more
		// memory than the operator itself (docs/status.md).
		m.EnableInsight(mirror.InsightOptions{
			Reader:          mgr.GetAPIReader(),
			ReleaseNotes:    !opts.DisableReleaseNotes,
			HealthyInterval: opts.HealthInterval,
		})
	}
	counts := &defctrl.CountsReconciler{Client: mgr.GetClient(), Releases: engine.NewReleaseCache(mgr.GetCache())}
	eng := engine.New(dyn, mgr.GetCache(), m, engine.Options{
		Workers:        opts.MaxConcurrentReconciles,
		Logger:         log.WithName("engine"),
		ObjectsChanged: counts.ObjectsChanged,
		// Operations users request on their objects (see mirror/operations.go).
		WatchedAnnotations: mirror.WatchedAnnotations(),
		OwnWrites:          own,
		Selector:           sel,
	})
	if err := mgr.Add(eng); err != nil {
		return nil, err
	}
	// Reconciles start from the engine's cache of the object, not a GET.
	m.SetObjectCache(eng)
	if opts.ShardOnly {
		if err := setupShard(mgr, eng, log.WithName("shard"), opts); err != nil {
			return nil, fmt.Errorf("operator: setting up the shard: %w", err)
		}
		return &Operator{mgr: mgr, engine: eng}, nil
	}
	counts.Counter = eng
	if err := counts.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("operator: setting up object counts: %w", err)
	}
	var observers []defctrl.KindObserver
	observers = append(observers, NewKindRoles(mgr))
	var admissionHandler *webhook.Handler
	if opts.Webhook != nil {
		wh, err := setupWebhook(mgr, *opts.Webhook, log)
		if err != nil {
			return nil, fmt.Errorf("operator: setting up the webhook: %w", err)
		}
		admissionHandler = wh
		observers = append(observers, wh)
	}
	observers = append(observers, opts.Observers...)
	r := &defctrl.Reconciler{
		Client:                mgr.GetClient(),
		APIReader:             mgr.GetAPIReader(),
		Engine:                eng,
		Observers:             observers,
		Recorder:              recorder,
		ChartsDir:             opts.ChartsDir,
		RequireServiceAccount: opts.RequireServiceAccount,
		Policy:                opts.Policy,
	}
	if opts.NamespaceRolesInterval >= 0 {
		resync := make(chan event.GenericEvent, 1)
		roles := &tenancy.RoleWatch{
			Reader: mgr.GetAPIReader(), Interval: opts.NamespaceRolesInterval, Log: log.WithName("namespace-roles"),
			OnChange: func() {
				select {
				case resync <- event.GenericEvent{Object: &v1alpha1.ApplicationDefinition{}}:
				default: // one pending resync covers every change
				}
			},
		}
		if err := mgr.Add(roles); err != nil {
			return nil, err
		}
		r.HelmReleaseWriters, r.Resync = roles.Writers, resync
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("operator: setting up definition controller: %w", err)
	}
	if admissionHandler != nil {
		// Replicas that are not the leader run no definition steps: they load
		// a kind's schema, read-only, on its first admission request.
		admissionHandler.SetLoader(r.ServedChart)
	}
	return &Operator{mgr: mgr, engine: eng}, nil
}

// Start runs the operator until ctx is done.
func (o *Operator) Start(ctx context.Context) error { return o.mgr.Start(ctx) }

// Serving reports whether the kind of the named definition is being served.
func (o *Operator) Serving(definitionName string) bool { return o.engine.Serving(definitionName) }
