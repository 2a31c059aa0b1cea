package crd

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// Checker does offline, with the API server's own code and in its order, what
// the API server does with an object of one version of a CRD:
//
//   - what every decoding does (a create, an update, a read from storage):
//     prune unknown fields, drop nulls of fields that are neither nullable nor
//     defaulted, coerce embedded ObjectMeta (x-kubernetes-embedded-resource),
//     apply defaults;
//   - then what a create validates: the OpenAPI schema (types, nullable, enum,
//     pattern, bounds, required, format), embedded ObjectMeta, list sets and
//     maps, and the CEL rules with the API server's runtime cost budget,
//     skipped as the API server skips them after a schema error that makes
//     them meaningless.
//
// Building a Checker converts the schema, prunes its defaults and compiles its
// CEL rules, as the API server does once when it starts serving a CRD (about
// 1 ms); build one per CRD and reuse it. A Checker is safe for concurrent use.
//
// It is chartkind's one implementation of this: `chartkind validate` and the
// tests of the converter and of the values check use it to see an object as
// the API server would store it, internal/schemachange to see what a new CRD
// would do to existing objects (verified there against a real kube-apiserver).
type Checker struct {
	apiVersion, kind string
	structural       *structuralschema.Structural
	validator        apiservervalidation.SchemaValidator
	cel              *cel.Validator // nil without x-kubernetes-validations

	preserveUnknownFields bool // spec.preserveUnknownFields: nothing is pruned
	statusSubresource     bool // a create cannot set status

	// What the schema uses, so that Check skips the passes that cannot matter.
	hasDefaults       bool
	hasEmbedded       bool // x-kubernetes-embedded-resource somewhere
	hasListSetsOrMaps bool // x-kubernetes-list-type set or map somewhere
}

// NewChecker prepares the checks for the named version of c; version "" is
// the storage version (the first one if none is marked). c should be a CRD
// that Build produced or the API server accepted.
func NewChecker(c *apiextensionsv1.CustomResourceDefinition, version string) (*Checker, error) {
	v := findVersion(c, version)
	if v == nil {
		if version == "" {
			return nil, fmt.Errorf("CRD %s has no versions", c.Name)
		}
		return nil, fmt.Errorf("CRD %s has no version %s", c.Name, version)
	}
	version = v.Name
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("CRD %s: version %s has no schema", c.Name, version)
	}
	// The API server works on the internal version of the schema; so do we.
	var internal apiextensionsinternal.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema.DeepCopy(), &internal, nil); err != nil {
		return nil, fmt.Errorf("CRD %s version %s: converting the schema: %w", c.Name, version, err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s version %s: schema is not structural: %w", c.Name, version, err)
	}
	// Defaults are pruned against the schema before use, as the API server does
	// when it starts serving a CRD.
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("CRD %s version %s: pruning defaults: %w", c.Name, version, err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s version %s: building the schema validator: %w", c.Name, version, err)
	}
	chk := &Checker{
		apiVersion:            c.Spec.Group + "/" + version,
		kind:                  c.Spec.Names.Kind,
		structural:            s,
		validator:             validator,
		cel:                   cel.NewValidator(s, true, celconfig.PerCallLimit),
		preserveUnknownFields: c.Spec.PreserveUnknownFields,
		statusSubresource:     v.Subresources != nil && v.Subresources.Status != nil,
	}
	walkStructural(s, func(n *structuralschema.Structural) {
		chk.hasDefaults = chk.hasDefaults || n.Default.Object != nil
		chk.hasEmbedded = chk.hasEmbedded || n.XEmbeddedResource
		if n.XListType != nil && (*n.XListType == "set" || *n.XListType == "map") {
			chk.hasListSetsOrMaps = true
		}
	})
	return chk, nil
}

// findVersion returns the named version of c, or for "" the storage version
// (the first one if none is marked), or nil.
func findVersion(c *apiextensionsv1.CustomResourceDefinition, name string) *apiextensionsv1.CustomResourceDefinitionVersion {
	var found *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range c.Spec.Versions {
		v := &c.Spec.Versions[i]
		switch {
		case name != "" && v.Name == name, name == "" && v.Storage:
			return v
		case name == "" && found == nil:
			found = v
		}
	}
	return found
}

func walkStructural(s *structuralschema.Structural, f func(*structuralschema.Structural)) {
	if s == nil {
		return
	}
	f(s)
	for k := range s.Properties {
		p := s.Properties[k]
		walkStructural(&p, f)
	}
	walkStructural(s.Items, f)
	if s.AdditionalProperties != nil {
		walkStructural(s.AdditionalProperties.Structural, f)
	}
}

// Result is what the API server would do with one object.
type Result struct {
	// Pruned are the fields the API server drops because the schema does not
	// know them (paths like spec.a.b[0].c, sorted). On a create, kubectl's
	// default --validate=strict makes the API server refuse the object for
	// them instead; on a read they disappear at once, and from storage at the
	// next write of the object.
	Pruned []string
	// NullsDropped are the fields holding null that the API server drops
	// because they are not nullable, or replaces by the field's default
	// (sorted). It does so silently; in Helm a null removes a chart default,
	// so this changes what the chart sees.
	NullsDropped []string
	// Invalid are the validation errors the API server would answer a create
	// with, paths rooted at the object (spec.replicas), sorted by path (the
	// API server's order varies), pathless errors last. A pathless error
	// (Field "<nil>") is the API server's "some validation rules were not
	// checked" after errors that block the CEL rules, or kube-openapi's second
	// error for a number of the wrong type.
	Invalid field.ErrorList
	// Spec is the object's spec as the API server would store and serve it:
	// pruned, nulls dropped, defaulted. HasSpec is false when the object has
	// none (or it was a null the API server dropped).
	Spec    any
	HasSpec bool
}

// Clean reports whether the API server would keep the object as it is (bar
// defaults) and accept it: nothing pruned, no null dropped, no error.
func (r Result) Clean() bool {
	return len(r.Pruned) == 0 && len(r.NullsDropped) == 0 && len(r.Invalid) == 0
}

// blockingCELMessage is the API server's error when schema errors stop it from
// running the CEL rules.
const blockingCELMessage = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"

// Check says what the API server would do with obj (an object with
// apiVersion, kind, metadata, spec…, or just a spec under "spec"), decoded from
// JSON the way the API server decodes it (integers int64, other numbers
// float64; other Go numbers are accepted). obj is not modified.
//
// The spec and every other top-level field are checked, except apiVersion,
// kind and metadata, which are the checker's and the caller's business (only
// metadata's name and namespace are passed on), and status when the version
// has a status subresource (a create cannot set it, chartkind's status is not
// the chart's). The steps are the API server's, in its order: pruning of
// unknown fields and of non-nullable nulls without a default, coercion of
// embedded ObjectMeta, defaulting (what every decoding does), then validation
// as on create, without ratcheting.
func (c *Checker) Check(obj map[string]any) Result {
	var r Result
	// A probe holds a copy of what is checked and only what the schema's root
	// needs besides, so that metadata and status neither cost time nor
	// produce problems.
	probe := make(map[string]any, len(obj)+1)
	for k, v := range obj {
		switch k {
		case "apiVersion", "kind", "metadata":
			continue
		case "status":
			if c.statusSubresource {
				continue
			}
		}
		cp, err := copyJSON(v)
		if err != nil {
			r.Invalid = append(r.Invalid, field.InternalError(field.NewPath(k), err))
			continue
		}
		probe[k] = cp
	}
	if len(r.Invalid) > 0 {
		sortErrors(r.Invalid)
		return r
	}
	meta := map[string]any{}
	if m, ok := obj["metadata"].(map[string]any); ok {
		for _, k := range []string{"name", "namespace"} {
			if s, ok := m[k].(string); ok && s != "" {
				meta[k] = s
			}
		}
	}
	probe["apiVersion"], probe["kind"], probe["metadata"] = c.apiVersion, c.kind, meta

	// What every decoding does.
	var nulls []nullField
	if !c.preserveUnknownFields {
		r.Pruned = pruning.PruneWithOptions(probe, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		nulls = findNulls(probe, "", nil)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(probe, c.structural)
	}
	if c.hasEmbedded {
		ferr, unknown := objectmeta.CoerceWithOptions(nil, probe, c.structural, false, objectmeta.CoerceOptions{DropInvalidFields: true, ReturnUnknownFieldPaths: true})
		if ferr != nil {
			r.Invalid = append(r.Invalid, ferr)
		}
		r.Pruned = append(r.Pruned, unknown...)
	}
	sort.Strings(r.Pruned)
	if c.hasDefaults {
		structuraldefaulting.Default(probe, c.structural)
	}
	// A null is gone if it was dropped, or replaced by the default of a field
	// that is not nullable.
	for _, n := range nulls {
		if v, kept := n.parent[n.key]; !kept || v != nil {
			r.NullsDropped = append(r.NullsDropped, n.path)
		}
	}
	sort.Strings(r.NullsDropped)
	r.Spec, r.HasSpec = probe["spec"]

	// What a create would refuse (customResourceStrategy.Validate).
	ctx := context.Background()
	r.Invalid = append(r.Invalid, apiservervalidation.ValidateCustomResource(nil, probe, c.validator)...)
	if c.hasEmbedded {
		r.Invalid = append(r.Invalid, objectmeta.Validate(ctx, nil, probe, c.structural, false)...)
	}
	if c.hasListSetsOrMaps {
		r.Invalid = append(r.Invalid, listtype.ValidateListSetsAndMaps(nil, c.structural, probe)...)
	}
	if c.cel != nil {
		if blocksCEL(r.Invalid) {
			r.Invalid = append(r.Invalid, field.Invalid(nil, nil, blockingCELMessage))
		} else {
			celErrs, _ := c.cel.Validate(ctx, nil, c.structural, probe, nil, celconfig.RuntimeCELCostBudget)
			r.Invalid = append(r.Invalid, celErrs...)
		}
	}
	sortErrors(r.Invalid)
	return r
}

// sortErrors sorts errs by field, pathless errors last, keeping the order of
// errors on the same field. The validators walk maps, so the API server's
// order varies from call to call; ours does not.
func sortErrors(errs field.ErrorList) {
	pathless := func(f string) bool { return f == "" || f == "<nil>" }
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Field, errs[j].Field
		if pathless(a) || pathless(b) {
			return !pathless(a) && pathless(b)
		}
		return a < b
	})
}

// blocksCEL is the API server's hasBlockingErr: whether errs contain an error
// after which it does not evaluate CEL rules (the values they would see are
// not of the declared types or sizes).
func blocksCEL(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

type nullField struct {
	parent map[string]any
	key    string
	path   string
}

// findNulls lists the null values held by object fields under v, with their
// paths in the API server's notation; only those can be dropped (nulls in
// lists are never removed, they fail validation instead).
func findNulls(v any, path string, out []nullField) []nullField {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if x == nil {
				out = append(out, nullField{parent: v, key: k, path: p})
				continue
			}
			out = findNulls(x, p, out)
		}
	case []any:
		for i, x := range v {
			out = findNulls(x, path+"["+strconv.Itoa(i)+"]", out)
		}
	}
	return out
}

// copyJSON deep-copies a JSON value as the API server would have decoded it
// (integers int64, other numbers float64), accepting the other Go numeric
// types a caller's object may hold.
func copyJSON(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool, int64, float64:
		return v, nil
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			cp, err := copyJSON(x)
			if err != nil {
				return nil, err
			}
			m[k] = cp
		}
		return m, nil
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			cp, err := copyJSON(x)
			if err != nil {
				return nil, err
			}
			s[i] = cp
		}
		return s, nil
	case int:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case float32:
		return float64(v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", v, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("value of type %T is not JSON", v)
}
