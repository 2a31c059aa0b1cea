// Package generate turns an ApplicationDefinition and its chart into the
// CustomResourceDefinition that serves the definition's kind: it picks the
// schema, converts it and builds the CRD. The operator and `chartkind generate`
// both call it, so a CRD committed to a GitOps repo is the one the operator
// would apply.
package generate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/lock"
	"github.com/chartkind/chartkind/internal/schemaconv"
)

// Input is a definition and, unless the definition carries its own schema, the
// chart it points at.
type Input struct {
	Definition *v1alpha1.ApplicationDefinition
	// Chart may be nil when the definition has an inline spec.schema.
	Chart *chart.Chart
}

// Result is a generated CRD and what was noticed on the way.
type Result struct {
	CRD *apiextensionsv1.CustomResourceDefinition
	// SchemaDigest identifies the schema and values the CRD was generated from.
	SchemaDigest string
	// SchemaSource names where the schema came from, for messages.
	SchemaSource string
	// OpenSpec is true when there was no schema at all and spec accepts anything.
	OpenSpec bool
	// Warnings are the converter's notes about what a CRD could not express.
	Warnings []string
}

// SchemaError is a schema that cannot be turned into a CRD; Source names the
// file or field it came from.
type SchemaError struct {
	Source string
	Err    error
}

func (e *SchemaError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *SchemaError) Unwrap() error { return e.Err }

// CRD generates the CRD for in.
func CRD(in Input) (*Result, error) {
	def := in.Definition
	if def == nil {
		return nil, fmt.Errorf("generating CRD: no definition")
	}
	var schemaJSON, valuesYAML []byte
	var source, chartName, chartVersion string
	if in.Chart != nil {
		valuesYAML = in.Chart.Values
		chartName, chartVersion = in.Chart.Name, in.Chart.Version
	}
	switch {
	case def.Spec.Schema != nil && len(def.Spec.Schema.Raw) > 0:
		schemaJSON = def.Spec.Schema.Raw
		source = fmt.Sprintf("ApplicationDefinition %s: spec.schema", def.Name)
	case in.Chart != nil && len(in.Chart.Schema) > 0:
		schemaJSON = in.Chart.Schema
		source = filepath.Join(in.Chart.Source, "values.schema.json")
	case in.Chart != nil:
		source = in.Chart.Source
	default:
		return nil, fmt.Errorf("ApplicationDefinition %s: no chart and no spec.schema to generate the CRD from", def.Name)
	}

	res := &Result{SchemaSource: source, SchemaDigest: Digest(schemaJSON, valuesYAML)}
	var spec *apiextensionsv1.JSONSchemaProps
	if schemaJSON == nil {
		res.OpenSpec = true
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s has no values.schema.json: spec accepts any values", source))
		spec = &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}
	} else {
		conv, err := schemaconv.Convert(schemaJSON, valuesYAML, schemaconv.Options{Defaults: def.Spec.Defaults == v1alpha1.DefaultsApply})
		if err != nil {
			return nil, &SchemaError{Source: source, Err: err}
		}
		spec = conv.Schema
		res.Warnings = append(res.Warnings, conv.Warnings...)
	}

	// The administrator's locked paths: refused by the API server.
	paths, err := lock.Paths(def)
	if err != nil {
		return nil, &SchemaError{Source: fmt.Sprintf("ApplicationDefinition %s", def.Name), Err: err}
	}
	if len(paths) > 0 {
		spec = spec.DeepCopy()
		defaults := map[string]any{}
		if len(valuesYAML) > 0 {
			// Only type hints for untyped locked properties: a values.yaml
			// that does not decode was already reported by the conversion.
			_ = yaml.Unmarshal(valuesYAML, &defaults)
		}
		if err := lock.Schema(spec, def.Name, paths, defaults); err != nil {
			return nil, &SchemaError{Source: fmt.Sprintf("ApplicationDefinition %s", def.Name), Err: err}
		}
		// A change of the locks is a schema change: spec.acceptSchemaChange
		// names the schema with its locks.
		h := sha256.New()
		h.Write([]byte(res.SchemaDigest))
		for _, p := range paths {
			h.Write([]byte{0})
			h.Write([]byte(p))
		}
		res.SchemaDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}

	c, err := crd.Build(crd.Input{Definition: def, Spec: spec, ChartName: chartName, ChartVersion: chartVersion, SchemaDigest: res.SchemaDigest})
	if err != nil {
		return nil, &SchemaError{Source: source, Err: err}
	}
	res.CRD = c
	return res, nil
}

// Digest identifies a schema together with the values it was converted
// against (values decide which fields are required and which accept null).
func Digest(schemaJSON, valuesYAML []byte) string {
	h := sha256.New()
	h.Write(schemaJSON)
	h.Write([]byte{0})
	h.Write(valuesYAML)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
