package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// testFamilies are the dictionaries of the tests' releases.
var testFamilies families

// A release read back from the cache is what TrimRelease made of it, every
// field (metadata, spec, the status fields chartkind reads), whatever the
// metadata kept beside the compressed JSON holds.
func TestCompactReleaseRoundTrip(t *testing.T) {
	deleting := decodedRelease(t)
	now := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	deleting.DeletionTimestamp = &now
	deleting.OwnerReferences = append(deleting.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "u2"})
	bare := decodedRelease(t)
	bare.Labels, bare.OwnerReferences, bare.Annotations, bare.Finalizers = nil, nil, nil, nil
	bare.Status = helmv2.HelmReleaseStatus{}
	for name, hr := range map[string]*helmv2.HelmRelease{"upgraded": decodedRelease(t), "deleting": deleting, "bare": bare} {
		t.Run(name, func(t *testing.T) {
			want := hr.DeepCopy()
			if _, err := TrimRelease(want); err != nil {
				t.Fatal(err)
			}
			want.SetGroupVersionKind(releaseGVK)
			compactValues(t, want)
			out, err := compactRelease(&testFamilies, hr.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			c, ok := out.(*CachedRelease)
			if !ok {
				t.Fatalf("cached a %T", out)
			}
			if c.Name != hr.Name || c.Namespace != hr.Namespace || c.UID != hr.UID || c.ResourceVersion != hr.ResourceVersion ||
				c.Generation != hr.Generation || !equality.Semantic.DeepEqual(c.Labels, hr.Labels) ||
				!equality.Semantic.DeepEqual(c.OwnerReferences, hr.OwnerReferences) || (c.DeletionTimestamp == nil) != (hr.DeletionTimestamp == nil) {
				t.Errorf("metadata beside the JSON: %+v", c.ObjectMeta)
			}
			if c.Annotations != nil || c.Finalizers != nil || c.ManagedFields != nil {
				t.Errorf("metadata kept twice: %+v", c.ObjectMeta)
			}
			if c.Ready != apimeta.IsStatusConditionTrue(hr.Status.Conditions, meta.ReadyCondition) {
				t.Errorf("Ready = %v", c.Ready)
			}
			if c.GroupVersionKind() != releaseGVK {
				t.Errorf("GVK %v", c.GroupVersionKind())
			}
			got, err := DecodeRelease(c)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("decoded release differs from the trimmed one\n got %+v\nwant %+v", got, want)
			}
			// The caller may change what it read: the cache keeps its copy.
			if len(got.Labels) > 0 {
				for k := range got.Labels {
					got.Labels[k] = "changed"
				}
				got.OwnerReferences[0].Name = "changed"
				again, _ := DecodeRelease(c)
				if !equality.Semantic.DeepEqual(again, want) {
					t.Error("changing a decoded release changed the cache")
				}
			}
		})
	}
	// A CachedRelease seen again (client-go may transform an object twice)
	// and anything else are left as they are.
	c, _ := compactRelease(&testFamilies, decodedRelease(t))
	if again, _ := compactRelease(&testFamilies, c); again != c {
		t.Error("a CachedRelease transformed again")
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "a/b", Obj: c}
	if again, _ := compactRelease(&testFamilies, tomb); again != any(tomb) {
		t.Error("a tombstone transformed")
	}
	if _, err := DecodeRelease(&CachedRelease{Raw: []byte("not s2")}); err == nil {
		t.Error("a corrupt entry decoded")
	}
}

// informerSource hands out one informer, as the manager's cache does.
type informerSource struct{ inf cache.SharedIndexInformer }

func (s informerSource) GetInformer(context.Context, client.Object, ...crcache.InformerGetOption) (crcache.Informer, error) {
	return s.inf, nil
}

type releaseEvents struct {
	mu   sync.Mutex
	seen []string
}

func (r *releaseEvents) add(what string, obj any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	c, ok := obj.(*CachedRelease)
	if !ok {
		r.seen = append(r.seen, fmt.Sprintf("%s %T", what, obj))
		return
	}
	r.seen = append(r.seen, fmt.Sprintf("%s %s ready=%v", what, c.Name, c.Ready))
}

func (r *releaseEvents) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.seen {
		if e == s {
			return true
		}
	}
	return false
}

func release(ns, name, definition string, ready bool) *helmv2.HelmRelease {
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name),
		Labels: map[string]string{"apps.chartkind.io/definition": definition}}}
	hr.Spec.Values = nil
	st := metav1.ConditionFalse
	if ready {
		st = metav1.ConditionTrue
	}
	hr.Status.Conditions = []metav1.Condition{{Type: meta.ReadyCondition, Status: st, Reason: "R", LastTransitionTime: metav1.Now()}}
	return hr
}

// The cache over an informer whose transform is ReleaseTransform: Get and
// List (by namespace and label) decode, Headers do not; handlers see
// CachedReleases on add, update and delete; the manager's client reads
// HelmReleases there and everything else as before.
func TestReleaseCache(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := fcache.NewFakeControllerSource()
	defer src.Shutdown()
	upgraded := decodedRelease(t)
	upgraded.ResourceVersion = ""
	src.Add(upgraded)
	src.Add(release("shop", "b", "redis", true))
	src.Add(release("other", "c", "postgres", false))

	inf := cache.NewSharedIndexInformer(src, &helmv2.HelmRelease{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	if err := inf.SetTransform(ReleaseTransform()); err != nil {
		t.Fatal(err)
	}
	events := &releaseEvents{}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { events.add("add", o) },
		UpdateFunc: func(_, n any) { events.add("update", n) },
		DeleteFunc: func(o any) { events.add("delete", o) },
	}); err != nil {
		t.Fatal(err)
	}
	rc := NewReleaseCache(informerSource{inf})
	// Before the informer synced, its empty store must not read as "no
	// HelmRelease exists".
	var early helmv2.HelmRelease
	if err := rc.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "b"}, &early); !errors.As(err, new(*crcache.ErrCacheNotStarted)) {
		t.Errorf("Get before the cache synced: %v, want ErrCacheNotStarted", err)
	}
	if _, err := rc.Headers(ctx); !errors.As(err, new(*crcache.ErrCacheNotStarted)) {
		t.Errorf("Headers before the cache synced: %v, want ErrCacheNotStarted", err)
	}
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("not synced")
	}

	want := decodedRelease(t)
	_, _ = TrimRelease(want)
	want.SetGroupVersionKind(releaseGVK)
	compactValues(t, want)
	var got helmv2.HelmRelease
	if err := rc.Get(ctx, client.ObjectKeyFromObject(want), &got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion == "" {
		t.Error("no resourceVersion")
	}
	want.ResourceVersion = got.ResourceVersion
	if !equality.Semantic.DeepEqual(&got, want) {
		t.Errorf("Get: got %+v\nwant %+v", got, *want)
	}
	if err := rc.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "missing"}, &got); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a missing release: %v, want NotFound", err)
	}

	names := func(opts ...client.ListOption) []string {
		t.Helper()
		var l helmv2.HelmReleaseList
		if err := rc.List(ctx, &l, opts...); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, hr := range l.Items {
			if hr.Kind != helmv2.HelmReleaseKind || hr.UID == "" {
				t.Errorf("listed %+v", hr)
			}
			out = append(out, hr.Namespace+"/"+hr.Name)
		}
		return out
	}
	if n := names(); len(n) != 3 {
		t.Errorf("List: %v", n)
	}
	if n := names(client.InNamespace("shop")); len(n) != 2 {
		t.Errorf("List in shop: %v", n)
	}
	if n := names(client.MatchingLabels{"apps.chartkind.io/definition": "redis"}); len(n) != 1 || n[0] != "shop/b" {
		t.Errorf("List by label: %v", n)
	}
	if n := names(client.InNamespace("other"), client.MatchingLabels{"apps.chartkind.io/definition": "redis"}); len(n) != 0 {
		t.Errorf("List by namespace and label: %v", n)
	}
	if err := rc.List(ctx, &helmv2.HelmReleaseList{}, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("spec.x", "y")}); err == nil {
		t.Error("a field selector the cache cannot answer was ignored")
	}
	headers, err := rc.Headers(ctx, client.MatchingLabels{"apps.chartkind.io/definition": "redis"})
	if err != nil || len(headers) != 1 || !ReleaseReady(headers[0]) {
		t.Errorf("Headers: %v %v", headers, err)
	}
	if _, ok := headers[0].(*CachedRelease); !ok {
		t.Errorf("Headers decoded: %T", headers[0])
	}

	// Events carry CachedReleases, with the state of the version they announce.
	b := release("shop", "b", "redis", false)
	var cur helmv2.HelmRelease
	_ = rc.Get(ctx, client.ObjectKeyFromObject(b), &cur)
	b.ResourceVersion = cur.ResourceVersion
	src.Modify(b)
	wait(t, "update event", func() bool { return events.has("update b ready=false") })
	_ = rc.Get(ctx, client.ObjectKeyFromObject(b), &cur)
	if apimeta.IsStatusConditionTrue(cur.Status.Conditions, meta.ReadyCondition) {
		t.Error("Get after an update reads the old version")
	}
	src.Delete(b)
	wait(t, "delete event", func() bool { return events.has("delete b ready=false") })
	if err := rc.Get(ctx, client.ObjectKeyFromObject(b), &cur); !apierrors.IsNotFound(err) {
		t.Errorf("Get after a delete: %v", err)
	}
	if !events.has("add postgres-orders ready=true") || !events.has("add c ready=false") {
		t.Errorf("add events: %v", events.seen)
	}

	// The client: HelmReleases from the cache, the rest from the client it wraps.
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	_ = helmv2.AddToScheme(s)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cm"}}
	c := ReleaseClient(fake.NewClientBuilder().WithScheme(s).WithObjects(cm).Build(), rc)
	if err := c.Get(ctx, client.ObjectKeyFromObject(want), &got); err != nil || got.Name != want.Name {
		t.Errorf("client Get of a HelmRelease: %v", err)
	}
	var l helmv2.HelmReleaseList
	if err := c.List(ctx, &l); err != nil || len(l.Items) != 2 {
		t.Errorf("client List of HelmReleases: %d, %v", len(l.Items), err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}); err != nil {
		t.Errorf("client Get of a ConfigMap: %v", err)
	}
}

// The engine's handlers map a cached release to its object from the
// metadata kept beside the JSON, and decode only a release no object
// controls (matched by its chart); own writes are recognised on cached
// releases.
func TestReleaseHeader(t *testing.T) {
	controlled, _ := compactRelease(&testFamilies, decodedRelease(t))
	hr, ok := releaseHeader(controlled)
	if !ok || hr.Labels["apps.chartkind.io/definition"] == "" || metav1.GetControllerOf(hr) == nil || hr.Spec.Chart != nil {
		t.Errorf("controlled release: %v %+v", ok, hr)
	}
	unlinked := decodedRelease(t)
	unlinked.OwnerReferences = nil
	c, _ := compactRelease(&testFamilies, unlinked)
	if hr, ok := releaseHeader(c); !ok || hr.Spec.Chart == nil || hr.Spec.Chart.Spec.Chart != "postgresql" {
		t.Errorf("unlinked release not decoded: %v %+v", ok, hr)
	}
	plain := decodedRelease(t)
	if hr, ok := releaseHeader(plain); !ok || hr != plain {
		t.Error("a HelmRelease of a plain cache is not read as it is")
	}
	if _, ok := releaseHeader("x"); ok {
		t.Error("not a release")
	}

	w := NewOwnWrites()
	w.record(decodedRelease(t))
	if !w.own(controlled) {
		t.Error("the event of an own write, as a CachedRelease, is not recognised")
	}
	w.record(decodedRelease(t))
	w.forget(controlled)
	if w.own(controlled) {
		t.Error("a forgotten release counts as own")
	}
}

// compactValues compacts the values' JSON as the API server sends it (the
// test file is indented; values are compared as values, never as bytes).
func compactValues(t *testing.T, hr *helmv2.HelmRelease) {
	t.Helper()
	if hr.Spec.Values == nil {
		return
	}
	var b bytes.Buffer
	if err := json.Compact(&b, hr.Spec.Values.Raw); err != nil {
		t.Fatal(err)
	}
	hr.Spec.Values.Raw = b.Bytes()
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: timed out", what)
}
