// Package lock applies an ApplicationDefinition's administrator values
// (spec.values) to a kind: it makes the API server refuse the locked paths in
// the generated CRD, merges the administrator's values over an object's spec,
// and removes locked paths from values copied back from a HelmRelease. It is
// pure: no API calls.
package lock

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/cel"
	"k8s.io/utils/ptr"

	"github.com/chartkind/chartkind/api/v1alpha1"
)

// Set returns the definition's spec.values.set; nil when there is none.
func Set(def *v1alpha1.ApplicationDefinition) (map[string]any, error) {
	if def == nil || def.Spec.Values == nil || def.Spec.Values.Set == nil || len(def.Spec.Values.Set.Raw) == 0 || string(def.Spec.Values.Set.Raw) == "null" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(def.Spec.Values.Set.Raw, &m); err != nil {
		return nil, fmt.Errorf("ApplicationDefinition %s: spec.values.set is not an object: %w", def.Name, err)
	}
	return m, nil
}

// Paths returns every locked path of def, sorted: spec.values.locked and the
// path of every leaf of spec.values.set (the administrator's value always
// wins, so a user setting it would be silently overridden). A path under
// another locked path is left out: the shorter one covers it.
func Paths(def *v1alpha1.ApplicationDefinition) ([]string, error) {
	set, err := Set(def)
	if err != nil {
		return nil, err
	}
	var all []string
	if def != nil && def.Spec.Values != nil {
		all = append(all, def.Spec.Values.Locked...)
	}
	all = append(all, leaves(set, "")...)
	sort.Strings(all)
	all = slices.Compact(all)
	var out []string
	for _, p := range all {
		if !coveredBy(p, out) {
			out = append(out, p)
		}
	}
	return out, nil
}

func coveredBy(p string, by []string) bool {
	for _, q := range by {
		if strings.HasPrefix(p, q+".") {
			return true
		}
	}
	return false
}

// leaves lists the dot-separated paths of the leaves of m: values that are
// not a non-empty map.
func leaves(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		p := prefix + k
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			out = append(out, leaves(sub, p+".")...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// LockedDescription is the description of a locked property in the CRD.
func LockedDescription(definition string) string {
	return "Locked by the administrator (ApplicationDefinition " + definition + "): setting it is refused."
}

// Message is the API server's message for a locked path set by a user.
func Message(path, definition string) string {
	return "spec." + path + " is locked: it is set by the administrator (ApplicationDefinition " + definition + ")"
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Schema makes spec, the structural schema of a kind's spec, refuse every
// path of paths. For a path a.b.c, the node of a.b gets the rule !has(self.c)
// (c a declared property, or one added under a node that keeps unknown
// fields) or !('c' in self) (a.b a map). A locked property stays declared,
// with a schema that keeps anything and says it is locked: removing it would
// make the API server silently prune what a user sets instead of refusing it.
// A path through a list, through an entry of a map, or to something the
// schema neither declares nor keeps, is an error naming the path.
//
// defaults are the chart's values.yaml: a locked property the schema declares
// without a type (or does not declare) takes the type of its default there
// (bitnami's extraDeploy: [] is a list), so that a user's value of that type
// reaches the lock's rule and is refused with the lock's message rather than
// a type error.
func Schema(spec *apiextensionsv1.JSONSchemaProps, definition string, paths []string, defaults map[string]any) error {
	for _, p := range paths {
		hint, _ := Get(defaults, p)
		if err := lockAt(spec, definition, p, strings.Split(p, "."), "spec", hint); err != nil {
			return fmt.Errorf("spec.values: cannot lock spec.%s: %w", p, err)
		}
	}
	return nil
}

func lockAt(node *apiextensionsv1.JSONSchemaProps, definition, path string, segs []string, at string, hint any) error {
	if node.Type == "array" || node.Items != nil {
		return fmt.Errorf("%s is a list: a path cannot go through a list (lock %s itself)", at, strings.TrimPrefix(at, "spec."))
	}
	name := segs[0]
	if len(segs) > 1 {
		child, ok := node.Properties[name]
		switch {
		case ok:
			if err := lockAt(&child, definition, path, segs[1:], at+"."+name, hint); err != nil {
				return err
			}
			// Not nullable: a null parent would skip the lock's rule and, in
			// Helm, delete the chart's defaults below it, the locked one
			// included. The API server drops it instead.
			child.Nullable = false
			node.Properties[name] = child
			return nil
		case node.AdditionalProperties != nil:
			return fmt.Errorf("%s is a map: only its entries themselves can be locked (%s.%s)", at, strings.TrimPrefix(at+".", "spec."), name)
		default:
			return fmt.Errorf("%s.%s is not declared in the schema: lock a declared parent instead", at, name)
		}
	}

	rule := apiextensionsv1.ValidationRule{
		Message:   Message(path, definition),
		Reason:    ptr.To(apiextensionsv1.FieldValueForbidden),
		FieldPath: fieldPath(name),
	}
	_, declared := node.Properties[name]
	switch {
	case declared || (node.Type == "object" && node.AdditionalProperties == nil && ptr.Deref(node.XPreserveUnknownFields, false)):
		esc, ok := cel.Escape(name)
		if !ok {
			return fmt.Errorf("%s is not a name a CEL rule can refer to", name)
		}
		rule.Rule = "!has(self." + esc + ")"
		if node.Properties == nil {
			node.Properties = map[string]apiextensionsv1.JSONSchemaProps{}
		}
		node.Properties[name] = lockedSchema(node.Properties[name], definition, hint)
		node.Required = slices.DeleteFunc(node.Required, func(r string) bool { return r == name })
	case node.AdditionalProperties != nil:
		rule.Rule = "!(" + quote(name) + " in self)"
	case node.Type != "object" && node.Type != "":
		return fmt.Errorf("%s is a %s, not an object", at, node.Type)
	default:
		return fmt.Errorf("%s.%s is not declared in the schema and %s keeps no unknown fields", at, name, at)
	}
	for _, r := range node.XValidations {
		if r.Rule == rule.Rule {
			return nil
		}
	}
	node.XValidations = append(node.XValidations, rule)
	return nil
}

// lockedSchema is the schema of a locked property: it says it is locked, and
// it has a type, so that the parent's CEL rule can see the property (the API
// server hides from CEL every value whose schema has no type). It keeps the
// original type, so a value of another type is refused with a type error
// (which stops the CEL rules: the user then sees the type error, not the
// lock); a property of no type takes the type of hint, its default in the
// chart's values.yaml, and without one becomes an object keeping unknown
// fields.
func lockedSchema(orig apiextensionsv1.JSONSchemaProps, definition string, hint any) apiextensionsv1.JSONSchemaProps {
	s := apiextensionsv1.JSONSchemaProps{Description: LockedDescription(definition)}
	typ := orig.Type
	if typ == "" && !orig.XIntOrString {
		typ = typeOf(hint)
	}
	switch {
	case orig.XIntOrString:
		s.XIntOrString = true
	case typ == "array":
		s.Type = "array"
		item := "object"
		if orig.Items != nil && orig.Items.Schema != nil && orig.Items.Schema.Type != "" && orig.Items.Schema.Type != "array" {
			item = orig.Items.Schema.Type
		} else if l, ok := hint.([]any); ok && len(l) > 0 {
			if t := typeOf(l[0]); t != "" && t != "array" {
				item = t
			}
		}
		s.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: item}}
		if item == "object" {
			s.Items.Schema.XPreserveUnknownFields = ptr.To(true)
		}
	case typ == "" || typ == "object":
		s.Type = "object"
		s.XPreserveUnknownFields = ptr.To(true)
	default:
		s.Type = typ
	}
	// Never nullable: the API server treats a null of a nullable field as
	// absent in CEL (so !has passes), and Helm would then drop the chart's
	// default. A null is dropped by the API server instead, and the chart's
	// default (or the administrator's value) stays.
	return s
}

// typeOf is the OpenAPI type of a value decoded from YAML or JSON, "" for
// null or nothing.
func typeOf(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int, int32, int64, float32, float64:
		return "number"
	}
	return ""
}

func fieldPath(name string) string {
	if identifier.MatchString(name) {
		return "." + name
	}
	return "[" + quote(name) + "]"
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`) + "'"
}

// Merge returns base with over merged over it: maps are merged key by key,
// any other value of over replaces base's. Neither argument is changed.
func Merge(base, over map[string]any) map[string]any {
	if len(over) == 0 {
		return base
	}
	out := runtime.DeepCopyJSON(orEmpty(base))
	mergeInto(out, runtime.DeepCopyJSON(over))
	return out
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Strip returns values without the given paths; values is not changed.
// Maps left empty by the removal are kept.
func Strip(values map[string]any, paths []string) map[string]any {
	if len(values) == 0 || len(paths) == 0 {
		return values
	}
	out := runtime.DeepCopyJSON(values)
	for _, p := range paths {
		segs := strings.Split(p, ".")
		m := out
		for _, s := range segs[:len(segs)-1] {
			next, ok := m[s].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = next
		}
		if m != nil {
			delete(m, segs[len(segs)-1])
		}
	}
	return out
}

// Get returns the value at path in values.
func Get(values map[string]any, path string) (any, bool) {
	var cur any = values
	for _, s := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[s]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Changed lists the paths whose value (or presence) differs between a and b.
func Changed(a, b map[string]any, paths []string) []string {
	var out []string
	for _, p := range paths {
		va, oka := Get(a, p)
		vb, okb := Get(b, p)
		if oka != okb || (oka && !jsonEqual(va, vb)) {
			out = append(out, p)
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var ga, gb any
	_ = json.Unmarshal(ja, &ga)
	_ = json.Unmarshal(jb, &gb)
	x, _ := json.Marshal(ga)
	y, _ := json.Marshal(gb)
	return string(x) == string(y)
}
