package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/klauspost/compress/s2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CachedRelease is what the HelmRelease cache keeps of one HelmRelease: the
// metadata its event handlers, list selectors and the definition counts
// read, whether it is Ready, and the rest of the release, trimmed
// (TrimRelease), as compressed JSON. A decoded HelmRelease costs its
// heap for every release of the cluster (the cache's largest part with
// 10,000 releases); a reader decodes only the release it reads.
//
// Raw holds neither the metadata kept beside it nor anything else twice:
// DecodeRelease puts the two back together.
type CachedRelease struct {
	metav1.PartialObjectMetadata
	// Ready is whether the release's Ready condition is True.
	Ready bool
	// Raw is the trimmed release without the fields of the metadata above,
	// as JSON compressed with S2 against dict, a sample of the releases of
	// the same kind of object (dict.go; on its own when dict is nil).
	// Neither is modified once stored, so copies share them.
	Raw  []byte
	dict *s2.Dict
}

// DeepCopyObject implements runtime.Object.
func (c *CachedRelease) DeepCopyObject() runtime.Object {
	out := &CachedRelease{Ready: c.Ready, Raw: c.Raw, dict: c.dict}
	c.PartialObjectMetadata.DeepCopyInto(&out.PartialObjectMetadata)
	return out
}

var releaseGVK = helmv2.GroupVersion.WithKind(helmv2.HelmReleaseKind)

// ReleaseTransform returns the transform of the HelmRelease cache: a
// HelmRelease is trimmed (TrimRelease) and becomes a CachedRelease before
// it is stored and before any handler sees it. Anything else (a
// CachedRelease seen again, a tombstone) is returned as it is. Releases
// are compressed against a sample of the releases of the same kind of
// object (the kind of their controller; releases nothing controls are a
// family of their own; dict.go), so each cache needs its own transform.
func ReleaseTransform() cache.TransformFunc {
	var f families
	return func(obj any) (any, error) { return compactRelease(&f, obj) }
}

func compactRelease(f *families, obj any) (any, error) {
	hr, ok := obj.(*helmv2.HelmRelease)
	if !ok {
		return obj, nil
	}
	if _, err := TrimRelease(hr); err != nil {
		return nil, err
	}
	c := &CachedRelease{
		PartialObjectMetadata: metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: releaseGVK.GroupVersion().String(), Kind: releaseGVK.Kind}},
		Ready:                 apimeta.IsStatusConditionTrue(hr.Status.Conditions, meta.ReadyCondition),
	}
	m := &c.ObjectMeta
	m.Name, m.Namespace, m.UID, m.ResourceVersion, m.Generation = hr.Name, hr.Namespace, hr.UID, hr.ResourceVersion, hr.Generation
	m.DeletionTimestamp, m.Labels, m.OwnerReferences = hr.DeletionTimestamp, hr.Labels, hr.OwnerReferences
	// What the metadata above holds is left out of the JSON.
	rest := *hr
	rest.TypeMeta = metav1.TypeMeta{}
	r := &rest.ObjectMeta // a copy: hr's fields stay
	r.Name, r.Namespace, r.UID, r.ResourceVersion, r.Generation = "", "", "", "", 0
	r.DeletionTimestamp, r.Labels, r.OwnerReferences = nil, nil, nil
	raw, err := json.Marshal(&rest)
	if err != nil {
		return nil, fmt.Errorf("caching HelmRelease %s/%s: %w", hr.Namespace, hr.Name, err)
	}
	var family string
	if owner := metav1.GetControllerOf(hr); owner != nil {
		family = owner.APIVersion + "/" + owner.Kind
	}
	c.Raw, c.dict = f.encode(family, raw)
	return c, nil
}

// DecodeRelease returns the HelmRelease c holds, decoded afresh (the caller
// may change it): equal to what TrimRelease made of it.
func DecodeRelease(c *CachedRelease) (*helmv2.HelmRelease, error) {
	raw, err := decode(c.dict, c.Raw)
	if err != nil {
		return nil, fmt.Errorf("decompressing cached HelmRelease %s/%s: %w", c.Namespace, c.Name, err)
	}
	hr := &helmv2.HelmRelease{}
	if err := json.Unmarshal(raw, hr); err != nil {
		return nil, fmt.Errorf("decoding cached HelmRelease %s/%s: %w", c.Namespace, c.Name, err)
	}
	hr.TypeMeta = metav1.TypeMeta{}
	hr.SetGroupVersionKind(releaseGVK)
	m := &hr.ObjectMeta
	m.Name, m.Namespace, m.UID, m.ResourceVersion, m.Generation = c.Name, c.Namespace, c.UID, c.ResourceVersion, c.Generation
	if c.DeletionTimestamp != nil {
		m.DeletionTimestamp = c.DeletionTimestamp.DeepCopy()
	}
	m.Labels = maps.Clone(c.Labels)
	if c.OwnerReferences != nil {
		m.OwnerReferences = make([]metav1.OwnerReference, len(c.OwnerReferences))
		for i := range c.OwnerReferences {
			c.OwnerReferences[i].DeepCopyInto(&m.OwnerReferences[i])
		}
	}
	return hr, nil
}

// releaseHeader returns what the engine's event handlers read of a cached
// release to map it to its object: the metadata, and the spec only for a
// release no object controls (it is then matched by its chart), which is
// the one case it is decoded. A HelmRelease (from a cache without
// ReleaseTransform) is returned as it is. What it returns may share the
// cache's labels and owner references: it is read, never changed.
func releaseHeader(obj any) (*helmv2.HelmRelease, bool) {
	switch o := obj.(type) {
	case *helmv2.HelmRelease:
		return o, true
	case *CachedRelease:
		if metav1.GetControllerOf(o) == nil {
			hr, err := DecodeRelease(o)
			return hr, err == nil
		}
		return &helmv2.HelmRelease{ObjectMeta: o.ObjectMeta}, true
	}
	return nil, false
}

// ReleaseCache reads HelmReleases from the one HelmRelease informer of an
// InformerSource (the manager's cache), whose store holds CachedReleases
// (ReleaseTransform is its transform): controller-runtime's own cache reader
// returns only the type it stores. Get and List decode; Headers does not.
// Stores holding plain HelmReleases are read as they are.
type ReleaseCache struct {
	source InformerSource

	mu      sync.Mutex
	indexer cache.Indexer
}

// NewReleaseCache returns a reader of the HelmRelease informer of source.
func NewReleaseCache(source InformerSource) *ReleaseCache {
	return &ReleaseCache{source: source}
}

func (c *ReleaseCache) store(ctx context.Context) (cache.Indexer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.indexer != nil {
		return c.indexer, nil
	}
	// Once the cache started, this blocks until the informer synced; before,
	// it returns an informer whose store is still empty, which must not
	// read as "no HelmRelease exists" (controller-runtime's own reader
	// answers ErrCacheNotStarted too).
	inf, err := c.source.GetInformer(ctx, &helmv2.HelmRelease{})
	if err != nil {
		return nil, fmt.Errorf("getting the HelmRelease informer: %w", err)
	}
	if !inf.HasSynced() {
		return nil, &crcache.ErrCacheNotStarted{}
	}
	withIndexer, ok := inf.(interface{ GetIndexer() cache.Indexer })
	if !ok {
		return nil, fmt.Errorf("the HelmRelease informer (%T) has no store to read", inf)
	}
	c.indexer = withIndexer.GetIndexer()
	return c.indexer, nil
}

// Get reads the HelmRelease key into hr, or returns a NotFound error.
func (c *ReleaseCache) Get(ctx context.Context, key client.ObjectKey, hr *helmv2.HelmRelease) error {
	idx, err := c.store(ctx)
	if err != nil {
		return err
	}
	item, exists, err := idx.GetByKey(key.Namespace + "/" + key.Name)
	if err != nil {
		return err
	}
	if !exists {
		return apierrors.NewNotFound(helmv2.GroupVersion.WithResource("helmreleases").GroupResource(), key.Name)
	}
	got, err := decodeItem(item)
	if err != nil {
		return err
	}
	*hr = *got
	return nil
}

// List reads the HelmReleases opts select (namespace, labels; no field
// selectors: the cache has no field index) into list.
func (c *ReleaseCache) List(ctx context.Context, list *helmv2.HelmReleaseList, opts ...client.ListOption) error {
	items, err := c.Headers(ctx, opts...)
	if err != nil {
		return err
	}
	list.Items = make([]helmv2.HelmRelease, 0, len(items))
	for _, item := range items {
		hr, err := decodeItem(item)
		if err != nil {
			return err
		}
		list.Items = append(list.Items, *hr)
	}
	list.ResourceVersion = ""
	return nil
}

// Headers lists the HelmReleases opts select as the cache holds them
// (CachedReleases, or HelmReleases of a cache without ReleaseTransform),
// decoding none: their metadata and Ready. Callers must not change them.
func (c *ReleaseCache) Headers(ctx context.Context, opts ...client.ListOption) ([]metav1.Object, error) {
	var o client.ListOptions
	o.ApplyOptions(opts)
	if o.FieldSelector != nil && !o.FieldSelector.Empty() {
		return nil, fmt.Errorf("listing HelmReleases from the cache: field selector %q: the cache has no field index", o.FieldSelector)
	}
	idx, err := c.store(ctx)
	if err != nil {
		return nil, err
	}
	var items []any
	if o.Namespace != "" {
		if items, err = idx.ByIndex(cache.NamespaceIndex, o.Namespace); err != nil {
			return nil, err
		}
	} else {
		items = idx.List()
	}
	sel := o.LabelSelector
	if sel == nil {
		sel = labels.Everything()
	}
	out := make([]metav1.Object, 0, len(items))
	for _, item := range items {
		m, ok := item.(metav1.Object)
		if !ok {
			continue
		}
		if (o.Namespace != "" && m.GetNamespace() != o.Namespace) || !sel.Matches(labels.Set(m.GetLabels())) {
			continue
		}
		out = append(out, m)
		if o.Limit > 0 && int64(len(out)) >= o.Limit {
			break
		}
	}
	return out, nil
}

// ReleaseReady reports whether a HelmRelease as the cache or its events
// hold it (CachedRelease or HelmRelease) is Ready.
func ReleaseReady(obj any) bool {
	switch o := obj.(type) {
	case *CachedRelease:
		return o.Ready
	case *helmv2.HelmRelease:
		return apimeta.IsStatusConditionTrue(o.Status.Conditions, meta.ReadyCondition)
	}
	return false
}

func decodeItem(item any) (*helmv2.HelmRelease, error) {
	switch o := item.(type) {
	case *CachedRelease:
		return DecodeRelease(o)
	case *helmv2.HelmRelease:
		hr := o.DeepCopy()
		hr.SetGroupVersionKind(releaseGVK)
		return hr, nil
	}
	return nil, fmt.Errorf("the HelmRelease cache holds a %T", item)
}

// ReleaseClient returns c with its reads of HelmReleases (Get into a
// HelmRelease, List into a HelmReleaseList) served by releases, and
// everything else as c does it. The manager's client is built with it: with
// ReleaseTransform as the cache's transform, the cache's own reader could not
// return HelmReleases.
func ReleaseClient(c client.Client, releases *ReleaseCache) client.Client {
	return &releaseClient{Client: c, releases: releases}
}

type releaseClient struct {
	client.Client
	releases *ReleaseCache
}

func (c *releaseClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if hr, ok := obj.(*helmv2.HelmRelease); ok {
		return c.releases.Get(ctx, key, hr)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *releaseClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*helmv2.HelmReleaseList); ok {
		return c.releases.List(ctx, l, opts...)
	}
	return c.Client.List(ctx, list, opts...)
}
