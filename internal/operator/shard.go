package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/chartkind/chartkind/api/v1alpha1"
	defctrl "github.com/chartkind/chartkind/internal/controller/definition"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/engine"
	"github.com/chartkind/chartkind/internal/tenancy"
)

// shardServer is what a shard runs in place of the definition controller
// (Options.ShardOnly): it writes nothing and only decides which kinds the
// shard's engine serves. A kind is served once its definition's CRD exists,
// carries the definition's label and is established, that is once the
// operator that manages definitions has applied it; it stops being served
// when the definition or its CRD goes. Definitions, CRDs, roles, counts and
// the webhook thus have one writer however many shards run.
type shardServer struct {
	reader client.Reader // the API server: a CRD is read live, its status is not cached
	cached client.Client
	engine *engine.Engine
	log    logr.Logger
	// requireSA and policy are the operator's --require-service-account and
	// multi-tenant policy: a shard refuses what the managing operator
	// refuses (refused).
	requireSA bool
	policy    tenancy.Policy
}

func setupShard(mgr manager.Manager, eng *engine.Engine, log logr.Logger, opts Options) error {
	s := &shardServer{reader: mgr.GetAPIReader(), cached: mgr.GetClient(), engine: eng, log: log,
		requireSA: opts.RequireServiceAccount, policy: opts.Policy}
	return ctrl.NewControllerManagedBy(mgr).
		Named("applicationdefinition-shard").
		For(&v1alpha1.ApplicationDefinition{}).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if d := o.GetLabels()[crd.DefinitionLabel]; d != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: d}}}
			}
			return nil
		})).
		Complete(s)
}

func (s *shardServer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	def := &v1alpha1.ApplicationDefinition{}
	if err := s.cached.Get(ctx, req.NamespacedName, def); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		// Gone: the definition as last served says what goes with it.
		def = s.engine.Definition(req.Name)
		if def == nil {
			return reconcile.Result{}, nil
		}
		def.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	}
	if def.DeletionTimestamp != nil {
		s.engine.Stop(def.Name)
		if def.Spec.DeletionPolicy == v1alpha1.DeletionDelete {
			// The managing operator deletes the CRD and the HelmReleases in
			// its cache; this shard's are in this shard's cache only.
			return reconcile.Result{}, s.deleteReleases(ctx, def)
		}
		return reconcile.Result{}, nil
	}
	c := &apiextensionsv1.CustomResourceDefinition{}
	err := s.reader.Get(ctx, types.NamespacedName{Name: definition.Effective(def).CRDName()}, c)
	switch {
	case apierrors.IsNotFound(err):
		// Not applied yet, or retired: the CRD's own event brings us back.
		s.engine.Stop(def.Name)
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("reading the CRD of %s: %w", def.Name, err)
	}
	if c.Labels[crd.DefinitionLabel] != def.Name || c.DeletionTimestamp != nil {
		s.engine.Stop(def.Name)
		return reconcile.Result{}, nil
	}
	if !established(c) {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	if why := s.refused(def); why != "" {
		// The managing operator says why on the definition, and keeps the
		// settings it last served; so does this shard: the refused settings
		// reach none of its HelmReleases.
		s.log.Info("definition refused, keeping what was served", "definition", def.Name, "generation", def.Generation, "reason", why)
		return reconcile.Result{}, nil
	}
	if err := s.engine.Serve(ctx, def); err != nil {
		return reconcile.Result{}, fmt.Errorf("serving %s: %w", def.Name, err)
	}
	return reconcile.Result{}, nil
}

// deleteReleases deletes the HelmReleases of this shard controlled by an
// object of def's kind, as the definition controller does for its own
// (deletionPolicy Delete): with the CRD gone, nothing else would.
func (s *shardServer) deleteReleases(ctx context.Context, def *v1alpha1.ApplicationDefinition) error {
	deleted, err := defctrl.DeleteKindReleases(ctx, s.cached, def)
	for _, hr := range deleted {
		s.log.Info("deleted HelmRelease of a deleted definition's kind", "definition", def.Name, "helmRelease", hr)
	}
	return err
}

func established(c *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// refused names why the managing operator refuses def before serving it
// (definition controller: ServiceAccountRequired, InvalidRelease), or "".
func (s *shardServer) refused(def *v1alpha1.ApplicationDefinition) string {
	if sa, _ := s.policy.ServiceAccount(&def.Spec.Release); s.requireSA && sa == "" {
		return defctrl.ReasonServiceAccountRequired
	}
	if len(definition.ReleaseProblems(def)) > 0 {
		return defctrl.ReasonInvalidRelease
	}
	return ""
}
