package engine

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// What chartkind reads of a HelmRelease's status (internal/mirror: steps.go
// status, observe.go, dependencies.go, operations.go; internal/insight:
// inventory, notes, manifest) and of its history's snapshots. Any other
// field is dropped from the cache; a field helm-controller adds in a new
// version fails TestTrimRelease until it is put in one list or the other.
var (
	releaseStatusRead = []string{"ObservedGeneration", "Conditions", "StorageNamespace", "History", "Inventory",
		"Failures", "InstallFailures", "UpgradeFailures", "ReconcileRequestStatus"}
	releaseStatusDropped = []string{"ObservedPostRenderersDigest", "ObservedCommonMetadataDigest", "LastAttemptedGeneration",
		"HelmChart", "LastAttemptedReleaseAction", "LastAttemptedReleaseActionDuration", "LastAttemptedRevision",
		"LastAttemptedRevisionDigest", "LastAttemptedValuesChecksum", "LastReleaseRevision", "LastAttemptedConfigDigest",
		"LastHandledResetAt", "ForceRequestStatus"}
	snapshotRead    = []string{"Name", "Version", "Status", "ChartVersion", "AppVersion"}
	snapshotDropped = []string{"APIVersion", "Digest", "Namespace", "Action", "ChartName", "ConfigDigest", "FirstDeployed",
		"LastDeployed", "Deleted", "TestHooks", "OCIDigest"}
)

// decodedRelease is testdata/helmrelease.json (a release as helm-controller
// leaves it after an upgrade, with managedFields) decoded as the informer
// decodes it, with every status field set.
func decodedRelease(t testing.TB) *helmv2.HelmRelease {
	t.Helper()
	raw, err := os.ReadFile("testdata/helmrelease.json")
	if err != nil {
		t.Fatal(err)
	}
	s := runtime.NewScheme()
	if err := helmv2.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	obj, _, err := serializer.NewCodecFactory(s).UniversalDeserializer().Decode(raw, nil, &helmv2.HelmRelease{})
	if err != nil {
		t.Fatal(err)
	}
	hr := obj.(*helmv2.HelmRelease)
	st := &hr.Status
	st.Failures, st.InstallFailures, st.UpgradeFailures = 1, 2, 3
	st.LastAttemptedRevisionDigest, st.LastReleaseRevision, st.ObservedCommonMetadataDigest = "sha256:1", 2, "sha256:2"
	st.LastHandledResetAt, st.LastHandledForceAt = "r", "f"
	st.LastAttemptedValuesChecksum = "sha1:4"
	for _, h := range st.History {
		hooks := map[string]*helmv2.TestHookStatus{"t": {Phase: "Succeeded"}}
		h.APIVersion, h.Action, h.OCIDigest, h.Deleted, h.TestHooks = "v2", "upgrade", "sha256:3", metav1.Now(), &hooks
	}
	return hr
}

func TestTrimRelease(t *testing.T) {
	hr := decodedRelease(t)
	// Snapshots.Latest is by version, not position: put an older one first.
	hr.Status.History = append(helmv2.Snapshots{hr.Status.History[1].DeepCopy()}, hr.Status.History...)
	orig := hr.DeepCopy()
	out, err := TrimRelease(hr)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*helmv2.HelmRelease)
	if got.ManagedFields != nil {
		t.Error("managedFields kept")
	}
	// The spec and metadata are written back by updates from the cache:
	// all of them must stay, equal (interned strings are equal strings).
	want := orig.DeepCopy()
	want.ManagedFields = nil
	if !equality.Semantic.DeepEqual(got.ObjectMeta, want.ObjectMeta) || !equality.Semantic.DeepEqual(got.Spec, want.Spec) || got.TypeMeta != want.TypeMeta {
		t.Errorf("metadata or spec changed: an update from the cache would write the change\n got %+v\nwant %+v", got.ObjectMeta, want.ObjectMeta)
	}
	if len(got.Finalizers) != 1 || len(got.Labels) != 4 || got.Annotations["apps.chartkind.io/object-generation"] != "2" {
		t.Errorf("finalizers %v, labels %v, annotations %v", got.Finalizers, got.Labels, got.Annotations)
	}

	checkFields(t, "status", reflect.ValueOf(orig.Status), reflect.ValueOf(got.Status), releaseStatusRead, releaseStatusDropped, "History")
	// The first snapshot (helm-controller's newest-first order) and the
	// latest by version, in that order; a third is dropped.
	h := got.Status.History
	if len(h) != 2 || h[0].Version != 1 || h[1].Version != 2 {
		t.Fatalf("history %v, want the first (version 1) and the latest (version 2)", h)
	}
	checkFields(t, "first snapshot", reflect.ValueOf(*orig.Status.History[0]), reflect.ValueOf(*h[0]), snapshotRead, snapshotDropped, "")
	checkFields(t, "latest snapshot", reflect.ValueOf(*orig.Status.History[1]), reflect.ValueOf(*h[1]), snapshotRead, snapshotDropped, "")
	if !equality.Semantic.DeepEqual(got.Status.Conditions, orig.Status.Conditions) || !equality.Semantic.DeepEqual(got.Status.Inventory, orig.Status.Inventory) {
		t.Errorf("conditions or inventory changed: %v %v", got.Status.Conditions, got.Status.Inventory)
	}

	// The newest snapshot first, and the latest: one snapshot.
	hr = decodedRelease(t)
	out, _ = TrimRelease(hr)
	if h := out.(*helmv2.HelmRelease).Status.History; len(h) != 1 || h[0].Version != 2 || h[0].Status != "deployed" || h[0].ChartVersion != "16.4.2" {
		t.Errorf("history %v, want the one snapshot of version 2", h)
	}
	if _, err := TrimRelease("not a release"); err != nil {
		t.Error(err)
	}
}

// checkFields says every field of the struct got is either one read, and
// then equal to orig's (which must be set, or the test proves nothing), or
// one dropped, and then zero; skip is compared by the caller.
func checkFields(t *testing.T, what string, orig, got reflect.Value, read, dropped []string, skip string) {
	t.Helper()
	kind := map[string]string{}
	for _, f := range read {
		kind[f] = "read"
	}
	for _, f := range dropped {
		kind[f] = "dropped"
	}
	for i := range got.NumField() {
		name := got.Type().Field(i).Name
		o, g := orig.Field(i), got.Field(i)
		switch kind[name] {
		case "read":
			if o.IsZero() {
				t.Errorf("%s.%s: not set in the test release", what, name)
			} else if name != skip && !equality.Semantic.DeepEqual(o.Interface(), g.Interface()) {
				t.Errorf("%s.%s: chartkind reads it, but it changed: %v, was %v", what, name, g.Interface(), o.Interface())
			}
		case "dropped":
			if o.IsZero() {
				t.Errorf("%s.%s: not set in the test release", what, name)
			} else if !g.IsZero() {
				t.Errorf("%s.%s: chartkind never reads it, but it is kept: %v", what, name, g.Interface())
			}
		default:
			t.Errorf("%s.%s: a field neither read nor dropped (a new helm-controller version?): add it to one list", what, name)
		}
	}
}

// Interned strings are shared, bounded, and equal to what they replace.
func TestIntern(t *testing.T) {
	a, b := strings.Clone("apps.chartkind.io/definition"), strings.Clone("apps.chartkind.io/definition")
	if ia, ib := intern(a), intern(b); ia != a || unsafe.StringData(ia) != unsafe.StringData(ib) {
		t.Errorf("not shared: %q %q", ia, ib)
	}
	labels := internKeys(map[string]string{b: "x"})
	for k := range labels {
		if unsafe.StringData(k) != unsafe.StringData(intern(a)) {
			t.Error("a map key not interned")
		}
	}
	for i := range maxInterned + 10 {
		intern(fmt.Sprintf("k%d", i))
	}
	if n := interned.n.Load(); n > maxInterned {
		t.Errorf("%d strings interned, the bound is %d", n, maxInterned)
	}
	if s := intern("never seen before"); s != "never seen before" {
		t.Errorf("past the bound: %q", s)
	}
}

func TestTrimCRD(t *testing.T) {
	c := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "xs.g", Labels: map[string]string{"chartkind.io/definition": "x"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec:       apiextensionsv1.CustomResourceDefinitionSpec{Group: "g"},
	}
	out, _ := TrimCRD(c)
	got := out.(*apiextensionsv1.CustomResourceDefinition)
	if got.Name != "xs.g" || got.Labels["chartkind.io/definition"] != "x" || got.Spec.Group != "" || got.ManagedFields != nil {
		t.Errorf("trimmed CRD %+v", got)
	}
}

func TestTrimObjectMeta(t *testing.T) {
	now := metav1.Now()
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 3,
		DeletionTimestamp: &now, Labels: map[string]string{"a": "b"},
		Annotations:   map[string]string{"watched": "1", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	out, _ := trimObjectMeta([]string{"watched", "absent"})(m)
	got := out.(*metav1.PartialObjectMetadata)
	if got.Name != "o" || got.Namespace != "ns" || got.UID != "u" || got.ResourceVersion != "7" || got.Generation != 3 || got.DeletionTimestamp == nil {
		t.Errorf("identity, generation or deletion lost: %+v", got.ObjectMeta)
	}
	if len(got.Annotations) != 1 || got.Annotations["watched"] != "1" || got.Labels != nil || got.ManagedFields != nil {
		t.Errorf("kept %v %v %v", got.Annotations, got.Labels, got.ManagedFields)
	}
}

func TestOwnWrites(t *testing.T) {
	s := runtime.NewScheme()
	if err := helmv2.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	w := NewOwnWrites()
	c := w.Wrap(fake.NewClientBuilder().WithScheme(s).Build())
	hr := &helmv2.HelmRelease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}
	if err := c.Create(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	seen := hr.DeepCopy()
	if !w.own(seen) {
		t.Error("the event of an own create is not recognised")
	}
	if w.own(seen) {
		t.Error("one write, one event: a second event of the same version counts as own")
	}
	if err := c.Update(context.Background(), hr); err != nil {
		t.Fatal(err)
	}
	other := hr.DeepCopy()
	other.ResourceVersion = "someone-else"
	if w.own(other) {
		t.Error("another version counts as own")
	}
	if !w.own(hr.DeepCopy()) {
		t.Error("the event of an own update is not recognised")
	}
	var none *OwnWrites
	if none.own(hr) {
		t.Error("a nil OwnWrites recognises writes")
	}
	var _ client.Client = c
}
