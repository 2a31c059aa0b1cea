package mirror

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mapsize"
)

// ObjectCache serves application objects from a watch cache: the engine's
// (engine.Engine.CachedObject). ok false means it cannot answer for this
// kind now, and the API server is read instead.
type ObjectCache interface {
	CachedObject(def *v1alpha1.ApplicationDefinition, key types.NamespacedName) (obj *unstructured.Unstructured, ok bool, err error)
}

// SetObjectCache makes reconciles read objects from c instead of the API
// server. A cache may lag behind the API server, which is safe because
// every write of an object chartkind makes is conditional on the
// resourceVersion it read (a stale read ends in a conflict and a retry)
// and every absence is confirmed on the API server before anything is
// deleted or adopted. What would make it costly is the cache lagging behind
// chartkind's own writes: recentWrites covers that.
func (m *Mirror) SetObjectCache(c ObjectCache) {
	m.objects = c
	m.written = &recentWrites{byKey: map[string]recentWrite{}}
}

// getObject reads the application object, from the cache when there is one;
// nil when it does not exist on the API server.
func (m *Mirror) getObject(ctx context.Context, t *target) (*unstructured.Unstructured, error) {
	if m.objects != nil {
		obj, ok, err := m.objects.CachedObject(t.def, t.key)
		if err != nil {
			return nil, errorf("reading %s %s from the cache: %w", t.gvk.Kind, t.key, err)
		}
		if ok && obj != nil && !m.written.behind(t.uid(), obj) {
			if obj.GetKind() == "" {
				obj.SetGroupVersionKind(t.gvk) // as a GET gives it
			}
			return obj, nil
		}
		// Not cached, not yet, or older than our own last write: only the
		// API server can say.
	}
	return m.getLiveObject(ctx, t)
}

// getLiveObject reads the application object from the API server; nil when it does not exist.
func (m *Mirror) getLiveObject(ctx context.Context, t *target) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(t.gvk)
	if err := m.live.Get(ctx, t.key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			m.written.forget(t.uid())
			return nil, nil
		}
		return nil, errorf("reading %s %s: %w", t.gvk.Kind, t.key, err)
	}
	return obj, nil
}

// uid names the target's object in what the mirror remembers of objects:
// kind and group (two definitions may serve one kind name in two groups),
// namespace and name.
func (t *target) uid() string { return t.gvk.GroupKind().String() + "/" + t.key.String() }

// objectKey is target.uid for an object.
func objectKey(obj *unstructured.Unstructured) string {
	return obj.GroupVersionKind().GroupKind().String() + "/" + obj.GetNamespace() + "/" + obj.GetName()
}

// recentWritesWindow is how long an own write is remembered: a watch cache
// is normally a few milliseconds behind, and a cache still behind after
// this costs a conflict and a retry, nothing more.
const recentWritesWindow = 10 * time.Second

// recentWrites gives a reconcile read-your-writes over a cache: it knows
// the resourceVersions chartkind's own recent writes of an object
// replaced, and a cache still at one of them is behind that write, so the
// object is read from the API server instead. Without it, a reconcile
// shortly after a status write would start from the version before it and
// end in a conflict. Only versions are kept, not objects: the cache is
// rarely behind, and memory matters more than that rare GET. Entries go
// once the cache moved on, or after recentWritesWindow.
type recentWrites struct {
	mu        sync.Mutex
	byKey     map[string]recentWrite // rebuilt smaller after a bulk phase (mapsize)
	peak      mapsize.Peak
	lastSweep time.Time
}

type recentWrite struct {
	uid     string
	written string // the resourceVersion of the last own write
	// replaced are the resourceVersions this chain of own writes replaced.
	replaced []string
	at       time.Time
}

// maxReplaced bounds a chain of own writes the cache has not caught up with.
const maxReplaced = 8

func (w *recentWrites) record(key, prev string, obj *unstructured.Unstructured, now time.Time) {
	if w == nil || prev == "" || obj.GetResourceVersion() == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	replaced := []string{prev}
	if cur, ok := w.byKey[key]; ok && cur.written == prev && cur.uid == string(obj.GetUID()) && len(cur.replaced) < maxReplaced {
		replaced = append(cur.replaced, prev)
	}
	w.byKey[key] = recentWrite{uid: string(obj.GetUID()), written: obj.GetResourceVersion(), replaced: replaced, at: now}
	w.byKey = mapsize.Shrink(w.byKey, &w.peak)
	if now.Sub(w.lastSweep) > recentWritesWindow {
		w.lastSweep = now
		for k, e := range w.byKey {
			if now.Sub(e.at) > recentWritesWindow {
				delete(w.byKey, k)
			}
		}
	}
	w.byKey = mapsize.Shrink(w.byKey, &w.peak)
}

// behind reports whether cached is a version an own write of key replaced.
func (w *recentWrites) behind(key string, cached *unstructured.Unstructured) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.byKey[key]
	if !ok {
		return false
	}
	if e.uid == string(cached.GetUID()) {
		for _, r := range e.replaced {
			if r == cached.GetResourceVersion() {
				return true
			}
		}
	}
	// The cache holds our write, or something newer: it is the truth again.
	delete(w.byKey, key)
	w.byKey = mapsize.Shrink(w.byKey, &w.peak)
	return false
}

func (w *recentWrites) forget(key string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	delete(w.byKey, key)
	w.byKey = mapsize.Shrink(w.byKey, &w.peak)
	w.mu.Unlock()
}
