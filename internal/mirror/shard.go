package mirror

import (
	"context"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// ShardLabel is the shard key of an application object, as Flux's
// sharding.fluxcd.io/key is of Flux objects: an operator run with
// --watch-label-selector handles only the objects whose labels match its
// selector (docs/sharding.md). The mirror copies the label onto each
// object's HelmRelease, so that the HelmRelease is in the cache of the same
// shard as its object.
const ShardLabel = "sharding.chartkind.io/key"

// SetShard limits the mirror to the objects whose labels match sel: the
// others belong to another shard and are left alone.
func (m *Mirror) SetShard(sel labels.Selector) {
	if sel != nil && !sel.Empty() {
		m.shard = sel
	}
}

// inShard reports whether obj belongs to this shard.
func (m *Mirror) inShard(obj *unstructured.Unstructured) bool {
	return m.shard == nil || m.shard.Matches(labels.Set(obj.GetLabels()))
}

// releaseOfOtherShard returns, for an object whose HelmRelease is not in
// this shard's cache, the object's HelmRelease when it exists on the API
// server with another shard key: the object's key changed, and the
// HelmRelease comes to this shard with the next write (applyDesired copies
// the object's key onto it). nil when there is none, which the usual steps
// handle.
func (m *Mirror) releaseOfOtherShard(ctx context.Context, t *target, obj *unstructured.Unstructured) (*helmv2.HelmRelease, error) {
	st, err := readStatus(obj)
	if err != nil || st.Release == nil || st.Release.Name != t.releaseKey().Name {
		return nil, err
	}
	hr, err := m.getRelease(ctx, m.live, t)
	if err != nil || hr == nil || !ownedBy(hr, obj) || hr.Labels[ShardLabel] == obj.GetLabels()[ShardLabel] {
		return nil, err
	}
	t.log.Info("taking over the HelmRelease of an object whose shard key changed", "helmRelease", hr.Name,
		"from", hr.Labels[ShardLabel], "to", obj.GetLabels()[ShardLabel])
	return hr, nil
}

// shardLabel puts the object's shard key, or its absence, on its
// HelmRelease's labels.
func shardLabel(obj *unstructured.Unstructured, hrLabels map[string]string) {
	if v, ok := obj.GetLabels()[ShardLabel]; ok {
		hrLabels[ShardLabel] = v
	} else {
		delete(hrLabels, ShardLabel)
	}
}
