package schemaconv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apivalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdChecker holds the API server's view of one converted schema.
type crdChecker struct {
	internal   *apiextensions.JSONSchemaProps
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// newCRDChecker validates the CRD like the API server does on create and
// prepares the validators for custom resources. It returns the CRD
// validation errors as strings.
func newCRDChecker(t testing.TB, spec *apiextensionsv1.JSONSchemaProps) (*crdChecker, []string) {
	t.Helper()
	crd := specCRD(spec)
	var in apiextensions.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, &in, nil); err != nil {
		t.Fatalf("convert CRD: %v", err)
	}
	var errs []string
	for _, e := range apivalidation.ValidateCustomResourceDefinition(context.Background(), &in) {
		errs = append(errs, e.Error())
	}
	if len(errs) > 0 {
		return nil, errs
	}
	var schema *apiextensions.JSONSchemaProps
	if vs := in.Spec.Versions[0].Schema; vs != nil {
		schema = vs.OpenAPIV3Schema
	} else {
		schema = in.Spec.Validation.OpenAPIV3Schema
	}
	ss, err := structuralschema.NewStructural(schema)
	if err != nil {
		return nil, []string{"structural: " + err.Error()}
	}
	v, _, err := apiservervalidation.NewSchemaValidator(schema)
	if err != nil {
		return nil, []string{"validator: " + err.Error()}
	}
	return &crdChecker{internal: schema, structural: ss, validator: v, cel: cel.NewValidator(ss, true, celconfig.PerCallLimit)}, nil
}

// check runs pruning, OpenAPI and CEL validation on a CR with the given
// spec (already decoded the way the API server decodes JSON) and returns
// pruned paths and validation errors.
func (c *crdChecker) check(spec any) (pruned []string, errs []string) {
	obj := map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1",
		"kind":       "TestApp",
		"metadata":   map[string]any{"name": "x", "namespace": "default"},
		"spec":       spec,
	}
	pruned = pruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, e := range apiservervalidation.ValidateCustomResource(nil, obj, c.validator) {
		errs = append(errs, e.Error())
	}
	if c.cel != nil {
		celErrs, _ := c.cel.Validate(context.Background(), field.NewPath(""), c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		for _, e := range celErrs {
			errs = append(errs, "cel: "+e.Error())
		}
	}
	return pruned, errs
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
