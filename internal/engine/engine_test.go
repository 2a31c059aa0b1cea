package engine

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func TestGVRAndSpecHash(t *testing.T) {
	def := &v1alpha1.ApplicationDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "pg"},
		Spec:       v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Postgres"}},
	}
	if g := GVR(def); g.Group != "apps.chartkind.io" || g.Version != "v1alpha1" || g.Resource != "postgreses" {
		t.Errorf("GVR = %v", g)
	}
	h1, err := specHash(def)
	if err != nil {
		t.Fatal(err)
	}
	same := def.DeepCopy()
	same.ResourceVersion, same.Status.CRDName = "42", "x" // not part of the spec
	if h2, _ := specHash(same); h2 != h1 {
		t.Error("hash depends on more than the spec")
	}
	changed := def.DeepCopy()
	changed.Spec.Release.Prefix = "db-"
	if h3, _ := specHash(changed); h3 == h1 {
		t.Error("hash ignores a spec change")
	}
}
