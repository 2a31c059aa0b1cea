package schemaconv

import (
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/crd"
)

// crdChecker is the API server's view of one converted schema: internal/crd's
// Checker on the CRD the validators see (specCRD).
type crdChecker struct {
	*crd.Checker
}

// newCRDChecker validates the CRD like the API server does on create and
// prepares the checks of custom resources. It returns the CRD validation
// errors as strings.
func newCRDChecker(t testing.TB, spec *apiextensionsv1.JSONSchemaProps) (*crdChecker, []string) {
	t.Helper()
	if errs := validateAsCRD(spec); len(errs) > 0 {
		return nil, errs
	}
	c, err := crd.NewChecker(specCRD(spec), "")
	if err != nil {
		return nil, []string{err.Error()}
	}
	return &crdChecker{c}, nil
}

// check does what the API server does with a CR of the given spec (already
// decoded the way the API server decodes JSON) and returns the pruned paths
// and, as errors, the nulls it would drop (which changes what Helm sees: a
// null removes a chart default) and the validation errors.
func (c *crdChecker) check(spec any) (pruned []string, errs []string) {
	r := c.Check(map[string]any{"spec": spec})
	for _, f := range r.NullsDropped {
		errs = append(errs, f+": null would be dropped")
	}
	for _, e := range r.Invalid {
		errs = append(errs, e.Error())
	}
	return r.Pruned, errs
}

// decodeValues decodes YAML like kubectl + the API server: YAML to JSON,
// then JSON with integers as int64.
func decodeValues(t testing.TB, b []byte) map[string]any {
	t.Helper()
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(j, &m); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func firstN(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], "\n") + fmt.Sprintf("\n… and %d more", len(s)-n)
	}
	return strings.Join(s, "\n")
}
