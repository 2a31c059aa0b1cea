package insight

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// watchCacheReader reads through the API server's watch cache.
//
// Why: a read without a resourceVersion is a quorum read from etcd, which
// costs the API server a round trip to etcd and a decoding; a read at
// resourceVersion "0" is served from the watch cache the API server keeps
// anyway (BenchmarkInsightReads: about half the API server's and etcd's
// CPU). That cache may be milliseconds behind etcd, which a recheck of a
// release already observed can afford, and the first observation of a new
// release status cannot: an object the cache still holds as it was before an
// upgrade may look healthy (Options.FromWatchCache). An object missing from
// the cache may be one just created, so a NotFound is confirmed by a quorum
// read. (Reads not older than the HelmRelease's own resourceVersion would be
// exact, but the watch cache of a resource that did not change since then
// waits for etcd's next progress notification, requested at most every
// 100 ms: measured, one observation then took ~100 ms.)
type watchCacheReader struct {
	client.Reader
}

// Get reads key at resourceVersion "0"; a NotFound is read again from etcd.
func (w watchCacheReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := w.Reader.Get(ctx, key, obj, append(opts, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}})...)
	if apierrors.IsNotFound(err) {
		return w.Reader.Get(ctx, key, obj, opts...)
	}
	return err
}

// List lists at resourceVersion "0" (pods and release records: an older
// list only delays a problem line until the next observation).
func (w watchCacheReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return w.Reader.List(ctx, list, append(opts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})...)
}
