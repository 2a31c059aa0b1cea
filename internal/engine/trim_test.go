package engine

import (
	"context"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestTrimRelease(t *testing.T) {
	hr := &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"l": "1"}, Annotations: map[string]string{"x": "y"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: helmv2.HelmReleaseSpec{Suspend: true},
		Status: helmv2.HelmReleaseStatus{History: helmv2.Snapshots{
			{Version: 3, Status: "deployed"}, {Version: 2}, {Version: 1}, {Version: 4, Status: "failed"},
		}},
	}
	out, err := TrimRelease(hr)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*helmv2.HelmRelease)
	if got.ManagedFields != nil {
		t.Error("managedFields kept")
	}
	if got.Labels["l"] != "1" || got.Annotations["x"] != "y" || !got.Spec.Suspend {
		t.Error("labels, annotations or spec changed: an update from the cache would write them")
	}
	if h := got.Status.History; len(h) != 2 || h[0].Version != 3 || h[1].Version != 4 {
		t.Errorf("history %v, want the first (3) and the latest (4)", h)
	}
	if _, err := TrimRelease("not a release"); err != nil {
		t.Error(err)
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
