// Package engine runs one dynamic controller for every application kind that
// chartkind serves. Kinds are added (Serve) and removed (Stop) at runtime, with
// no restart: each kind gets its own informer (its cache keeps each object
// compacted, objects.go), started and stopped on demand, and all kinds share one rate-limited work queue and one set of
// workers. A single HelmRelease informer maps HelmRelease events back to the
// application object they belong to.
//
// The engine knows nothing of what a reconcile does: workers call a Handler,
// which the mirror package implements and the operator package wires in.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/mapsize"
	"github.com/chartkind/chartkind/internal/metrics"
)

// Key names one application object of one served kind.
type Key struct {
	// Definition is the name of the ApplicationDefinition serving the kind.
	Definition string
	GVR        schema.GroupVersionResource
	Namespace  string
	Name       string
}

func (k Key) String() string {
	return fmt.Sprintf("%s/%s %s/%s", k.GVR.Resource, k.GVR.Group, k.Namespace, k.Name)
}

// Handler does the work for one object key. The mirror package implements it.
type Handler interface {
	// Reconcile brings the object obj of the kind def serves and its HelmRelease
	// in step. A positive requeueAfter asks for another reconcile after that long.
	Reconcile(ctx context.Context, def *v1alpha1.ApplicationDefinition, obj types.NamespacedName) (requeueAfter time.Duration, err error)
	// ReleaseOwner says which served definition, and which object name, a
	// HelmRelease belongs to; ok is false for HelmReleases of no served kind.
	ReleaseOwner(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) (definition, name string, ok bool)
}

// InformerSource gives the engine the shared HelmRelease informer, e.g. the
// controller-runtime manager's cache.
type InformerSource interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error)
}

// Options configure an Engine.
type Options struct {
	// Workers is the number of concurrent reconciles; defaults to 4.
	Workers int
	// SyncTimeout bounds how long Serve waits for a kind's informer to sync; defaults to 30s.
	SyncTimeout time.Duration
	// Logger for the engine; defaults to a discard logger.
	Logger logr.Logger
	// RateLimiter overrides the queue's default per-item exponential backoff.
	RateLimiter workqueue.TypedRateLimiter[Key]
	// ObjectsChanged, when set, is called (from an informer goroutine; it
	// must not block) when an object of a kind is added or deleted, so that
	// counts of objects can be kept up to date.
	ObjectsChanged func(definitionName string)
	// WatchedAnnotations are object annotations whose change is worth a
	// reconcile although it changes no generation (the operations users
	// request through annotations). Other metadata-only updates are ignored.
	WatchedAnnotations []string
	// OwnWrites, when set, holds the HelmRelease versions chartkind's own
	// writes produced (the mirror's client wrapped with OwnWrites.Wrap):
	// their watch events cost no reconcile.
	OwnWrites *OwnWrites
	// Selector, when set, limits the engine to the application objects
	// whose labels match it: one shard of several (docs/sharding.md). The
	// HelmRelease informer given to New must be limited the same way.
	Selector labels.Selector
}

// Engine serves application kinds. Create it with New, run it with Start.
type Engine struct {
	dyn          dynamic.Interface
	releases     InformerSource
	releaseCache *ReleaseCache
	handler      Handler
	opts         Options
	log          logr.Logger
	queue        workqueue.TypedRateLimitingInterface[Key]
	later        *later // keys to reconcile again after a while

	serveMu sync.Mutex // serialises Serve and Stop

	mu    sync.RWMutex
	kinds map[string]*kindState // by definition name
	ctx   context.Context       // set by Start

	started   chan struct{}
	startOnce sync.Once

	timesMu    sync.Mutex
	eventTimes map[Key]time.Time // rebuilt smaller after a bulk phase (mapsize)
	timesPeak  mapsize.Peak
}

type kindState struct {
	def    *v1alpha1.ApplicationDefinition
	gvr    schema.GroupVersionResource
	hash   string
	cancel context.CancelFunc
	done   chan struct{}
	// synced is set once the informer has synced; until then Serve has not
	// succeeded and a later Serve starts the kind again.
	synced bool
	// store is the informer's cache of the kind's objects (CachedObjects).
	store cache.Store
}

// New returns an engine that watches application objects with dyn and
// HelmReleases with the informer of releases, whose store it also lists
// (ReleaseCache).
func New(dyn dynamic.Interface, releases InformerSource, handler Handler, opts Options) *Engine {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = 30 * time.Second
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	rl := opts.RateLimiter
	if rl == nil {
		rl = workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[Key](50*time.Millisecond, 2*time.Minute),
			&workqueue.TypedBucketRateLimiter[Key]{Limiter: newBucket()},
		)
	}
	e := &Engine{
		dyn:          dyn,
		releases:     releases,
		releaseCache: NewReleaseCache(releases),
		handler:      handler,
		opts:         opts,
		log:          opts.Logger,
		queue:        workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[Key]{Name: "chartkind"}),
		kinds:        map[string]*kindState{},
		started:      make(chan struct{}),
		eventTimes:   map[Key]time.Time{},
	}
	e.later = newLater(e.queue.Add)
	return e
}

// GVR returns the resource served for def.
func GVR(def *v1alpha1.ApplicationDefinition) schema.GroupVersionResource {
	n := definition.Effective(def)
	return schema.GroupVersionResource{Group: n.Group, Version: crd.Version, Resource: n.Plural}
}

// Start runs the engine's workers until ctx is done. It implements
// controller-runtime's Runnable, so a manager runs it once elected leader.
func (e *Engine) Start(ctx context.Context) error {
	inf, err := e.releases.GetInformer(ctx, &helmv2.HelmRelease{})
	if err != nil {
		return fmt.Errorf("getting HelmRelease informer: %w", err)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if e.opts.OwnWrites.own(obj) {
				return // chartkind just created it: nothing new
			}
			e.enqueueRelease(obj)
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldKey, oldOK := e.releaseKey(oldObj)
			newKey, newOK := e.releaseKey(newObj)
			if e.opts.OwnWrites.own(newObj) {
				newOK = false // chartkind just wrote this version: nothing new
			}
			if oldOK && (oldKey != newKey || newOK) {
				e.Enqueue(oldKey)
			}
			if newOK && newKey != oldKey {
				e.Enqueue(newKey)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			e.opts.OwnWrites.forget(obj)
			e.enqueueRelease(obj)
		},
	})
	if err != nil {
		return fmt.Errorf("watching HelmReleases: %w", err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()

	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	e.startOnce.Do(func() { close(e.started) })

	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e.processNext(ctx) {
			}
		}()
	}
	go e.later.run(ctx)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		bulk := bulkEnd{min: bulkMinKeys, quiet: 3, every: releaseEvery}
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n := e.queue.Len()
				metrics.QueueDepth.Set(float64(n))
				metrics.Waiting.Set(float64(e.later.Waiting()))
				if peak, ended := bulk.sample(n, now); ended {
					releaseMemory(e.log, peak)
				}
			}
		}
	}()
	e.log.Info("engine started", "workers", e.opts.Workers)
	<-ctx.Done()
	e.queue.ShutDown()
	wg.Wait()
	e.stopAll()
	return nil
}

// NeedLeaderElection says the engine only runs on the elected leader.
func (e *Engine) NeedLeaderElection() bool { return true }

// Serve makes the engine serve the kind def describes. It is idempotent: for a
// definition whose spec has not changed it does nothing; for a changed one it
// restarts the kind's watch. It returns once the kind's informer has synced, or
// an error, in which case nothing is recorded and a later Serve tries again.
func (e *Engine) Serve(ctx context.Context, def *v1alpha1.ApplicationDefinition) error {
	select {
	case <-e.started:
	case <-ctx.Done():
		return fmt.Errorf("serving %s: engine not started: %w", def.Name, ctx.Err())
	}
	e.serveMu.Lock()
	defer e.serveMu.Unlock()

	hash, err := specHash(def)
	if err != nil {
		return err
	}
	gvr := GVR(def)
	e.mu.RLock()
	cur := e.kinds[def.Name]
	engineCtx := e.ctx
	e.mu.RUnlock()
	if cur != nil && cur.hash == hash && cur.synced {
		return nil
	}
	if engineCtx.Err() != nil {
		return fmt.Errorf("serving %s: engine stopped", def.Name)
	}
	if cur != nil {
		e.log.Info("definition changed: restarting watch", "definition", def.Name, "resource", gvr.String())
		e.stopKind(def.Name)
	}

	if err := e.waitServed(ctx, gvr); err != nil {
		return fmt.Errorf("serving %s: %w", def.Name, err)
	}
	kctx, cancel := context.WithCancel(engineCtx)
	var tweak dynamicinformer.TweakListOptionsFunc
	if e.opts.Selector != nil && !e.opts.Selector.Empty() {
		sel := e.opts.Selector.String()
		tweak = func(o *metav1.ListOptions) { o.LabelSelector = sel }
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(e.dyn, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, tweak).Informer()
	if err := inf.SetTransform(compactObject(e.opts.WatchedAnnotations)); err != nil {
		cancel()
		return fmt.Errorf("serving %s: %w", def.Name, err)
	}
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		e.log.V(1).Info("watch error", "resource", gvr.String(), "error", err.Error())
	})
	defName := def.Name
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		e.Enqueue(Key{Definition: defName, GVR: gvr, Namespace: m.GetNamespace(), Name: m.GetName()})
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			enqueue(obj)
			e.objectsChanged(defName)
		},
		UpdateFunc: func(o, n any) {
			// Status-only updates (chartkind's own status writes among them)
			// change neither generation nor deletion: nothing to mirror.
			if om, ok := o.(metav1.Object); ok {
				if nm, ok := n.(metav1.Object); ok && om.GetGeneration() == nm.GetGeneration() &&
					(om.GetDeletionTimestamp() == nil) == (nm.GetDeletionTimestamp() == nil) &&
					!e.annotationsChanged(om, nm) {
					return
				}
			}
			enqueue(n)
		},
		DeleteFunc: func(obj any) {
			enqueue(obj)
			e.objectsChanged(defName)
		},
	}); err != nil {
		cancel()
		return fmt.Errorf("serving %s: %w", def.Name, err)
	}
	// Record the kind before its informer runs: the events of the initial
	// list must find it when workers pick them up.
	done := make(chan struct{})
	state := &kindState{def: def.DeepCopy(), gvr: gvr, hash: hash, cancel: cancel, done: done, store: inf.GetStore()}
	e.mu.Lock()
	e.kinds[def.Name] = state
	e.mu.Unlock()
	go func() {
		defer close(done)
		inf.Run(kctx.Done())
	}()
	syncCtx, syncCancel := context.WithTimeout(ctx, e.opts.SyncTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		e.stopKind(def.Name)
		return fmt.Errorf("serving %s: watch of %s did not sync within %s", def.Name, gvr.String(), e.opts.SyncTimeout)
	}

	e.mu.Lock()
	state.synced = true
	n := len(e.kinds)
	e.mu.Unlock()
	// The initial list's events came before the kind counted as served:
	// count its objects now.
	e.objectsChanged(def.Name)
	metrics.ServedKinds.Set(float64(n))
	e.log.Info("serving kind", "definition", def.Name, "resource", gvr.String())

	// HelmReleases seen before the kind was served were mapped to nothing:
	// map them again, so that unlinked and orphaned ones are handled.
	e.resyncReleases(ctx, def.Name)
	return nil
}

// servedPoll is how often waitServed asks whether a new resource is served.
const servedPoll = 50 * time.Millisecond

// waitServed returns once the API server serves gvr, or after SyncTimeout.
// A CRD just Established is served a moment later; an informer started
// before that fails its first list and backs off for most of a second, by
// which the kind would be served later than it could be.
func (e *Engine) waitServed(ctx context.Context, gvr schema.GroupVersionResource) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.SyncTimeout)
	defer cancel()
	for {
		_, err := e.dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil || !apierrors.IsNotFound(err) {
			// Served (any other error is the informer's to retry and report).
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not served by the API server after %s: %w", gvr.String(), e.opts.SyncTimeout, err)
		case <-time.After(servedPoll):
		}
	}
}

// annotationsChanged reports whether any watched annotation differs between o and n.
func (e *Engine) annotationsChanged(o, n metav1.Object) bool {
	oa, na := o.GetAnnotations(), n.GetAnnotations()
	for _, k := range e.opts.WatchedAnnotations {
		ov, ook := oa[k]
		nv, nok := na[k]
		if ov != nv || ook != nok {
			return true
		}
	}
	return false
}

// Stop stops serving the kind of the named definition. Objects of the kind and
// their HelmReleases are left as they are.
func (e *Engine) Stop(definitionName string) {
	e.serveMu.Lock()
	defer e.serveMu.Unlock()
	e.stopKind(definitionName)
}

// Definition returns the definition the named kind is served for, as it
// was when served; nil when it is not served.
func (e *Engine) Definition(definitionName string) *v1alpha1.ApplicationDefinition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if k, ok := e.kinds[definitionName]; ok {
		return k.def.DeepCopy()
	}
	return nil
}

// Serving reports whether the named definition's kind is served.
func (e *Engine) Serving(definitionName string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	k, ok := e.kinds[definitionName]
	return ok && k.synced
}

// ObjectCount returns the number of objects of the named definition's kind,
// from the kind's watch cache; false when the kind is not served.
func (e *Engine) ObjectCount(definitionName string) (int, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	k, ok := e.kinds[definitionName]
	if !ok || !k.synced || k.store == nil {
		return 0, false
	}
	return len(k.store.ListKeys()), true
}

func (e *Engine) objectsChanged(definitionName string) {
	if e.opts.ObjectsChanged != nil {
		e.opts.ObjectsChanged(definitionName)
	}
}

// Enqueue adds key to the work queue.
func (e *Engine) Enqueue(key Key) {
	e.timesMu.Lock()
	if _, ok := e.eventTimes[key]; !ok {
		e.eventTimes[key] = time.Now()
		e.eventTimes = mapsize.Shrink(e.eventTimes, &e.timesPeak)
	}
	e.timesMu.Unlock()
	e.queue.Add(key)
}

func (e *Engine) stopKind(name string) {
	e.mu.Lock()
	k := e.kinds[name]
	delete(e.kinds, name)
	n := len(e.kinds)
	e.mu.Unlock()
	if k == nil {
		return
	}
	k.cancel()
	<-k.done
	metrics.ServedKinds.Set(float64(n))
	e.log.Info("stopped serving kind", "definition", name, "resource", k.gvr.String())
}

func (e *Engine) stopAll() {
	e.serveMu.Lock()
	defer e.serveMu.Unlock()
	e.mu.RLock()
	names := make([]string, 0, len(e.kinds))
	for n := range e.kinds {
		names = append(names, n)
	}
	e.mu.RUnlock()
	for _, n := range names {
		e.stopKind(n)
	}
}

func (e *Engine) served() []*v1alpha1.ApplicationDefinition {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*v1alpha1.ApplicationDefinition, 0, len(e.kinds))
	for _, k := range e.kinds {
		out = append(out, k.def)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Engine) enqueueRelease(obj any) {
	if key, ok := e.releaseKey(obj); ok {
		e.Enqueue(key)
	}
}

// releaseKey is the key of the object a HelmRelease belongs to.
func (e *Engine) releaseKey(obj any) (Key, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	hr, ok := releaseHeader(obj)
	if !ok {
		return Key{}, false
	}
	return e.releaseOwner(hr, e.served())
}

func (e *Engine) mapRelease(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) {
	if key, ok := e.releaseOwner(hr, served); ok {
		e.Enqueue(key)
	}
}

func (e *Engine) releaseOwner(hr *helmv2.HelmRelease, served []*v1alpha1.ApplicationDefinition) (Key, bool) {
	if len(served) == 0 {
		return Key{}, false
	}
	defName, name, ok := e.handler.ReleaseOwner(hr, served)
	if !ok {
		return Key{}, false
	}
	for _, d := range served {
		if d.Name == defName {
			return Key{Definition: defName, GVR: GVR(d), Namespace: hr.Namespace, Name: name}, true
		}
	}
	return Key{}, false
}

func (e *Engine) resyncReleases(ctx context.Context, defName string) {
	// The cache's own copies, decoded only for releases no object controls.
	items, err := e.releaseCache.Headers(ctx)
	if err != nil {
		e.log.Error(err, "listing HelmReleases", "definition", defName)
		return
	}
	var only []*v1alpha1.ApplicationDefinition
	for _, d := range e.served() {
		if d.Name == defName {
			only = append(only, d)
		}
	}
	for _, item := range items {
		if hr, ok := releaseHeader(item); ok {
			e.mapRelease(hr, only)
		}
	}
}

func (e *Engine) processNext(ctx context.Context) bool {
	key, shutdown := e.queue.Get()
	if shutdown {
		return false
	}
	defer e.queue.Done(key)

	e.mu.RLock()
	k := e.kinds[key.Definition]
	e.mu.RUnlock()
	if k == nil || k.gvr != key.GVR {
		e.queue.Forget(key)
		e.takeEventTime(key)
		return true
	}
	kind := k.def.Spec.Application.Kind
	evt := e.takeEventTime(key)
	rctx := metrics.WithEventTime(ctx, evt)
	log := e.log.WithValues("kind", kind, "namespace", key.Namespace, "name", key.Name)
	rctx = logr.NewContext(rctx, log)

	after, err := e.reconcile(rctx, k.def, types.NamespacedName{Namespace: key.Namespace, Name: key.Name})
	switch {
	case err != nil:
		metrics.Reconciles.WithLabelValues(kind, metrics.ResultError).Inc()
		metrics.Errors.WithLabelValues(kind).Inc()
		if ctx.Err() == nil {
			// Races (a conflict, a cache a moment behind) resolve on the first
			// retry; a failure that persists is an error worth a log line.
			if e.queue.NumRequeues(key) >= 2 {
				log.Error(err, "reconcile failed, retrying", "retries", e.queue.NumRequeues(key))
			} else {
				log.V(1).Info("reconcile failed, retrying", "error", err.Error())
			}
		}
		e.restoreEventTime(key, evt)
		e.queue.AddRateLimited(key)
	case after > 0:
		metrics.Reconciles.WithLabelValues(kind, metrics.ResultRequeue).Inc()
		e.queue.Forget(key)
		e.later.After(key, after)
	default:
		metrics.Reconciles.WithLabelValues(kind, metrics.ResultSuccess).Inc()
		e.queue.Forget(key)
	}
	return true
}

func (e *Engine) reconcile(ctx context.Context, def *v1alpha1.ApplicationDefinition, nn types.NamespacedName) (after time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			utilruntime.HandleError(fmt.Errorf("panic reconciling %s: %v", nn, r))
			err = errors.New("panic in reconcile")
		}
	}()
	return e.handler.Reconcile(ctx, def, nn)
}

func (e *Engine) takeEventTime(key Key) time.Time {
	e.timesMu.Lock()
	defer e.timesMu.Unlock()
	t, ok := e.eventTimes[key]
	if ok {
		delete(e.eventTimes, key)
		e.eventTimes = mapsize.Shrink(e.eventTimes, &e.timesPeak)
	}
	return t
}

func (e *Engine) restoreEventTime(key Key, t time.Time) {
	if t.IsZero() {
		return
	}
	e.timesMu.Lock()
	defer e.timesMu.Unlock()
	if cur, ok := e.eventTimes[key]; !ok || t.Before(cur) {
		e.eventTimes[key] = t
		e.eventTimes = mapsize.Shrink(e.eventTimes, &e.timesPeak)
	}
}

func specHash(def *v1alpha1.ApplicationDefinition) (string, error) {
	b, err := json.Marshal(struct {
		Spec  v1alpha1.ApplicationDefinitionSpec
		Names definition.Names
	}{def.Spec, definition.Effective(def)})
	if err != nil {
		return "", fmt.Errorf("hashing definition %s: %w", def.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
