package schemachange

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// Checker says what the API server would do with existing objects under one
// version of a CRD. Building it converts the schema and compiles its CEL rules,
// as the API server does once per CRD; Check then costs about as much as the API
// server's own handling of the object. Build one per new CRD and reuse it for
// every object. A Checker is safe for concurrent use.
type Checker struct {
	apiVersion, kind string
	structural       *structuralschema.Structural
	validator        apiservervalidation.SchemaValidator
	cel              *cel.Validator // nil without x-kubernetes-validations

	// What the schema uses, so that Check skips the passes that cannot matter.
	preserveUnknownFields bool // spec.preserveUnknownFields: nothing is pruned
	hasDefaults           bool
	hasEmbedded           bool // x-kubernetes-embedded-resource somewhere
	hasListSetsOrMaps     bool // x-kubernetes-list-type set or map somewhere
}

// NewChecker prepares the checks for the named version of crd, which should be
// one that crd.Build produced or the API server accepted.
func NewChecker(crd *apiextensionsv1.CustomResourceDefinition, version string) (*Checker, error) {
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == version {
			v = &crd.Spec.Versions[i]
		}
	}
	if v == nil {
		return nil, fmt.Errorf("CRD %s has no version %s", crd.Name, version)
	}
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("CRD %s: version %s has no schema", crd.Name, version)
	}
	// The API server works on the internal version of the schema; so do we.
	var internal apiextensionsinternal.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema.DeepCopy(), &internal, nil); err != nil {
		return nil, fmt.Errorf("CRD %s version %s: converting the schema: %w", crd.Name, version, err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s version %s: schema is not structural: %w", crd.Name, version, err)
	}
	// Defaults are pruned against the schema before use, as the API server does
	// when it starts serving a CRD.
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("CRD %s version %s: pruning defaults: %w", crd.Name, version, err)
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("CRD %s version %s: building the schema validator: %w", crd.Name, version, err)
	}
	c := &Checker{
		apiVersion:            crd.Spec.Group + "/" + version,
		kind:                  crd.Spec.Names.Kind,
		structural:            s,
		validator:             validator,
		cel:                   cel.NewValidator(s, true, celconfig.PerCallLimit),
		preserveUnknownFields: crd.Spec.PreserveUnknownFields,
	}
	walkStructural(s, func(n *structuralschema.Structural) {
		c.hasDefaults = c.hasDefaults || n.Default.Object != nil
		c.hasEmbedded = c.hasEmbedded || n.XEmbeddedResource
		if n.XListType != nil && (*n.XListType == "set" || *n.XListType == "map") {
			c.hasListSetsOrMaps = true
		}
	})
	return c, nil
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

// ObjectProblem is what would happen to one existing object under the new
// schema. Only its spec is considered: status is chartkind's own, and metadata
// is not governed by the schema.
type ObjectProblem struct {
	Namespace, Name string
	// Pruned are the spec fields the API server would drop because the schema
	// no longer knows them (paths like spec.a.b[0].c, sorted). They disappear
	// from every read at once and from storage at the next write of the object.
	Pruned []string
	// NullsDropped are spec fields holding null that the API server would drop
	// because they are no longer nullable, or replace by the default of the
	// field. In Helm a null removes a chart default, so this changes the
	// release too.
	NullsDropped []string
	// Invalid are the validation errors the object would have, as the API
	// server reports them when the object is created: OpenAPI schema validation
	// (types, enums, patterns, bounds, required, nullable) and CEL rules.
	Invalid field.ErrorList
}

// Object names the object: namespace/name, or name for cluster-scoped kinds.
func (p ObjectProblem) Object() string {
	if p.Namespace == "" {
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

// issues lists the problems one by one, in order: pruned, dropped nulls, invalid.
func (p ObjectProblem) issues() []string {
	out := make([]string, 0, len(p.Pruned)+len(p.NullsDropped)+len(p.Invalid))
	for _, f := range p.Pruned {
		out = append(out, f+": would be pruned")
	}
	for _, f := range p.NullsDropped {
		out = append(out, f+": null would be dropped")
	}
	for _, e := range p.Invalid {
		if e.Field == "" || e.Field == "<nil>" {
			// A pathless error (kube-openapi's second error for a wrong number
			// type, the API server's "rules not checked"): its detail says it all.
			out = append(out, e.Detail)
			continue
		}
		out = append(out, e.Error())
	}
	return out
}

func (p ObjectProblem) String() string {
	return p.Object() + ": " + strings.Join(p.issues(), "; ")
}

// Check runs every object through a Checker for the named version of newCRD and
// returns the objects that would lose data or become invalid, sorted by
// namespace and name. An error means the CRD itself could not be prepared.
func Check(newCRD *apiextensionsv1.CustomResourceDefinition, version string, objects []*unstructured.Unstructured) ([]ObjectProblem, error) {
	c, err := NewChecker(newCRD, version)
	if err != nil {
		return nil, err
	}
	var out []ObjectProblem
	for _, obj := range objects {
		if p := c.Check(obj); p != nil {
			out = append(out, *p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Check returns what would happen to obj under the checker's schema, or nil
// when the object would keep all its spec and stay valid. obj is not modified.
//
// obj should be the object as the API server serves it under the current CRD
// (e.g. from a List): that is the object as stored, seen through the current
// schema, including fields the current schema preserves
// (x-kubernetes-preserve-unknown-fields) that the new one might prune.
//
// The steps are the API server's, in its order: pruning of unknown fields and
// of non-nullable nulls without a default, coercion of embedded ObjectMeta, and
// defaulting (what a read does), then validation as on create: the OpenAPI
// schema, embedded ObjectMeta, list sets and maps, and the CEL rules with the
// runtime cost budget (skipped, as the API server skips them, when the schema
// errors make them meaningless).
func (c *Checker) Check(obj *unstructured.Unstructured) *ObjectProblem {
	r := c.run(obj)
	if len(r.pruned) == 0 && len(r.nulls) == 0 && len(r.invalid) == 0 {
		return nil
	}
	return &ObjectProblem{Namespace: obj.GetNamespace(), Name: obj.GetName(), Pruned: r.pruned, NullsDropped: r.nulls, Invalid: r.invalid}
}

// result is everything run learns about one object; tests compare spec with
// what a real API server serves.
type result struct {
	spec    any // as the API server would serve it; absent when hasSpec is false
	hasSpec bool
	pruned  []string
	nulls   []string
	invalid field.ErrorList
}

// blockingCELMessage is the API server's error when schema errors stop it from
// running the CEL rules.
const blockingCELMessage = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"

func (c *Checker) run(obj *unstructured.Unstructured) result {
	var r result
	// A probe holds a copy of the spec and only what the schema's root needs,
	// so status and metadata neither cost time nor produce problems.
	probe := map[string]any{
		"apiVersion": c.apiVersion,
		"kind":       c.kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()},
	}
	if spec, ok := obj.Object["spec"]; ok {
		cp, err := copyJSON(spec)
		if err != nil {
			r.invalid = field.ErrorList{field.InternalError(field.NewPath("spec"), fmt.Errorf("object %s/%s: %w", obj.GetNamespace(), obj.GetName(), err))}
			return r
		}
		probe["spec"] = cp
	}

	// What a read does.
	var nulls []nullField
	if !c.preserveUnknownFields {
		r.pruned = pruning.PruneWithOptions(probe, c.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		nulls = findNulls(probe["spec"], "spec", nil)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(probe, c.structural)
	}
	if c.hasEmbedded {
		ferr, unknown := objectmeta.CoerceWithOptions(nil, probe, c.structural, false, objectmeta.CoerceOptions{DropInvalidFields: true, ReturnUnknownFieldPaths: true})
		if ferr != nil {
			r.invalid = append(r.invalid, ferr)
		}
		r.pruned = append(r.pruned, unknown...)
		sort.Strings(r.pruned)
	}
	if c.hasDefaults {
		structuraldefaulting.Default(probe, c.structural)
	}
	// A null is gone if it was dropped, or replaced by the default of a field
	// that is no longer nullable.
	for _, n := range nulls {
		if v, kept := n.parent[n.key]; !kept || v != nil {
			r.nulls = append(r.nulls, n.path)
		}
	}
	sort.Strings(r.nulls)
	r.spec, r.hasSpec = probe["spec"]

	// What a create would refuse.
	ctx := context.Background()
	errs := apiservervalidation.ValidateCustomResource(nil, probe, c.validator)
	if c.hasEmbedded {
		errs = append(errs, objectmeta.Validate(ctx, nil, probe, c.structural, false)...)
	}
	if c.hasListSetsOrMaps {
		errs = append(errs, listtype.ValidateListSetsAndMaps(nil, c.structural, probe)...)
	}
	if c.cel != nil {
		if blocksCEL(errs) {
			errs = append(errs, field.Invalid(nil, nil, blockingCELMessage))
		} else {
			celErrs, _ := c.cel.Validate(ctx, nil, c.structural, probe, nil, celconfig.RuntimeCELCostBudget)
			errs = append(errs, celErrs...)
		}
	}
	for _, e := range errs {
		if !outsideSpec(e.Field) {
			r.invalid = append(r.invalid, e)
		}
	}
	return r
}

// blocksCEL reports whether errs contain an error after which the API server
// does not evaluate CEL rules (the values they would see are not of the
// declared types or sizes).
func blocksCEL(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}

// outsideSpec reports whether an error path is about apiVersion, kind,
// metadata or status rather than spec.
func outsideSpec(path string) bool {
	first, _, _ := strings.Cut(path, ".")
	first, _, _ = strings.Cut(first, "[")
	switch first {
	case "apiVersion", "kind", "metadata", "status":
		return true
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
			if x == nil {
				out = append(out, nullField{parent: v, key: k, path: path + "." + k})
				continue
			}
			out = findNulls(x, path+"."+k, out)
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
// types a caller's unstructured object may hold.
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

// Summarize says in one message, under about 1 KB (a Kubernetes condition
// message, an event), which objects would lose data or become invalid: the
// first maxObjects objects with their first problems, then how many more.
//
//	3 objects would lose data or become invalid: ns/db1 (spec.foo: would be pruned), ns/db2 (spec.replicas: Invalid value: "3": …), and 1 more
func Summarize(problems []ObjectProblem, maxObjects int) string {
	if len(problems) == 0 {
		return ""
	}
	const (
		budget          = 1024
		issuesPerObject = 2
		issueLen        = 200
	)
	var lose, invalid bool
	for _, p := range problems {
		lose = lose || len(p.Pruned) > 0 || len(p.NullsDropped) > 0
		invalid = invalid || len(p.Invalid) > 0
	}
	what := "lose data or become invalid"
	switch {
	case !invalid:
		what = "lose data"
	case !lose:
		what = "become invalid"
	}
	noun := "objects"
	if len(problems) == 1 {
		noun = "object"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s would %s: ", len(problems), noun, what)

	shown := 0
	for _, p := range problems {
		if shown >= maxObjects {
			break
		}
		issues := p.issues()
		for i := range issues {
			issues[i] = truncate(issues[i], issueLen)
		}
		if len(issues) > issuesPerObject {
			issues = append(issues[:issuesPerObject], fmt.Sprintf("%d more", len(issues)-issuesPerObject))
		}
		part := p.Object() + " (" + strings.Join(issues, "; ") + ")"
		if shown > 0 {
			part = ", " + part
		}
		// Keep room for ", and N more".
		if b.Len()+len(part)+len(", and 100000 more") > budget {
			if shown > 0 {
				break
			}
			part = truncate(part, budget-b.Len()-len(", and 100000 more"))
		}
		b.WriteString(part)
		shown++
	}
	if rest := len(problems) - shown; rest > 0 {
		if shown > 0 {
			b.WriteString(", and ")
		}
		fmt.Fprintf(&b, "%d more", rest)
	}
	return b.String()
}

// truncate shortens s to at most n bytes, on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
