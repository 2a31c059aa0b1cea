package definition

import (
	"context"
	"sync"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/engine"
)

// ObjectCounter counts the objects of a served kind from its watch cache; the
// engine implements it.
type ObjectCounter interface {
	ObjectCount(definitionName string) (int, bool)
}

// CountsReconciler keeps status.objects and status.readyObjects of every
// definition. It is separate from the definition controller so that the
// thousands of object and HelmRelease events of a busy kind never run the
// schema steps: it counts from caches at most once per MinInterval per
// definition, and writes only when a count changed.
type CountsReconciler struct {
	// Client reads definitions from the manager's cache.
	Client client.Client
	// Releases lists HelmReleases from the manager's cache as it holds
	// them, without decoding them: a count reads only their metadata and
	// whether they are Ready.
	Releases *engine.ReleaseCache
	Counter  ObjectCounter
	// MinInterval between two counts of one definition; defaults to 2s.
	MinInterval time.Duration

	mu    sync.Mutex
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	last  map[string]time.Time
}

// ObjectsChanged queues a recount of the definition's objects. It never
// blocks, so the engine can call it from its informers.
func (r *CountsReconciler) ObjectsChanged(definitionName string) {
	r.mu.Lock()
	q := r.queue
	r.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: definitionName}})
	}
}

// SetupWithManager registers the controller: definitions (created or
// changed), HelmReleases of chartkind's kinds (created, deleted, Ready
// changed) and the engine's object events all trigger a recount.
func (r *CountsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.last = map[string]time.Time{}
	return ctrl.NewControllerManagedBy(mgr).
		Named("applicationdefinition-objects").
		For(&v1alpha1.ApplicationDefinition{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&helmv2.HelmRelease{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if d := o.GetLabels()[releaseDefinitionLabel]; d != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: d}}}
			}
			return nil
		}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return engine.ReleaseReady(e.ObjectOld) != engine.ReleaseReady(e.ObjectNew) ||
				e.ObjectOld.GetLabels()[releaseDefinitionLabel] != e.ObjectNew.GetLabels()[releaseDefinitionLabel]
		}})).
		WatchesRawSource(crsource.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			r.queue = q
			r.mu.Unlock()
			return nil
		})).
		Complete(r)
}

// Reconcile recounts one definition's objects.
func (r *CountsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	def := &v1alpha1.ApplicationDefinition{}
	if err := r.Client.Get(ctx, req.NamespacedName, def); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if def.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	// Count at most once per MinInterval per definition: a bulk import
	// brings thousands of events, and each count reads every HelmRelease
	// of the kind from the cache.
	minInterval := r.MinInterval
	if minInterval <= 0 {
		minInterval = 2 * time.Second
	}
	r.mu.Lock()
	wait := minInterval - time.Since(r.last[def.Name])
	r.mu.Unlock()
	if wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	total, ok := r.Counter.ObjectCount(def.Name)
	if !ok {
		// Not served (yet): the count is unknown, leave it.
		return ctrl.Result{}, nil
	}
	releases, err := r.Releases.Headers(ctx, client.MatchingLabels{releaseDefinitionLabel: def.Name})
	if err != nil {
		return ctrl.Result{}, err
	}
	ready := 0
	for _, hr := range releases {
		if metav1.GetControllerOf(hr) != nil && hr.GetDeletionTimestamp() == nil && engine.ReleaseReady(hr) {
			ready++
		}
	}
	ready = min(ready, total)
	r.mu.Lock()
	r.last[def.Name] = time.Now()
	r.mu.Unlock()
	if def.Status.Objects == int32(total) && def.Status.ReadyObjects == int32(ready) {
		return ctrl.Result{}, nil
	}
	orig := def.DeepCopy()
	def.Status.Objects, def.Status.ReadyObjects = int32(total), int32(ready)
	if err := r.Client.Status().Patch(ctx, def, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	return ctrl.Result{}, nil
}
