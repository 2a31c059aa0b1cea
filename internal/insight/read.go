package insight

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// notOlderThan reads through r at least as new as resourceVersion rv.
//
// Why: a read without a resourceVersion is a quorum read from etcd; a read
// with one is served from the API server's watch cache, which waits (asking
// etcd for a progress notification) until it has caught up with rv. The
// objects of a release and its release record are written before
// helm-controller writes the status that made us observe it, so a read not
// older than that status's resourceVersion sees them as new as a quorum
// read would, without the round trip to etcd and the decoding that follow.
// resourceVersions are etcd revisions, comparable across resources of one
// cluster only: a remote cluster's reader is never wrapped.
type notOlderThan struct {
	client.Reader
	rv string
}

// readAtLeast wraps r so that its reads are not older than rv; "" leaves r
// as it is (quorum reads).
func readAtLeast(r client.Reader, rv string) client.Reader {
	if rv == "" {
		return r
	}
	return notOlderThan{Reader: r, rv: rv}
}

// Get reads key from the watch cache, not older than the wrapped version.
// When the cache has not caught up within the API server's wait (its
// "Too large resource version" timeout), the object is read from etcd.
func (n notOlderThan) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := n.Reader.Get(ctx, key, obj, append(opts, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: n.rv}})...)
	if cacheBehind(err) {
		return n.Reader.Get(ctx, key, obj, opts...)
	}
	return err
}

// List lists from the watch cache, not older than the wrapped version, and
// like Get falls back to a quorum list when the cache is behind.
func (n notOlderThan) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	at := &client.ListOptions{Raw: &metav1.ListOptions{
		ResourceVersion: n.rv, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}}
	err := n.Reader.List(ctx, list, append(opts, at)...)
	if cacheBehind(err) {
		return n.Reader.List(ctx, list, opts...)
	}
	return err
}

// cacheBehind says the watch cache did not reach the version asked for in
// time.
func cacheBehind(err error) bool {
	return apierrors.IsTimeout(err) && apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge)
}
