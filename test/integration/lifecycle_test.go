package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/mirror"
	"github.com/chartkind/chartkind/internal/testenv"
)

// resourceVersions returns the resourceVersion of every object of def's kind,
// every HelmRelease in ns and the definition itself.
func resourceVersions(t *testing.T, def *v1alpha1.ApplicationDefinition, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	list := &unstructured.UnstructuredList{}
	gvk := mirror.GVK(def)
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, u := range list.Items {
		out["object/"+u.GetName()] = u.GetResourceVersion()
	}
	var hrs helmv2.HelmReleaseList
	if err := env.Client.List(ctx, &hrs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, hr := range hrs.Items {
		out["helmrelease/"+hr.Name] = hr.ResourceVersion
	}
	d := &v1alpha1.ApplicationDefinition{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(def), d); err != nil {
		t.Fatal(err)
	}
	out["definition"] = d.ResourceVersion
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: d.Status.CRDName}, c); err != nil {
		t.Fatal(err)
	}
	out["crd"] = c.ResourceVersion
	return out
}

// assertNoWrites lets things settle for a second, then checks that nothing of
// def (its CRD, objects in ns, their HelmReleases) is written during window;
// during, when set, runs at the start of the window. It returns the resource
// versions seen.
func assertNoWrites(t *testing.T, def *v1alpha1.ApplicationDefinition, ns string, window time.Duration, what string, during func()) map[string]string {
	t.Helper()
	time.Sleep(time.Second)
	before := resourceVersions(t, def, ns)
	if during != nil {
		during()
	}
	time.Sleep(window)
	if after := resourceVersions(t, def, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("writes %s:\nbefore %v\nafter  %v", what, before, after)
	}
	return before
}

// Once everything converged, an idle operator writes nothing, including after a restart.
func TestNoWritesInSteadyState(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("quietwidget", "QuietWidget"))
	for i := range 5 {
		createObject(t, def, ns, fmt.Sprintf("q%d", i), map[string]any{"replicas": int64(i + 1), "tags": map[string]any{"b": "2", "a": "1"}})
	}
	for i := range 5 {
		waitObject(t, def, ns, fmt.Sprintf("q%d", i), func(u *unstructured.Unstructured) error {
			if d, _, _ := unstructured.NestedString(u.Object, "status", "valuesDigest"); d == "" {
				return fmt.Errorf("not in step yet")
			}
			return nil
		})
	}
	// Helm-controller's status on one release.
	setReleaseStatus(t, ns, "quietwidget-q0", func(hr *helmv2.HelmRelease) {
		hr.Status.ObservedGeneration = hr.Generation
		hr.Status.Conditions = []metav1.Condition{readyCondition(metav1.ConditionTrue, "InstallSucceeded", "ok")}
	})
	waitObject(t, def, ns, "q0", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Ready"); c == nil || c["status"] != "True" {
			return fmt.Errorf("Ready = %v", c)
		}
		return nil
	})
	// The definition's counts converge too (written at most every 2s).
	waitCounts(t, def.Name, 5, 1)
	before := assertNoWrites(t, def, ns, 4*time.Second, "in steady state", nil)

	op.restart()
	waitDefinitionReason(t, def.Name, "Serving")
	time.Sleep(4 * time.Second)
	if after := resourceVersions(t, def, ns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("writes after a restart with nothing to do:\nbefore %v\nafter  %v", before, after)
	}
}

// HelmReleases that match no definition are never modified, nor are they
// adopted; nor is a HelmRelease of another chart that has the kind's prefix.
func TestUnrelatedHelmReleasesUntouched(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("unrelwidget", "UnrelWidget"))
	mk := func(name, chart string, owner *metav1.OwnerReference) *helmv2.HelmRelease {
		hr := &helmv2.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: helmv2.HelmReleaseSpec{
				Interval: metav1.Duration{Duration: time.Minute},
				Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
					Chart: chart, SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts", Namespace: "flux-system"}}},
				Values: &apiextensionsv1.JSON{Raw: []byte(`{"replicas": 1}`)},
			},
		}
		if owner != nil {
			hr.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		if err := env.Client.Create(context.Background(), hr); err != nil {
			t.Fatal(err)
		}
		return hr
	}
	ctrlTrue := true
	hrs := []*helmv2.HelmRelease{
		mk("other-app", "widget", nil),        // the kind's chart, not its prefix
		mk("unrelwidget-nginx", "nginx", nil), // the prefix, another chart
		mk("plain", "nginx", nil),             // nothing in common
		mk("unrelwidget-owned", "widget", &metav1.OwnerReference{ // controlled by something else
			APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "1234", Controller: &ctrlTrue}),
	}
	// An object whose release name is taken by an unrelated HelmRelease is
	// told so, and the HelmRelease is left alone.
	createObject(t, def, ns, "nginx", map[string]any{"replicas": int64(7)})
	waitObject(t, def, ns, "nginx", func(u *unstructured.Unstructured) error {
		if c := condition(u, "Ready"); c == nil || c["reason"] != mirror.ReasonReleaseConflict {
			return fmt.Errorf("Ready = %v", c)
		}
		return nil
	})
	// A sibling object shows the operator is busy and working.
	createObject(t, def, ns, "fine", nil)
	waitRelease(t, ns, "unrelwidget-fine", nil)
	time.Sleep(short)

	for _, want := range hrs {
		got, err := getRelease(context.Background(), ns, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != want.ResourceVersion {
			t.Errorf("HelmRelease %s modified (rv %s → %s): labels %v owners %v values %s", want.Name, want.ResourceVersion, got.ResourceVersion,
				got.Labels, got.OwnerReferences, canon(values(got)))
		}
	}
	for _, name := range []string{"app", "owned"} {
		if _, err := getObject(context.Background(), def, ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("object %s created for an unrelated HelmRelease: %v", name, err)
		}
	}
}

// An object whose release name would exceed 53 characters gets Ready=False,
// NameTooLong and a Warning event, and no HelmRelease. The CRD's name rules
// refuse such objects at create time (TestObjectNamesRefusedByTheAPIServer),
// so this is the fallback for a CRD created before the rules: the test takes
// them out while the operator is down. When the operator comes back, adding
// the rules is a schema change that the existing long name breaks: the
// definition says IncompatibleSchemaChange, naming the object, and the kind
// is still served from the CRD in place.
func TestNameTooLong(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("longwidget", "LongWidget"))
	op.stop()
	c := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "longwidgets.apps.chartkind.io"}, c); err != nil {
		t.Fatal(err)
	}
	c.Spec.Versions[0].Schema.OpenAPIV3Schema.XValidations = nil
	if err := env.Client.Update(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 53-len("longwidget-")+1)
	ok := strings.Repeat("k", 53-len("longwidget-"))
	var obj *unstructured.Unstructured
	testenv.WaitFor(t, timeout, "the CRD without name rules", func(ctx context.Context) error {
		obj = newObject(def, ns, long, map[string]any{"replicas": int64(1)})
		return env.Client.Create(ctx, obj)
	})
	createObject(t, def, ns, ok, map[string]any{"replicas": int64(1)})
	op.restart()
	d := waitDefinitionReason(t, def.Name, "IncompatibleSchemaChange")
	if m := meta.FindStatusCondition(d.Status.Conditions, "Ready").Message; !strings.Contains(m, ns+"/"+long) || !strings.Contains(m, "names may have at most 42 characters") {
		t.Errorf("IncompatibleSchemaChange message does not name the object and the rule: %s", m)
	}
	waitObject(t, def, ns, long, func(u *unstructured.Unstructured) error {
		c := condition(u, "Ready")
		if c == nil || c["status"] != "False" || c["reason"] != mirror.ReasonNameTooLong {
			return fmt.Errorf("Ready = %v", c)
		}
		return nil
	})
	waitEvent(t, ns, obj.GetUID(), mirror.EventNameTooLong, "Warning")
	waitRelease(t, ns, "longwidget-"+ok, nil)
	var list helmv2.HelmReleaseList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Errorf("%d HelmReleases, want only the one of the short name", len(list.Items))
	}
}

// Deleting a definition (deletionPolicy Retain) stops its kind: the CRD,
// objects and HelmReleases stay, and new objects are no longer mirrored.
// With deletionPolicy Delete the CRD is deleted.
func TestDefinitionDeletedStopsKind(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t)
	def := widgetDefinition("retainwidget", "RetainWidget")
	if err := env.Client.Create(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	def = waitDefinitionReason(t, def.Name, "Serving")
	createObject(t, def, ns, "kept", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "retainwidget-kept", nil)

	deleteDefinition(t, def.Name)
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: "retainwidgets.apps.chartkind.io"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
		t.Fatalf("CRD gone with deletionPolicy Retain: %v", err)
	}
	mustGetObject(t, def, ns, "kept")
	if _, err := getRelease(context.Background(), ns, "retainwidget-kept"); err != nil {
		t.Errorf("HelmRelease of a kept object: %v", err)
	}
	createObject(t, def, ns, "after", map[string]any{"replicas": int64(1)})
	time.Sleep(short)
	if _, err := getRelease(context.Background(), ns, "retainwidget-after"); !apierrors.IsNotFound(err) {
		t.Errorf("kind still served after its definition was deleted: %v", err)
	}

	// Delete policy: the CRD goes.
	del := widgetDefinition("dropwidget", "DropWidget")
	del.Spec.DeletionPolicy = v1alpha1.DeletionDelete
	if err := env.Client.Create(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	del = waitDefinitionReason(t, del.Name, "Serving")
	createObject(t, del, ns, "dropped", map[string]any{"replicas": int64(1)})
	waitRelease(t, ns, "dropwidget-dropped", nil)
	deleteDefinition(t, del.Name)
	waitGone(t, "CRD of a definition with deletionPolicy Delete", func(ctx context.Context) error {
		return env.Client.Get(ctx, types.NamespacedName{Name: "dropwidgets.apps.chartkind.io"}, &apiextensionsv1.CustomResourceDefinition{})
	})
	waitGone(t, "HelmRelease of an object deleted with its CRD", func(ctx context.Context) error {
		_, err := getRelease(ctx, ns, "dropwidget-dropped")
		return err
	})
	// The HelmReleases of the retained kind are untouched.
	if _, err := getRelease(context.Background(), ns, "retainwidget-kept"); err != nil {
		t.Errorf("HelmRelease of a retained kind: %v", err)
	}
}

// The operator is stopped in the middle of a bulk create and again in the
// middle of a bulk delete; a new operator converges with every object having
// exactly one HelmRelease and no orphans.
func TestRestartConverges(t *testing.T) {
	op := startOperator(t)
	ns := newNamespace(t)
	def := createDefinition(t, widgetDefinition("bulkwidget", "BulkWidget"))
	const n = 50

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := newObject(def, ns, fmt.Sprintf("o%02d", i), map[string]any{"replicas": int64(i%5 + 1)})
			errs <- env.Client.Create(context.Background(), u)
		}()
		if i == n/3 {
			time.Sleep(200 * time.Millisecond)
			op.stop() // mid-create
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	op.restart()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("o%02d", i)
	}
	waitConverged(t, def, ns, names)

	// Delete half of them and stop the operator in the middle.
	for i := range n / 2 {
		u := newObject(def, ns, fmt.Sprintf("o%02d", i), nil)
		if err := env.Client.Delete(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			op.stop()
		}
	}
	// While down, delete a few HelmReleases too: their objects must go.
	for i := n / 2; i < n/2+5; i++ {
		hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("bulkwidget-o%02d", i)}}
		if err := env.Client.Delete(context.Background(), hr); err != nil {
			t.Fatal(err)
		}
	}
	op.restart()
	waitConverged(t, def, ns, names[n/2+5:])
}

// waitConverged waits until exactly the named objects exist, each with exactly
// its own HelmRelease (values = spec, controlled by it), and no other HelmRelease.
func waitConverged(t *testing.T, def *v1alpha1.ApplicationDefinition, ns string, names []string) {
	t.Helper()
	want := append([]string(nil), names...)
	sort.Strings(want)
	testenv.WaitFor(t, 2*time.Minute, "convergence", func(ctx context.Context) error {
		list := &unstructured.UnstructuredList{}
		gvk := mirror.GVK(def)
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		objs := map[string]*unstructured.Unstructured{}
		var got []string
		for i := range list.Items {
			objs[list.Items[i].GetName()] = &list.Items[i]
			got = append(got, list.Items[i].GetName())
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("objects %d, want %d", len(got), len(want))
		}
		var hrs helmv2.HelmReleaseList
		if err := env.Client.List(ctx, &hrs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(hrs.Items) != len(want) {
			return fmt.Errorf("%d HelmReleases, want %d", len(hrs.Items), len(want))
		}
		for _, hr := range hrs.Items {
			name := strings.TrimPrefix(hr.Name, "bulkwidget-")
			o := objs[name]
			if o == nil {
				return fmt.Errorf("orphan HelmRelease %s", hr.Name)
			}
			if ref := metav1.GetControllerOf(&hr); ref == nil || ref.UID != o.GetUID() {
				return fmt.Errorf("HelmRelease %s not controlled by its object", hr.Name)
			}
			if canon(values(&hr)) != canon(spec(o)) {
				return fmt.Errorf("HelmRelease %s values %s, object spec %s", hr.Name, canon(values(&hr)), canon(spec(o)))
			}
			if d, _, _ := unstructured.NestedString(o.Object, "status", "valuesDigest"); d == "" {
				return fmt.Errorf("object %s status not written", name)
			}
		}
		return nil
	})
}
