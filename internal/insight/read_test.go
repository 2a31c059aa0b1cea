package insight

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// versionReader records the resourceVersion of each read and answers
// NotFound to the reads at the versions in notFoundAt.
type versionReader struct {
	notFoundAt map[string]bool
	gets       []string
	lists      []string
}

func (v *versionReader) Get(_ context.Context, key client.ObjectKey, _ client.Object, opts ...client.GetOption) error {
	o := &client.GetOptions{}
	o.ApplyOptions(opts)
	rv := o.AsGetOptions().ResourceVersion
	v.gets = append(v.gets, rv)
	if v.notFoundAt[rv] {
		return errors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	return nil
}

func (v *versionReader) List(_ context.Context, _ client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	lo := o.AsListOptions()
	v.lists = append(v.lists, lo.ResourceVersion+"/"+lo.LabelSelector)
	return nil
}

func TestWatchCacheReader(t *testing.T) {
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "ns", Name: "a"}

	v := &versionReader{}
	r := watchCacheReader{v}
	if err := r.Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
	if err := r.List(ctx, &corev1.SecretList{}, client.InNamespace("ns"), client.MatchingLabels{"owner": "helm"}); err != nil {
		t.Fatal(err)
	}
	if len(v.gets) != 1 || v.gets[0] != "0" {
		t.Errorf("gets at %q, want one from the watch cache (resourceVersion 0)", v.gets)
	}
	if len(v.lists) != 1 || v.lists[0] != "0/owner=helm" {
		t.Errorf("lists %q, want one from the watch cache that keeps its selector", v.lists)
	}

	// Not in the watch cache (yet): etcd says whether it exists.
	v = &versionReader{notFoundAt: map[string]bool{"0": true}}
	if err := (watchCacheReader{v}).Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Errorf("an object missing from the watch cache only: %v, want the quorum read's answer", err)
	}
	if len(v.gets) != 2 || v.gets[1] != "" {
		t.Errorf("gets at %q, want the NotFound confirmed by a quorum read", v.gets)
	}
	v = &versionReader{notFoundAt: map[string]bool{"0": true, "": true}}
	if err := (watchCacheReader{v}).Get(ctx, key, &corev1.Secret{}); !errors.IsNotFound(err) || len(v.gets) != 2 {
		t.Errorf("an object missing from etcd too: %v after %d reads, want NotFound after two", err, len(v.gets))
	}
}
