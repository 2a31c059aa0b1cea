package insight

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// versionReader records the resourceVersion (and match) of each read and
// answers "Too large resource version" while behind is set.
type versionReader struct {
	behind bool
	gets   []string
	lists  []string
}

func (v *versionReader) Get(_ context.Context, _ client.ObjectKey, _ client.Object, opts ...client.GetOption) error {
	o := &client.GetOptions{}
	o.ApplyOptions(opts)
	v.gets = append(v.gets, o.AsGetOptions().ResourceVersion)
	return v.answer(o.AsGetOptions().ResourceVersion)
}

func (v *versionReader) List(_ context.Context, _ client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	lo := o.AsListOptions()
	v.lists = append(v.lists, lo.ResourceVersion+"/"+string(lo.ResourceVersionMatch)+"/"+lo.LabelSelector)
	return v.answer(lo.ResourceVersion)
}

func (v *versionReader) answer(rv string) error {
	if v.behind && rv != "" {
		err := errors.NewTimeoutError("Too large resource version: 12, current: 10", 1)
		err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
		return err
	}
	return nil
}

func TestReadAtLeast(t *testing.T) {
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "ns", Name: "a"}
	sel := client.MatchingLabels{"owner": "helm"}

	v := &versionReader{}
	if readAtLeast(v, "") != client.Reader(v) {
		t.Fatal(`readAtLeast(r, "") should make quorum reads through r itself`)
	}
	r := readAtLeast(v, "12")
	if err := r.Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
	if err := r.List(ctx, &corev1.SecretList{}, client.InNamespace("ns"), sel); err != nil {
		t.Fatal(err)
	}
	if len(v.gets) != 1 || v.gets[0] != "12" {
		t.Errorf("gets: %q, want one read not older than 12", v.gets)
	}
	if len(v.lists) != 1 || v.lists[0] != "12/NotOlderThan/owner=helm" {
		t.Errorf("lists: %q, want one list not older than 12 that keeps its selector", v.lists)
	}

	// A watch cache that does not catch up in time: read from etcd.
	v = &versionReader{behind: true}
	r = readAtLeast(v, "12")
	if err := r.Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Fatalf("Get with the cache behind: %v, want the quorum read's answer", err)
	}
	if err := r.List(ctx, &corev1.SecretList{}, sel); err != nil {
		t.Fatalf("List with the cache behind: %v, want the quorum list's answer", err)
	}
	if len(v.gets) != 2 || v.gets[1] != "" || len(v.lists) != 2 || v.lists[1] != "//owner=helm" {
		t.Errorf("with the cache behind: gets %q, lists %q: want each retried as a quorum read", v.gets, v.lists)
	}

	// Other errors are the caller's.
	nf := &failingReader{err: errors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "a")}
	if err := readAtLeast(nf, "12").Get(ctx, key, &corev1.Secret{}); !errors.IsNotFound(err) || nf.calls != 1 {
		t.Errorf("NotFound: err %v after %d reads, want it returned after one", err, nf.calls)
	}
}

type failingReader struct {
	err   error
	calls int
}

func (f *failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	f.calls++
	return f.err
}

func (f *failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	f.calls++
	return f.err
}
