package engine

import (
	"context"
	"sync"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/mapsize"
)

// OwnWrites remembers the resourceVersion of the HelmRelease version each
// of chartkind's own writes produced. The watch event of that version
// tells the engine nothing new (the reconcile that wrote it already
// mirrored it into the object's status), so it costs no reconcile: each
// created or updated HelmRelease then takes one reconcile instead of two,
// a GET of the object and a worker's time fewer. Any other version (helm-
// controller's status, a user's edit, a later write) is reconciled as
// before; so is an own write whose event never came, since the next
// version simply differs.
type OwnWrites struct {
	mu   sync.Mutex
	rv   map[types.NamespacedName]string // rebuilt smaller after a bulk phase (mapsize)
	peak mapsize.Peak
}

// NewOwnWrites returns an empty OwnWrites.
func NewOwnWrites() *OwnWrites { return &OwnWrites{rv: map[types.NamespacedName]string{}} }

// Wrap returns c, recording the HelmReleases its Create and Update write.
func (w *OwnWrites) Wrap(c client.Client) client.Client { return &recordingClient{Client: c, w: w} }

func (w *OwnWrites) record(obj client.Object) {
	if _, ok := obj.(*helmv2.HelmRelease); !ok || obj.GetResourceVersion() == "" {
		return
	}
	w.mu.Lock()
	w.rv[client.ObjectKeyFromObject(obj)] = obj.GetResourceVersion()
	w.rv = mapsize.Shrink(w.rv, &w.peak)
	w.mu.Unlock()
}

// own reports whether obj, a HelmRelease as the cache holds it, is the
// version an own write produced, and forgets it: one write, one event.
func (w *OwnWrites) own(obj any) bool {
	hr, ok := releaseObject(obj)
	if w == nil || !ok {
		return false
	}
	key := client.ObjectKeyFromObject(hr)
	w.mu.Lock()
	defer w.mu.Unlock()
	rv, ok := w.rv[key]
	if !ok {
		return false
	}
	if rv == hr.GetResourceVersion() {
		delete(w.rv, key)
		w.rv = mapsize.Shrink(w.rv, &w.peak)
		return true
	}
	return false
}

// forget drops what is known of a deleted HelmRelease.
func (w *OwnWrites) forget(obj any) {
	hr, ok := releaseObject(obj)
	if w == nil || !ok {
		return
	}
	w.mu.Lock()
	delete(w.rv, client.ObjectKeyFromObject(hr))
	w.rv = mapsize.Shrink(w.rv, &w.peak)
	w.mu.Unlock()
}

// releaseObject is a HelmRelease's metadata, as the cache holds it
// (CachedRelease) or not (HelmRelease).
func releaseObject(obj any) (client.Object, bool) {
	switch o := obj.(type) {
	case *CachedRelease:
		return o, true
	case *helmv2.HelmRelease:
		return o, true
	}
	return nil, false
}

type recordingClient struct {
	client.Client
	w *OwnWrites
}

func (c *recordingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	err := c.Client.Create(ctx, obj, opts...)
	if err == nil {
		c.w.record(obj)
	}
	return err
}

func (c *recordingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	err := c.Client.Update(ctx, obj, opts...)
	if err == nil {
		c.w.record(obj)
	}
	return err
}
