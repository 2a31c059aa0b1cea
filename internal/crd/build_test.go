package crd

import (
	"errors"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

func testDefinition() *v1alpha1.ApplicationDefinition {
	d := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{
		Application: v1alpha1.ApplicationNames{
			Kind:       "Postgres",
			ShortNames: []string{"pg"},
			Categories: []string{"databases"},
			PrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"},
			},
		},
	}}
	d.Name = "postgres"
	return d
}

func specSchema() *apiextensionsv1.JSONSchemaProps {
	return &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"replicas": {Type: "integer", Minimum: ptr.To[float64](1)},
			"size":     {XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}},
		},
	}
}

func TestBuild(t *testing.T) {
	c, err := Build(Input{Definition: testDefinition(), Spec: specSchema(), ChartName: "postgres", ChartVersion: "0.1.0", SchemaDigest: "sha256:abc"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "postgreses.apps.chartkind.io" || c.Spec.Group != "apps.chartkind.io" || c.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Fatalf("names: %s %s %s", c.Name, c.Spec.Group, c.Spec.Scope)
	}
	n := c.Spec.Names
	if n.Kind != "Postgres" || n.ListKind != "PostgresList" || n.Plural != "postgreses" || n.Singular != "postgres" ||
		strings.Join(n.ShortNames, ",") != "pg" || strings.Join(n.Categories, ",") != "apps,databases" {
		t.Fatalf("CRD names: %+v", n)
	}
	if c.Labels[ManagedByLabel] != "chartkind" || c.Labels[DefinitionLabel] != "postgres" {
		t.Fatalf("labels: %v", c.Labels)
	}
	if c.Annotations[SchemaDigestAnnotation] != "sha256:abc" || c.Annotations[ChartVersionAnnotation] != "0.1.0" {
		t.Fatalf("annotations: %v", c.Annotations)
	}
	v := c.Spec.Versions[0]
	if v.Name != "v1alpha1" || !v.Served || !v.Storage || v.Subresources == nil || v.Subresources.Status == nil {
		t.Fatalf("version: %+v", v)
	}
	var cols []string
	for _, col := range v.AdditionalPrinterColumns {
		if col.Priority == 0 {
			cols = append(cols, col.Name)
		}
	}
	if got := strings.Join(cols, " "); got != "Ready Age Version Replicas" {
		t.Fatalf("printer columns = %q, want NAME READY AGE VERSION then the definition's", got)
	}
	root := v.Schema.OpenAPIV3Schema
	if root.Properties["spec"].Properties["replicas"].Type != "integer" || root.Properties["status"].Properties["conditions"].Type != "array" {
		t.Fatalf("schema not assembled: %+v", root.Properties)
	}
	if root.Properties["spec"].Description == "" {
		t.Fatal("spec has no description for kubectl explain")
	}
}

func TestBuildRejectsInvalidSchemaNamingThePath(t *testing.T) {
	spec := specSchema()
	spec.Properties["broken"] = apiextensionsv1.JSONSchemaProps{Description: "no type"}
	c, err := Build(Input{Definition: testDefinition(), Spec: spec})
	if c != nil {
		t.Fatal("a partial CRD was returned with the error")
	}
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("got %v, want *InvalidError", err)
	}
	if !strings.Contains(err.Error(), "properties[spec].properties[broken].type") {
		t.Fatalf("error does not name the schema path: %v", err)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a, err := Build(Input{Definition: testDefinition(), Spec: specSchema()})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(Input{Definition: testDefinition(), Spec: specSchema()})
	ja, _ := a.Marshal()
	jb, _ := b.Marshal()
	if string(ja) != string(jb) {
		t.Fatal("same input gave different CRDs")
	}
}

func TestStatusSchemaHasMirroredFields(t *testing.T) {
	s := StatusSchema()
	for _, f := range []string{"conditions", "observedGeneration", "version", "failures", "release", "valuesDigest"} {
		if _, ok := s.Properties[f]; !ok {
			t.Errorf("status schema lacks %s", f)
		}
	}
}
