package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/engine"
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
	cached client.Reader
	engine *engine.Engine
	log    logr.Logger
}

func setupShard(mgr manager.Manager, eng *engine.Engine, log logr.Logger) error {
	s := &shardServer{reader: mgr.GetAPIReader(), cached: mgr.GetClient(), engine: eng, log: log}
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
		if apierrors.IsNotFound(err) {
			s.engine.Stop(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if def.DeletionTimestamp != nil {
		s.engine.Stop(def.Name)
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
	if err := s.engine.Serve(ctx, def); err != nil {
		return reconcile.Result{}, fmt.Errorf("serving %s: %w", def.Name, err)
	}
	return reconcile.Result{}, nil
}

func established(c *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
