package crd

import (
	"context"
	"fmt"
	"sort"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// Checker does offline what the API server does with an object of one CRD
// when it is created, with the API server's own code: on decoding, drop
// unknown fields (pruning) and nulls of non-nullable fields, apply defaults;
// then validate against the OpenAPI schema, the list-type invariants and the
// CEL rules. `chartkind validate` and tests use it to see an application
// object as the API server would, before the admission webhook sees it.
type Checker struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// NewChecker prepares the validators of crd's storage version (chartkind CRDs
// have one version). The CRD must be valid (Build validates what it returns).
func NewChecker(crd *apiextensionsv1.CustomResourceDefinition) (*Checker, error) {
	v1 := crd.DeepCopy()
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(v1)
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, &internal, nil); err != nil {
		return nil, fmt.Errorf("CRD %s: converting: %w", crd.Name, err)
	}
	version := ""
	for _, v := range internal.Spec.Versions {
		if v.Storage {
			version = v.Name
		}
	}
	val, err := apiextensionsinternal.GetSchemaForVersion(&internal, version)
	if err != nil || val == nil || val.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("CRD %s: no schema for version %q: %v", crd.Name, version, err)
	}
	ss, err := structuralschema.NewStructural(val.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: schema is not structural: %w", crd.Name, err)
	}
	sv, _, err := apiservervalidation.NewSchemaValidator(val.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: %w", crd.Name, err)
	}
	return &Checker{structural: ss, validator: sv, cel: cel.NewValidator(ss, true, celconfig.PerCallLimit)}, nil
}

// Check checks a whole object (apiVersion, kind, metadata, spec), decoded from
// JSON the way the API server decodes it (integers as int64), and turns obj
// into what the API server would store: obj is modified in place.
//
// pruned lists the unknown fields the API server drops ("spec.foo.bar", sorted);
// kubectl's default --validate=strict makes the API server refuse the object
// for them instead. errs are the validation errors the API server would
// answer with, paths rooted at the object ("spec.replicas").
func (c *Checker) Check(obj map[string]any) (pruned []string, errs field.ErrorList) {
	pruned = pruning.PruneWithOptions(obj, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	sort.Strings(pruned)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, c.structural)
	structuraldefaulting.Default(obj, c.structural)

	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, c.validator)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, c.structural, obj)...)
	// Like the API server, CEL rules only run when the object is otherwise
	// well-formed enough for them.
	if blocked := blockingError(errs); blocked != nil {
		errs = append(errs, blocked)
	} else {
		celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return pruned, errs
}

// blockingError is the API server's hasBlockingErr (customresource strategy).
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}
