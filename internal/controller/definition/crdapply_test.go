package definition

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// The apply is skipped only for the very CRD chartkind's recorded apply left,
// at the recorded generation, applied with the digest chartkind would apply
// now, and still carrying chartkind's labels and annotations. Anything else
// (a hand edit, a new object, a new digest, no record) is applied.
// (test/integration TestRestartWritesNoCRD checks it against the API server.)
func TestCRDUpToDate(t *testing.T) {
	want := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{
		Name:        "widgets.apps.chartkind.io",
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "chartkind", "chartkind.io/definition": "widget"},
		Annotations: map[string]string{"chartkind.io/chart-version": "1.0.0"},
	}}
	const digest = "d1"
	live := func() *apiextensionsv1.CustomResourceDefinition {
		c := want.DeepCopy()
		c.UID, c.Generation = "uid-1", 3
		c.Labels["extra"] = "someone else's label is not chartkind's business"
		c.Annotations[SpecHashAnnotation] = digest
		return c
	}
	rec := func() *v1alpha1.AppliedCRD { return &v1alpha1.AppliedCRD{Digest: digest, UID: "uid-1", Generation: 3} }

	if !crdUpToDate(rec(), live(), want, digest) {
		t.Fatal("the CRD chartkind's last apply left, unchanged, is applied again")
	}
	now := metav1.Now()
	for name, c := range map[string]struct {
		noRecord bool
		rec      *v1alpha1.AppliedCRD
		live     func(*apiextensionsv1.CustomResourceDefinition)
		digest   string
	}{
		"no record (first start of this version)": {noRecord: true},
		"the desired CRD changed":                 {digest: "d2"},
		"the record is of another digest":         {rec: &v1alpha1.AppliedCRD{Digest: "d0", UID: "uid-1", Generation: 3}},
		"the spec was changed since (generation)": {live: func(c *apiextensionsv1.CustomResourceDefinition) { c.Generation = 4 }},
		"the CRD was deleted and created again":   {live: func(c *apiextensionsv1.CustomResourceDefinition) { c.UID = "uid-2" }},
		"the CRD is being deleted":                {live: func(c *apiextensionsv1.CustomResourceDefinition) { c.DeletionTimestamp = &now }},
		"the digest annotation was edited":        {live: func(c *apiextensionsv1.CustomResourceDefinition) { c.Annotations[SpecHashAnnotation] = "x" }},
		"a label of chartkind's was changed":      {live: func(c *apiextensionsv1.CustomResourceDefinition) { c.Labels["chartkind.io/definition"] = "other" }},
		"an annotation of chartkind's was removed": {live: func(c *apiextensionsv1.CustomResourceDefinition) {
			delete(c.Annotations, "chartkind.io/chart-version")
		}},
	} {
		r := rec()
		switch {
		case c.noRecord:
			r = nil
		case c.rec != nil:
			r = c.rec
		}
		l := live()
		if c.live != nil {
			c.live(l)
		}
		d := digest
		if c.digest != "" {
			d = c.digest
		}
		if crdUpToDate(r, l, want, d) {
			t.Errorf("%s: the apply is skipped", name)
		}
	}
}
