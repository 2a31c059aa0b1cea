// Package schemachange decides whether replacing a generated CRD's schema is
// safe for the objects that already exist.
//
// A narrowed schema is dangerous in two silent ways: the API server prunes every
// field a structural schema does not know (on every read, and for good on the
// next write), and an object that no longer validates can no longer have its
// invalid fields changed, while chartkind keeps pushing its spec into a
// HelmRelease. Classify lists what changed between two spec schemas, each change
// marked breaking or compatible; Check says, for each existing object, which
// fields would be dropped and which validation errors it would have, using the
// API server's own pruning, defaulting and validation code. The package does no
// API calls: the caller lists the objects and passes them in.
package schemachange

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Kind is what kind of schema change a Change is. Whether it can break existing
// objects depends only on the kind (see Breaking).
type Kind int

// Breaking kinds: an existing object may lose data or stop validating.
const (
	// PropertyRemoved: a property the new schema does not know; its values are pruned.
	PropertyRemoved Kind = iota + 1
	// TypeChanged: the new type does not accept every value the old one did
	// (string → integer, int-or-string → string, any → object).
	TypeChanged
	// EnumNarrowed: values were removed from an enum (including the CEL rule
	// `self in [...]` the converter emits for nullable enums), or an enum was added.
	EnumNarrowed
	// RequiredAdded: a property became required.
	RequiredAdded
	// ObjectClosed: an object that kept unknown fields (x-kubernetes-preserve-unknown-fields
	// or additionalProperties) now has fixed properties; other fields are pruned.
	ObjectClosed
	// PatternAdded: a string gained a pattern.
	PatternAdded
	// PatternChanged: a string's pattern changed (patterns cannot be compared, so
	// any change may reject existing values).
	PatternChanged
	// BoundsTightened: minimum, maximum, their exclusive flags, minLength,
	// maxLength, minItems, maxItems, minProperties, maxProperties or multipleOf
	// now reject values the old bound accepted.
	BoundsTightened
	// NullableRemoved: null is no longer allowed; stored nulls are dropped on read
	// (replaced by the default, if any). In Helm a null removes a chart default,
	// so dropping it changes the release.
	NullableRemoved
	// FormatChanged: a string gained a format the API server checks, or changed format.
	FormatChanged
	// CELRuleAdded: an x-kubernetes-validations rule was added.
	CELRuleAdded
	// CELRuleChanged: an x-kubernetes-validations rule's expression changed.
	CELRuleChanged
	// ListTypeChanged: x-kubernetes-list-type became set or map, or the map keys
	// changed; lists with duplicates are rejected.
	ListTypeChanged
	// CompositionChanged: allOf, anyOf, oneOf or not changed (value validations
	// whose effect cannot be compared).
	CompositionChanged
)

// Compatible kinds: every object valid before stays valid and keeps its data.
const (
	// PropertyAdded: a new optional property.
	PropertyAdded Kind = iota + 100
	// TypeWidened: the new type accepts every value the old one did (integer →
	// number, string → int-or-string, anything → any value kept unvalidated).
	TypeWidened
	// EnumWidened: values were added to an enum, or the enum was removed.
	EnumWidened
	// RequiredRemoved: a property is no longer required.
	RequiredRemoved
	// ObjectOpened: an object with fixed properties now keeps unknown fields.
	ObjectOpened
	// PatternRemoved: a pattern was removed.
	PatternRemoved
	// BoundsLoosened: a bound was removed or now accepts more values.
	BoundsLoosened
	// NullableAdded: null is now allowed.
	NullableAdded
	// FormatRelaxed: a format was removed, or changed to one the API server does
	// not check (e.g. int64 on an integer).
	FormatRelaxed
	// CELRuleRemoved: an x-kubernetes-validations rule was removed.
	CELRuleRemoved
	// ListTypeRelaxed: x-kubernetes-list-type became atomic.
	ListTypeRelaxed
	// CompositionRemoved: allOf, anyOf, oneOf and not were all removed.
	CompositionRemoved
	// DefaultChanged: a default was added, removed or changed. Defaults only
	// fill absent fields; they never reject or drop a value.
	DefaultChanged
	// DescriptionChanged: only what `kubectl explain` shows changed.
	DescriptionChanged
)

var kindNames = map[Kind]string{
	PropertyRemoved: "PropertyRemoved", TypeChanged: "TypeChanged", EnumNarrowed: "EnumNarrowed",
	RequiredAdded: "RequiredAdded", ObjectClosed: "ObjectClosed", PatternAdded: "PatternAdded",
	PatternChanged: "PatternChanged", BoundsTightened: "BoundsTightened", NullableRemoved: "NullableRemoved",
	FormatChanged: "FormatChanged", CELRuleAdded: "CELRuleAdded", CELRuleChanged: "CELRuleChanged",
	ListTypeChanged: "ListTypeChanged", CompositionChanged: "CompositionChanged",
	PropertyAdded: "PropertyAdded", TypeWidened: "TypeWidened", EnumWidened: "EnumWidened",
	RequiredRemoved: "RequiredRemoved", ObjectOpened: "ObjectOpened", PatternRemoved: "PatternRemoved",
	BoundsLoosened: "BoundsLoosened", NullableAdded: "NullableAdded", FormatRelaxed: "FormatRelaxed",
	CELRuleRemoved: "CELRuleRemoved", ListTypeRelaxed: "ListTypeRelaxed", CompositionRemoved: "CompositionRemoved",
	DefaultChanged: "DefaultChanged", DescriptionChanged: "DescriptionChanged",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Breaking reports whether a change of this kind may make an existing object
// lose data or fail validation. It is conservative: whether it actually does
// depends on the objects, which is what Check answers.
func (k Kind) Breaking() bool { return k >= PropertyRemoved && k <= CompositionChanged }

// Change is one difference between two spec schemas.
type Change struct {
	Kind Kind
	// Path is the JSON path of the changed node, rooted at spec: spec.a.b,
	// spec.items[*] for array items, spec.m[*] for the values of a map
	// (additionalProperties), the same notation as the API server's field paths.
	Path string
	// Detail says what changed, e.g. "type changed from string to integer".
	Detail string
}

// Breaking reports whether the change may break existing objects (see Kind.Breaking).
func (c Change) Breaking() bool { return c.Kind.Breaking() }

func (c Change) String() string { return c.Path + ": " + c.Detail }

// Breaking returns the breaking changes of cs, in order.
func Breaking(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if c.Breaking() {
			out = append(out, c)
		}
	}
	return out
}

// SpecSchema returns the schema of spec in the named version of crd: what
// Classify compares. It is nil when the version has a schema without a spec
// property (every spec field would be pruned).
func SpecSchema(crd *apiextensionsv1.CustomResourceDefinition, version string) (*apiextensionsv1.JSONSchemaProps, error) {
	for i := range crd.Spec.Versions {
		v := &crd.Spec.Versions[i]
		if v.Name != version {
			continue
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("CRD %s: version %s has no schema", crd.Name, version)
		}
		s, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
		if !ok {
			return nil, nil
		}
		return &s, nil
	}
	return nil, fmt.Errorf("CRD %s has no version %s", crd.Name, version)
}

// Classify lists every difference between the old and the new schema of spec
// (the spec property of the served version; see SpecSchema) that can matter to
// an object, parents before children and properties in name order, so the same
// schemas always give the same list. A nil schema is an empty one.
//
// Comparing the spec schema, not the whole openAPIV3Schema, keeps status (which
// chartkind writes itself) and metadata out of the answer.
func Classify(old, new *apiextensionsv1.JSONSchemaProps) []Change {
	c := &classifier{}
	c.node("spec", orEmpty(old), orEmpty(new))
	return c.changes
}

func orEmpty(s *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.JSONSchemaProps {
	if s == nil {
		return &apiextensionsv1.JSONSchemaProps{}
	}
	return s
}

type classifier struct{ changes []Change }

func (c *classifier) add(k Kind, path, format string, args ...any) {
	c.changes = append(c.changes, Change{Kind: k, Path: path, Detail: fmt.Sprintf(format, args...)})
}

// anyValue is what an open object holds under an unknown key, or a property no
// longer described: any value, kept as is.
var anyValue = &apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: ptrTrue()}

func ptrTrue() *bool { t := true; return &t }

// isAny reports whether s accepts and keeps every value unchanged: no type, no
// constraint, unknown fields preserved.
func isAny(s *apiextensionsv1.JSONSchemaProps) bool {
	return s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields &&
		s.Type == "" && !s.XIntOrString && !s.XEmbeddedResource &&
		len(s.Properties) == 0 && s.AdditionalProperties == nil && s.Items == nil &&
		len(s.Enum) == 0 && s.Pattern == "" && s.Format == "" &&
		s.Maximum == nil && s.Minimum == nil && s.MultipleOf == nil &&
		s.MaxLength == nil && s.MinLength == nil && s.MaxItems == nil && s.MinItems == nil &&
		s.MaxProperties == nil && s.MinProperties == nil && len(s.Required) == 0 &&
		len(s.XValidations) == 0 && len(s.AllOf) == 0 && len(s.AnyOf) == 0 && len(s.OneOf) == 0 && s.Not == nil &&
		(s.XListType == nil || *s.XListType == "atomic")
}

func (c *classifier) node(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	switch oAny, nAny := isAny(o), isAny(n); {
	case oAny && nAny:
		c.nullable(path, o, n)
		c.annotations(path, o, n)
		return
	case nAny:
		// Nothing below can reject or prune anything any more: one line says so.
		c.add(TypeWidened, path, "type widened from %s to any (values kept unvalidated)", typeName(o))
		c.nullable(path, o, n)
		c.annotations(path, o, n)
		return
	}

	ot, nt := typesOf(o), typesOf(n)
	switch {
	case ot&nt == 0:
		// Nothing of the old values survives; details below would be noise.
		c.add(TypeChanged, path, "type changed from %s to %s", typeName(o), typeName(n))
		return
	case ot&^nt != 0:
		c.add(TypeChanged, path, "type changed from %s to %s", typeName(o), typeName(n))
	case nt&^ot != 0:
		c.add(TypeWidened, path, "type widened from %s to %s", typeName(o), typeName(n))
	}

	c.nullable(path, o, n)
	oRules, nRules := c.enum(path, o, n)
	c.format(path, o, n)
	c.pattern(path, o, n)
	c.bounds(path, o, n)
	c.rules(path, oRules, nRules)
	c.listType(path, o, n)
	c.composition(path, o, n)
	c.annotations(path, o, n)

	if ot&tObject != 0 && nt&tObject != 0 {
		c.object(path, o, n)
	}
	if ot&tArray != 0 && nt&tArray != 0 && (o.Items != nil || n.Items != nil) {
		c.node(path+"[*]", itemsOf(o), itemsOf(n))
	}
}

func (c *classifier) nullable(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	switch {
	case o.Nullable && !n.Nullable && n.Default != nil:
		c.add(NullableRemoved, path, "no longer nullable: stored nulls would be replaced by the default %s", compact(n.Default.Raw))
	case o.Nullable && !n.Nullable:
		c.add(NullableRemoved, path, "no longer nullable: stored nulls would be dropped")
	case !o.Nullable && n.Nullable:
		c.add(NullableAdded, path, "now nullable")
	}
}

func (c *classifier) annotations(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	od, nd := rawOf(o.Default), rawOf(n.Default)
	switch {
	case od == "" && nd != "":
		c.add(DefaultChanged, path, "default added: %s", nd)
	case od != "" && nd == "":
		c.add(DefaultChanged, path, "default removed (was %s)", od)
	case od != nd:
		c.add(DefaultChanged, path, "default changed from %s to %s", od, nd)
	}
	if o.Description != n.Description {
		c.add(DescriptionChanged, path, "description changed")
	}
}

// Type sets. Integers are numbers; a node without a type accepts anything.
const (
	tObject = 1 << iota
	tArray
	tString
	tInteger
	tFraction // a number that is not an integer
	tBoolean
	tAny = tObject | tArray | tString | tInteger | tFraction | tBoolean
)

func typesOf(s *apiextensionsv1.JSONSchemaProps) int {
	switch s.Type {
	case "object":
		return tObject
	case "array":
		return tArray
	case "string":
		return tString
	case "integer":
		return tInteger
	case "number":
		return tInteger | tFraction
	case "boolean":
		return tBoolean
	case "":
		if s.XIntOrString {
			return tInteger | tString
		}
		return tAny
	}
	return 0 // unknown type: nothing in common with anything
}

func typeName(s *apiextensionsv1.JSONSchemaProps) string {
	switch {
	case s.Type != "":
		return s.Type
	case s.XIntOrString:
		return "int-or-string"
	}
	return "any"
}

// enum compares the effective enums (enum ∩ the converter's `self in [...]`
// rules) and returns the remaining CEL rules of each side for c.rules.
func (c *classifier) enum(path string, o, n *apiextensionsv1.JSONSchemaProps) (oRules, nRules []apiextensionsv1.ValidationRule) {
	oe, oRules := effectiveEnum(o)
	ne, nRules := effectiveEnum(n)
	switch {
	case oe == nil && ne == nil:
	case oe == nil:
		c.add(EnumNarrowed, path, "enum added: only %s allowed", list(ne))
	case ne == nil:
		c.add(EnumWidened, path, "enum removed (was %s)", list(oe))
	default:
		removed, added := minus(oe, ne), minus(ne, oe)
		switch {
		case len(removed) > 0 && len(added) > 0:
			c.add(EnumNarrowed, path, "enum narrowed: %s no longer allowed (%s added)", list(removed), list(added))
		case len(removed) > 0:
			c.add(EnumNarrowed, path, "enum narrowed: %s no longer allowed", list(removed))
		case len(added) > 0:
			c.add(EnumWidened, path, "enum widened: %s now allowed", list(added))
		}
	}
	return oRules, nRules
}

// effectiveEnum returns the allowed values (canonical JSON, in schema order) or
// nil when any value of the type is allowed, and the rules that are not enum rules.
func effectiveEnum(s *apiextensionsv1.JSONSchemaProps) (vals []string, rest []apiextensionsv1.ValidationRule) {
	restricted := false
	if len(s.Enum) > 0 {
		restricted = true
		for _, e := range s.Enum {
			vals = appendUnique(vals, compact(e.Raw))
		}
	}
	for _, r := range s.XValidations {
		ev, ok := parseEnumRule(r)
		if !ok {
			rest = append(rest, r)
			continue
		}
		if !restricted {
			restricted, vals = true, ev
			continue
		}
		vals = slices.DeleteFunc(vals, func(v string) bool { return !slices.Contains(ev, v) })
	}
	if restricted && vals == nil {
		vals = []string{} // restricted to nothing: still not "unrestricted"
	}
	return vals, rest
}

// parseEnumRule recognises the rule schemaconv emits for enums of nullable
// scalars, `self in ["a", "b"]`, with string, number and boolean literals.
func parseEnumRule(r apiextensionsv1.ValidationRule) ([]string, bool) {
	if r.FieldPath != "" || r.MessageExpression != "" || (r.OptionalOldSelf != nil && *r.OptionalOldSelf) {
		return nil, false
	}
	s, ok := strings.CutPrefix(strings.TrimSpace(r.Rule), "self in [")
	if !ok {
		return nil, false
	}
	vals := []string{}
	for {
		s = strings.TrimLeft(s, " ")
		if rest, ok := strings.CutPrefix(s, "]"); ok {
			return vals, strings.TrimSpace(rest) == ""
		}
		if len(vals) > 0 {
			rest, ok := strings.CutPrefix(s, ",")
			if !ok {
				return nil, false
			}
			s = strings.TrimLeft(rest, " ")
		}
		var v any
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, false
			}
			str, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, false
			}
			v, s = str, s[end+1:]
		} else {
			end := strings.IndexAny(s, ",]")
			if end < 0 {
				return nil, false
			}
			tok := strings.TrimSpace(s[:end])
			switch {
			case tok == "true" || tok == "false":
				v = tok == "true"
			default:
				f, err := strconv.ParseFloat(tok, 64)
				if err != nil {
					return nil, false
				}
				v = f
			}
			s = s[end:]
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		vals = appendUnique(vals, string(b))
	}
}

func (c *classifier) format(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	if o.Format == n.Format {
		return
	}
	checked := n.Format != "" && formatChecked(n.Format, n.Type)
	switch {
	case checked && o.Format == "":
		c.add(FormatChanged, path, "format added: %s", n.Format)
	case checked:
		c.add(FormatChanged, path, "format changed from %s to %s", o.Format, n.Format)
	case n.Format == "":
		c.add(FormatRelaxed, path, "format removed (was %s)", o.Format)
	default:
		c.add(FormatRelaxed, path, "format changed from %s to %s, which the API server does not check", orNone(o.Format), n.Format)
	}
}

// formatChecked reports whether the API server validates values against format
// (only string formats it recognises are checked; int32, double, … are not).
func formatChecked(format, typ string) bool {
	if typ != "" && typ != "string" {
		return false
	}
	unrecognized := apiservervalidation.GetUnrecognizedFormats(&spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}, Format: format}}, environment.DefaultCompatibilityVersion())
	return len(unrecognized) == 0
}

func (c *classifier) pattern(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	switch {
	case o.Pattern == n.Pattern:
	case o.Pattern == "":
		c.add(PatternAdded, path, "pattern added: %s", n.Pattern)
	case n.Pattern == "":
		c.add(PatternRemoved, path, "pattern removed (was %s)", o.Pattern)
	default:
		c.add(PatternChanged, path, "pattern changed from %s to %s", o.Pattern, n.Pattern)
	}
}

func (c *classifier) bounds(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	c.numBound(path, "maximum", o.Maximum, o.ExclusiveMaximum, n.Maximum, n.ExclusiveMaximum, true)
	c.numBound(path, "minimum", o.Minimum, o.ExclusiveMinimum, n.Minimum, n.ExclusiveMinimum, false)
	c.intBound(path, "maxLength", o.MaxLength, n.MaxLength, true)
	c.intBound(path, "minLength", o.MinLength, n.MinLength, false)
	c.intBound(path, "maxItems", o.MaxItems, n.MaxItems, true)
	c.intBound(path, "minItems", o.MinItems, n.MinItems, false)
	c.intBound(path, "maxProperties", o.MaxProperties, n.MaxProperties, true)
	c.intBound(path, "minProperties", o.MinProperties, n.MinProperties, false)
	c.multipleOf(path, o.MultipleOf, n.MultipleOf)
}

// numBound compares an upper (maximum) or lower (minimum) bound with its
// exclusive flag: at the same value, exclusive is the tighter bound.
func (c *classifier) numBound(path, name string, ov *float64, oex bool, nv *float64, nex bool, upper bool) {
	show := func(v float64, ex bool) string {
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if ex {
			s += " (exclusive)"
		}
		return s
	}
	switch {
	case ov == nil && nv == nil:
		return
	case ov == nil:
		c.add(BoundsTightened, path, "%s added: %s", name, show(*nv, nex))
		return
	case nv == nil:
		c.add(BoundsLoosened, path, "%s removed (was %s)", name, show(*ov, oex))
		return
	}
	// tighter: the new bound rejects values the old one accepted.
	var tighter, looser bool
	switch {
	case *nv == *ov:
		tighter, looser = nex && !oex, oex && !nex
	case upper:
		tighter, looser = *nv < *ov, *nv > *ov
	default:
		tighter, looser = *nv > *ov, *nv < *ov
	}
	switch {
	case tighter:
		c.add(BoundsTightened, path, "%s tightened from %s to %s", name, show(*ov, oex), show(*nv, nex))
	case looser:
		c.add(BoundsLoosened, path, "%s loosened from %s to %s", name, show(*ov, oex), show(*nv, nex))
	}
}

func (c *classifier) intBound(path, name string, ov, nv *int64, upper bool) {
	switch {
	case ov == nil && nv == nil:
	case ov == nil:
		c.add(BoundsTightened, path, "%s added: %d", name, *nv)
	case nv == nil:
		c.add(BoundsLoosened, path, "%s removed (was %d)", name, *ov)
	case *ov == *nv:
	case (*nv < *ov) == upper:
		c.add(BoundsTightened, path, "%s tightened from %d to %d", name, *ov, *nv)
	default:
		c.add(BoundsLoosened, path, "%s loosened from %d to %d", name, *ov, *nv)
	}
}

// multipleOf: the new one accepts every old value only if the old step is a
// multiple of the new one.
func (c *classifier) multipleOf(path string, ov, nv *float64) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch {
	case ov == nil && nv == nil:
	case ov == nil:
		c.add(BoundsTightened, path, "multipleOf added: %s", f(*nv))
	case nv == nil:
		c.add(BoundsLoosened, path, "multipleOf removed (was %s)", f(*ov))
	case *ov == *nv:
	case isWholeMultiple(*ov, *nv):
		c.add(BoundsLoosened, path, "multipleOf loosened from %s to %s", f(*ov), f(*nv))
	default:
		c.add(BoundsTightened, path, "multipleOf changed from %s to %s", f(*ov), f(*nv))
	}
}

func isWholeMultiple(a, b float64) bool {
	if b == 0 {
		return false
	}
	q := a / b
	return math.Abs(q-math.Round(q)) < 1e-9
}

// rules compares the x-kubernetes-validations that are not enum rules, by
// expression: unmatched old and new rules are paired in order as changed rules.
func (c *classifier) rules(path string, o, n []apiextensionsv1.ValidationRule) {
	key := func(r apiextensionsv1.ValidationRule) string {
		k := r.Rule + "\x00" + r.FieldPath
		if r.OptionalOldSelf != nil && *r.OptionalOldSelf {
			k += "\x00optionalOldSelf"
		}
		return k
	}
	has := func(rs []apiextensionsv1.ValidationRule, r apiextensionsv1.ValidationRule) bool {
		return slices.ContainsFunc(rs, func(x apiextensionsv1.ValidationRule) bool { return key(x) == key(r) })
	}
	var removed, added []apiextensionsv1.ValidationRule
	for _, r := range o {
		if !has(n, r) {
			removed = append(removed, r)
		}
	}
	for _, r := range n {
		if !has(o, r) {
			added = append(added, r)
		}
	}
	for i := 0; i < len(removed) || i < len(added); i++ {
		switch {
		case i < len(removed) && i < len(added):
			c.add(CELRuleChanged, path, "validation rule changed from %s to %s", quoteRule(removed[i]), quoteRule(added[i]))
		case i < len(added):
			c.add(CELRuleAdded, path, "validation rule added: %s", quoteRule(added[i]))
		default:
			c.add(CELRuleRemoved, path, "validation rule removed: %s", quoteRule(removed[i]))
		}
	}
}

func quoteRule(r apiextensionsv1.ValidationRule) string {
	s := "`" + r.Rule + "`"
	if r.FieldPath != "" {
		s += " on " + r.FieldPath
	}
	return s
}

func (c *classifier) listType(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	lt := func(s *apiextensionsv1.JSONSchemaProps) string {
		if s.XListType == nil || *s.XListType == "" {
			return "atomic"
		}
		return *s.XListType
	}
	ol, nl := lt(o), lt(n)
	switch {
	case ol == nl && (nl != "map" || slices.Equal(o.XListMapKeys, n.XListMapKeys)):
	case nl == "atomic":
		c.add(ListTypeRelaxed, path, "list type changed from %s to atomic", ol)
	case ol == nl:
		c.add(ListTypeChanged, path, "list map keys changed from [%s] to [%s]", strings.Join(o.XListMapKeys, ", "), strings.Join(n.XListMapKeys, ", "))
	default:
		c.add(ListTypeChanged, path, "list type changed from %s to %s: lists with duplicates would be rejected", ol, nl)
	}
}

func (c *classifier) composition(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	comp := func(s *apiextensionsv1.JSONSchemaProps) string {
		if len(s.AllOf) == 0 && len(s.AnyOf) == 0 && len(s.OneOf) == 0 && s.Not == nil {
			return ""
		}
		b, _ := json.Marshal([]any{s.AllOf, s.AnyOf, s.OneOf, s.Not})
		return string(b)
	}
	oc, nc := comp(o), comp(n)
	switch {
	case oc == nc:
	case nc == "":
		c.add(CompositionRemoved, path, "allOf/anyOf/oneOf/not removed")
	default:
		c.add(CompositionChanged, path, "allOf/anyOf/oneOf/not changed")
	}
}

// object compares properties, required and what happens to unknown keys.
func (c *classifier) object(path string, o, n *apiextensionsv1.JSONSchemaProps) {
	for _, name := range n.Required {
		if !slices.Contains(o.Required, name) {
			c.add(RequiredAdded, path+"."+name, "now required")
		}
	}
	for _, name := range o.Required {
		if !slices.Contains(n.Required, name) {
			c.add(RequiredRemoved, path+"."+name, "no longer required")
		}
	}

	ou, nu := unknownSchema(o), unknownSchema(n)
	switch {
	case ou != nil && nu == nil && len(n.Properties) == 0:
		c.add(ObjectClosed, path, "object closed: all its fields would be pruned")
	case ou != nil && nu == nil:
		c.add(ObjectClosed, path, "object closed: fields other than %s would be pruned", propertyList(n))
	case ou == nil && nu != nil:
		c.add(ObjectOpened, path, "object opened: unknown fields are kept")
	}

	names := make([]string, 0, len(o.Properties)+len(n.Properties))
	for k := range o.Properties {
		names = append(names, k)
	}
	for k := range n.Properties {
		if _, ok := o.Properties[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		op, inOld := o.Properties[k]
		np, inNew := n.Properties[k]
		switch {
		case inOld && inNew:
			c.node(path+"."+k, &op, &np)
		case inOld && nu == nil:
			c.add(PropertyRemoved, path+"."+k, "property removed: its values would be pruned")
		case inOld:
			// Still accepted as an unknown key: compare with what unknown keys may hold.
			c.node(path+"."+k, &op, nu)
		case ou == nil:
			c.add(PropertyAdded, path+"."+k, "property added (%s)", typeName(&np))
		default:
			// The key could already hold a value, kept as an unknown field or map
			// entry: compare what was accepted with what is now.
			c.node(path+"."+k, ou, &np)
		}
	}
	if ou != nil && nu != nil && !(isAny(ou) && isAny(nu)) {
		c.node(path+"[*]", ou, nu)
	}
}

// unknownSchema is the schema of values under keys that are not properties: the
// additionalProperties schema, any value if unknown fields are preserved, or nil
// when they are pruned.
func unknownSchema(s *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.JSONSchemaProps {
	if ap := s.AdditionalProperties; ap != nil {
		switch {
		case ap.Schema != nil:
			return ap.Schema
		case ap.Allows:
			return anyValue
		}
		return nil
	}
	if s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields {
		return anyValue
	}
	return nil
}

func itemsOf(s *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.JSONSchemaProps {
	switch {
	case s.Items != nil && s.Items.Schema != nil:
		return s.Items.Schema
	case s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields:
		return anyValue
	}
	return &apiextensionsv1.JSONSchemaProps{}
}

func propertyList(s *apiextensionsv1.JSONSchemaProps) string {
	names := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	const maxShown = 8
	if len(names) > maxShown {
		return strings.Join(names[:maxShown], ", ") + fmt.Sprintf(" and %d more", len(names)-maxShown)
	}
	return strings.Join(names, ", ")
}

// compact returns raw JSON in canonical form (object keys sorted, no spaces),
// so equal values compare equal.
func compact(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

func rawOf(j *apiextensionsv1.JSON) string {
	if j == nil || len(j.Raw) == 0 {
		return ""
	}
	return compact(j.Raw)
}

func appendUnique(vals []string, v string) []string {
	if slices.Contains(vals, v) {
		return vals
	}
	return append(vals, v)
}

func minus(a, b []string) []string {
	var out []string
	for _, v := range a {
		if !slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

func list(vals []string) string {
	if len(vals) == 0 {
		return "no value"
	}
	const maxShown = 10
	if len(vals) > maxShown {
		return strings.Join(vals[:maxShown], ", ") + fmt.Sprintf(" and %d more", len(vals)-maxShown)
	}
	return strings.Join(vals, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// ClassifyRoot lists the changes of the x-kubernetes-validations at the root
// of the named versions' schemas (path "(object)"): the rules chartkind puts
// there read metadata.name (crd.NameRules), so Classify, which compares spec,
// does not see them. Check evaluates them, as on create, on each object's
// name: an added name rule that an existing object violates names that object.
func ClassifyRoot(old, new *apiextensionsv1.CustomResourceDefinition, oldVersion, newVersion string) []Change {
	root := func(c *apiextensionsv1.CustomResourceDefinition, version string) []apiextensionsv1.ValidationRule {
		for i := range c.Spec.Versions {
			v := &c.Spec.Versions[i]
			if v.Name == version && v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
				return v.Schema.OpenAPIV3Schema.XValidations
			}
		}
		return nil
	}
	c := &classifier{}
	c.rules("(object)", root(old, oldVersion), root(new, newVersion))
	return c.changes
}
