package schemaconv

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

type converter struct {
	doc       any
	remote    map[string]bool
	opts      Options
	maxDepth  int
	warns     map[string]bool
	stack     map[*jsonschema.Schema]int
	warned    map[*jsonschema.Schema]bool
	descMax   int // if > 0, descriptions are cut to their first sentence, at most this many runes
	descDepth int // if >= 0, descriptions are dropped below this depth
	// celEnums remembers the allowed values behind the enum CEL rules the
	// converter generated, so defaults can be checked against them.
	celEnums map[string][]any
	// nodes counts converted nodes; past maxNodes everything is open. This
	// bounds the work on schemas whose inlined form explodes (several
	// mutually recursive $refs), the size budget then picks a smaller depth.
	nodes, maxNodes int
}

func newConverter(doc any, remote map[string]bool, opts Options, maxDepth int) *converter {
	return &converter{
		doc: doc, remote: remote, opts: opts, maxDepth: maxDepth,
		warns:    map[string]bool{},
		stack:    map[*jsonschema.Schema]int{},
		warned:   map[*jsonschema.Schema]bool{},
		celEnums: map[string][]any{},
	}
}

func (c *converter) warn(loc, format string, args ...any) {
	if loc == "" {
		loc = "#"
	}
	c.warns[loc+": "+fmt.Sprintf(format, args...)] = true
}

func (c *converter) warnings() []string {
	out := make([]string, 0, len(c.warns))
	for w := range c.warns {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// pos describes where in the values a node applies.
type pos struct {
	// vals are the values.yaml values at this position (several inside
	// arrays and maps).
	vals []any
	// merged is true when the position is reached without crossing an
	// array: Helm deep-merges the user's values with values.yaml here, and a
	// user sets a key to null to delete a chart default.
	merged bool
	// repeated is true inside array items or map values, where a CEL rule's
	// cost is multiplied by the (unbounded) number of elements.
	repeated bool
	depth    int
	// path is the values path, for warnings about values.yaml.
	path string
	root bool
	// loc is the pointer used for warnings when the node has no schema of
	// its own (e.g. a property only another allOf branch names).
	loc string
	// optional is true for a property the schema does not require and for
	// the values of a map: a user may write null there. The API server drops
	// a null of a field that is not nullable before anything else sees it,
	// so the object would hold something other than what the user wrote and
	// Helm's verdict on the null (refusal, for most types) would never be
	// given. Such nodes are nullable: the null is stored, reaches the
	// webhook, and gets Helm's verdict there.
	optional bool
	// noCEL is true below a node without a type (one that also accepts
	// non-objects): the API server builds no CEL type information past such
	// a node, and a CRD with a CEL rule there is invalid once it has a rule at
	// its root (every generated CRD has its name rules there).
	noCEL bool
}

func (c *converter) convertRoot(root *jsonschema.Schema, values map[string]any) *apiextensionsv1.JSONSchemaProps {
	n := nodeOf(root)
	p := c.convert(n, pos{vals: []any{values}, merged: true, path: ".", root: true})
	if p.Type != "object" {
		if p.Type != "" {
			c.warn(n.loc(), "the root schema does not accept objects (type %s); accepting any object", p.Type)
		}
		p = &apiextensionsv1.JSONSchemaProps{Type: "object", Description: p.Description, XPreserveUnknownFields: ptrTrue()}
	}
	p.Nullable = false
	p.Default = nil
	return p
}

func ptrTrue() *bool { b := true; return &b }

// openNode accepts any value.
func openNode(desc string, nullable bool) *apiextensionsv1.JSONSchemaProps {
	return &apiextensionsv1.JSONSchemaProps{Description: desc, Nullable: nullable, XPreserveUnknownFields: ptrTrue()}
}

func typeNames(m int) string {
	var out []string
	for _, t := range []struct {
		bit  int
		name string
	}{{tNull, "null"}, {tBool, "boolean"}, {tInt, "integer"}, {tNum, "number"}, {tStr, "string"}, {tArr, "array"}, {tObj, "object"}} {
		if m&t.bit != 0 {
			if t.bit == tNum && m&tInt != 0 {
				out[len(out)-1] = "number"
				continue
			}
			out = append(out, t.name)
		}
	}
	return "[" + strings.Join(out, ",") + "]"
}

func (c *converter) convert(n *node, p pos) *apiextensionsv1.JSONSchemaProps {
	loc := n.loc()
	if loc == "" {
		loc = p.loc
	}
	for _, nt := range n.notes {
		c.warn(nt.loc, "%s", nt.msg)
	}
	c.warnUnsupported(n)
	desc := c.description(n, p)

	// Depth, recursion and work limits.
	c.nodes++
	if c.nodes > c.maxNodes {
		return openNode(desc, true)
	}
	if p.depth > c.maxDepth {
		c.warn(loc, "nested deeper than %d levels; accepting any value", c.maxDepth)
		return openNode(desc, true)
	}
	for _, s := range n.schemas {
		if c.stack[s] >= maxRepeat {
			c.warn(loc, "recursive $ref cut after %d levels; accepting any value", maxRepeat)
			return openNode(desc, true)
		}
	}
	for _, s := range n.schemas {
		c.stack[s]++
	}
	defer func() {
		for _, s := range n.schemas {
			c.stack[s]--
		}
	}()

	t := n.types()
	if p.root && t&tObj != 0 {
		t = tObj // Helm's values are always a map
	}
	schemaNull := t&tNull != 0
	nullable := schemaNull || (p.merged && len(p.vals) > 0) || p.optional
	t &^= tNull
	for _, v := range p.vals {
		k := kindOf(v)
		switch {
		case k == tNull:
			if !nullable {
				c.warn(loc, "values.yaml has null at %s; allowing null", p.path)
				nullable = true
			}
		case t&k == 0:
			c.warn(loc, "values.yaml has a %s at %s where the schema expects %s; accepting any value", typeNames(k), p.path, typeNames(t))
			t = tAll &^ tNull
		}
	}

	var out *apiextensionsv1.JSONSchemaProps
	switch t {
	case tObj:
		out = c.object(n, p, loc, false)
	case tArr:
		out = c.array(n, p, loc)
	case tStr:
		out = &apiextensionsv1.JSONSchemaProps{Type: "string"}
	case tBool:
		out = &apiextensionsv1.JSONSchemaProps{Type: "boolean"}
	case tInt:
		out = &apiextensionsv1.JSONSchemaProps{Type: "integer"}
	case tNum, tNumber:
		out = &apiextensionsv1.JSONSchemaProps{Type: "number"}
	case tInt | tStr:
		out = &apiextensionsv1.JSONSchemaProps{XIntOrString: true}
	case 0:
		if schemaNull {
			c.warn(loc, "a CRD cannot express null-only values; accepting any value")
		} else {
			c.warn(loc, "schema accepts no value (false, contradicting types or enum); accepting any value")
		}
		return openNode(desc, true)
	default:
		if t != tAll&^tNull {
			c.warn(loc, "type union %s cannot be expressed in a CRD; accepting any value", typeNames(t))
		}
		if t&tObj != 0 && len(n.propertyNames()) > 0 {
			// Untyped but with properties: the API server applies
			// properties, required etc. only to object values, exactly like
			// JSON Schema, so they can stay for validation and documentation.
			out = c.object(n, p, loc, true)
			out.Type = ""
		} else {
			out = openNode("", false)
		}
	}
	out.Description = desc
	out.Nullable = nullable
	c.scalarConstraints(n, p, loc, out, t)
	c.enum(n, p, loc, out, t)
	c.extensions(n, p, loc, out)
	c.setDefault(n, loc, out)
	return out
}

// warnUnsupported reports keywords that a CRD cannot express and that are
// therefore dropped, once per schema location.
func (c *converter) warnUnsupported(n *node) {
	for _, s := range n.schemas {
		if c.warned[s] {
			continue
		}
		c.warned[s] = true
		loc := pointerOf(s.Location)
		var kw []string
		if s.Not != nil {
			kw = append(kw, "not")
		}
		if s.If != nil || s.Then != nil || s.Else != nil {
			kw = append(kw, "if/then/else")
		}
		if len(s.Dependencies) > 0 {
			kw = append(kw, "dependencies")
		}
		if len(s.DependentRequired) > 0 {
			kw = append(kw, "dependentRequired")
		}
		if len(s.DependentSchemas) > 0 {
			kw = append(kw, "dependentSchemas")
		}
		if s.PropertyNames != nil {
			kw = append(kw, "propertyNames")
		}
		if s.Contains != nil {
			kw = append(kw, "contains")
		}
		if s.UnevaluatedProperties != nil {
			kw = append(kw, "unevaluatedProperties")
		}
		if s.UnevaluatedItems != nil {
			kw = append(kw, "unevaluatedItems")
		}
		if len(s.OneOf) > 0 {
			kw = append(kw, "oneOf exclusivity (checked as anyOf)")
		}
		if len(kw) > 0 {
			c.warn(loc, "dropped %s", strings.Join(kw, ", "))
		}
	}
}

// description is the first description (or title) along the node, plus the
// chart default: the schema's default, else the values.yaml value.
func (c *converter) description(n *node, p pos) string {
	desc, deprecated := "", false
	for _, s := range n.schemas {
		if s.Deprecated {
			deprecated = true
		}
		if desc == "" && strings.TrimSpace(s.Description) != "" {
			desc = strings.TrimSpace(s.Description)
		}
	}
	if desc == "" {
		for _, s := range n.schemas {
			if strings.TrimSpace(s.Title) != "" {
				desc = strings.TrimSpace(s.Title)
				break
			}
		}
	}
	if c.descMax > 0 {
		desc = shorten(desc, c.descMax)
	}
	if c.descDepth >= 0 && p.depth > c.descDepth {
		desc = ""
	}
	if deprecated && !strings.HasPrefix(strings.ToLower(desc), "deprecated") {
		desc = strings.TrimSpace("Deprecated. " + desc)
	}
	var def any
	hasDef := false
	for _, s := range n.schemas {
		if s.Default != nil {
			def, hasDef = *s.Default, true
			break
		}
	}
	// A values.yaml value documents the default only at a fixed path: under a map
	// or list it is one example entry's value, not a default for every entry.
	if !hasDef && p.merged && !p.repeated && len(p.vals) == 1 {
		if k := kindOf(p.vals[0]); k != tObj && k != tArr {
			def, hasDef = p.vals[0], true
		}
	}
	if hasDef {
		if s := compactJSON(def, 80); s != "" {
			if desc != "" && !strings.HasSuffix(desc, ".") {
				desc += "."
			}
			desc = strings.TrimSpace(desc + " Default: " + s + ".")
		}
	}
	return desc
}

// shorten cuts a description to its first sentence and at most max runes.
func shorten(desc string, max int) string {
	if i := strings.Index(desc, ". "); i >= 0 {
		desc = desc[:i+1]
	}
	if i := strings.IndexByte(desc, '\n'); i >= 0 {
		desc = strings.TrimSpace(desc[:i])
	}
	if utf8.RuneCountInString(desc) > max {
		r := []rune(desc)
		desc = string(r[:max]) + "…"
	}
	return desc
}

// compactJSON renders v, truncated to max bytes (on a rune boundary); empty
// objects and arrays over the limit are left out entirely.
func compactJSON(v any, max int) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	if len(b) <= max {
		return string(b)
	}
	if k := kindOf(v); k == tObj || k == tArr {
		return ""
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]) + "…"
}

// object converts an object node. untyped is set for nodes that also accept
// non-objects: they keep unknown keys.
func (c *converter) object(n *node, p pos, loc string, untyped bool) *apiextensionsv1.JSONSchemaProps {
	out := &apiextensionsv1.JSONSchemaProps{Type: "object"}
	names := n.propertyNames()
	known := map[string]bool{}
	var instances []map[string]any
	for _, v := range p.vals {
		if m, ok := v.(map[string]any); ok {
			instances = append(instances, m)
		}
	}
	if len(names) > 0 {
		out.Properties = make(map[string]apiextensionsv1.JSONSchemaProps, len(names))
	}
	// A property stays non-nullable only where the CRD requires it (see the
	// required loop below): its null is dropped and the object refused for
	// the missing key, as Helm refuses it. Every other property is optional.
	required := map[string]bool{}
	for _, r := range n.required() {
		required[r] = !(p.merged && len(instances) > 0)
		for _, m := range instances {
			if _, ok := m[r]; !ok {
				required[r] = false
			}
		}
	}
	for _, name := range names {
		known[name] = true
		var vals []any
		for _, m := range instances {
			if v, ok := m[name]; ok {
				vals = append(vals, v)
			}
		}
		child := c.convert(n.prop(name), pos{
			vals: vals, merged: p.merged, repeated: p.repeated, depth: p.depth + 1,
			path: joinPath(p.path, name), loc: loc + "/properties/" + escapeToken(name),
			optional: !required[name], noCEL: p.noCEL || untyped,
		})
		out.Properties[name] = *child
	}

	mv := n.mapValue()
	switch {
	case untyped:
		out.XPreserveUnknownFields = ptrTrue()
	case mv.never || mv.types() == 0:
		// Closed object: unknown keys would make Helm fail; the API server
		// prunes them instead, which never rejects more than Helm.
	case mv.isAny():
		out.XPreserveUnknownFields = ptrTrue()
	case len(names) > 0:
		c.warn(loc, "additionalProperties/patternProperties schema not enforced next to named properties (a CRD allows only one of them); unknown keys accept any value")
		out.XPreserveUnknownFields = ptrTrue()
	default:
		var vals []any
		for _, m := range instances {
			for _, k := range sortedKeys(m) {
				vals = append(vals, m[k])
			}
		}
		child := c.convert(mv, pos{vals: vals, merged: p.merged, repeated: true, depth: p.depth + 1, path: joinPath(p.path, "*"), loc: loc + "/additionalProperties", optional: true, noCEL: p.noCEL})
		out.AdditionalProperties = &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: child}
	}
	// An object with only named properties prunes everything else; values.yaml
	// keys the schema does not know must survive.
	if out.XPreserveUnknownFields == nil && out.AdditionalProperties == nil {
		for _, m := range instances {
			for k := range m {
				if !known[k] {
					c.warn(loc, "values.yaml has key %q at %s which the schema does not allow; keeping unknown keys", k, p.path)
					out.XPreserveUnknownFields = ptrTrue()
				}
			}
		}
	}

	// required: Helm checks it against chart defaults merged with the user's
	// values, the CR only holds the user's values. Where values.yaml has the
	// object, the key is either provided by it (so not needed from the user)
	// or missing (then values.yaml itself is invalid): drop it either way.
	// Inside arrays nothing is merged, so required stays exact, unless the
	// chart's own values lack the key.
	for _, r := range n.required() {
		if !known[r] && out.XPreserveUnknownFields == nil && out.AdditionalProperties == nil {
			continue // could never be satisfied after pruning; Helm rejects those anyway
		}
		drop := false
		if p.merged && len(instances) > 0 {
			drop = true
		} else {
			for _, m := range instances {
				if _, ok := m[r]; !ok {
					c.warn(loc, "values.yaml lacks required key %q at %s; not requiring it", r, p.path)
					drop = true
				}
			}
		}
		if !drop {
			out.Required = append(out.Required, r)
		}
	}

	// min/maxProperties count the merged object in Helm; only exact where
	// nothing is merged.
	if !(p.merged && len(instances) > 0) {
		minP, maxP := -1, -1
		for _, s := range n.schemas {
			if s.MinProperties != nil && *s.MinProperties > minP {
				minP = *s.MinProperties
			}
			if s.MaxProperties != nil && (maxP < 0 || *s.MaxProperties < maxP) {
				maxP = *s.MaxProperties
			}
		}
		for _, m := range instances {
			if minP >= 0 && len(m) < minP {
				c.warn(loc, "values.yaml violates minProperties at %s; dropped", p.path)
				minP = -1
			}
			if maxP >= 0 && len(m) > maxP {
				c.warn(loc, "values.yaml violates maxProperties at %s; dropped", p.path)
				maxP = -1
			}
		}
		if minP > 0 {
			out.MinProperties = ptrInt64(int64(minP))
		}
		if maxP >= 0 {
			out.MaxProperties = ptrInt64(int64(maxP))
		}
	}
	return out
}

func escapeToken(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

func joinPath(path, key string) string {
	if path == "." {
		return "." + key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ptrInt64(v int64) *int64 { return &v }

func (c *converter) array(n *node, p pos, loc string) *apiextensionsv1.JSONSchemaProps {
	out := &apiextensionsv1.JSONSchemaProps{Type: "array"}
	var vals []any
	var instances [][]any
	for _, v := range p.vals {
		if a, ok := v.([]any); ok {
			instances = append(instances, a)
			vals = append(vals, a...)
		}
	}
	items := c.convert(n.items(), pos{vals: vals, merged: false, repeated: true, depth: p.depth + 1, path: p.path + "[]", loc: loc + "/items", noCEL: p.noCEL})
	out.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: items}

	minI, maxI, unique := -1, -1, false
	for _, s := range n.schemas {
		if s.MinItems != nil && *s.MinItems > minI {
			minI = *s.MinItems
		}
		if s.MaxItems != nil && (maxI < 0 || *s.MaxItems < maxI) {
			maxI = *s.MaxItems
		}
		unique = unique || s.UniqueItems
	}
	for _, a := range instances {
		if minI >= 0 && len(a) < minI {
			c.warn(loc, "values.yaml violates minItems at %s; dropped", p.path)
			minI = -1
		}
		if maxI >= 0 && len(a) > maxI {
			c.warn(loc, "values.yaml violates maxItems at %s; dropped", p.path)
			maxI = -1
		}
		if unique && hasDuplicates(a) {
			c.warn(loc, "values.yaml violates uniqueItems at %s; dropped", p.path)
			unique = false
		}
	}
	if minI > 0 {
		out.MinItems = ptrInt64(int64(minI))
	}
	if maxI >= 0 {
		out.MaxItems = ptrInt64(int64(maxI))
	}
	// uniqueItems is forbidden in CRDs. For scalar items, list-type "set"
	// means exactly "no duplicates"; otherwise it is dropped.
	if unique {
		switch {
		case !items.Nullable && (items.Type == "string" || items.Type == "integer" || items.Type == "boolean" || items.Type == "number"):
			out.XListType = ptrStr("set")
		default:
			c.warn(loc, "uniqueItems dropped (a CRD can only express it for non-null scalar items)")
		}
	}
	return out
}

func hasDuplicates(a []any) bool {
	seen := map[string]bool{}
	for _, v := range a {
		k := canon(v)
		if seen[k] {
			return true
		}
		seen[k] = true
	}
	return false
}

func ptrStr(s string) *string { return &s }

// formatsKept are the formats that are (1) in the API server's allow-list and
// (2) checked by the API server no more strictly than by the JSON Schema
// validator Helm uses. Helm only asserts formats for drafts before 2019-09;
// for newer drafts "format" is an annotation and is never kept.
var formatsKept = map[string]bool{"ipv4": true, "ipv6": true, "uuid": true, "uri": true, "date": true}

// scalarConstraints copies string, number and format constraints, taking the
// strictest over the conjunction, and drops those the chart's own values
// violate.
func (c *converter) scalarConstraints(n *node, p pos, loc string, out *apiextensionsv1.JSONSchemaProps, t int) {
	var strs []string
	var nums []*big.Rat
	for _, v := range p.vals {
		switch v := v.(type) {
		case string:
			strs = append(strs, v)
		case float64:
			if r := new(big.Rat).SetFloat64(v); r != nil {
				nums = append(nums, r)
			}
		}
	}
	if t&tStr != 0 {
		minL, maxL := -1, -1
		var pattern, format string
		for _, s := range n.schemas {
			if s.MinLength != nil && *s.MinLength > minL {
				minL = *s.MinLength
			}
			if s.MaxLength != nil && (maxL < 0 || *s.MaxLength < maxL) {
				maxL = *s.MaxLength
			}
			if s.Pattern != nil {
				re := s.Pattern.String()
				if _, err := regexp.Compile(re); err != nil {
					c.warn(pointerOf(s.Location), "pattern %q is not RE2; dropped", re)
				} else if pattern == "" {
					pattern = re
				} else if pattern != re {
					c.warn(pointerOf(s.Location), "second pattern %q dropped (a CRD node has one pattern)", re)
				}
			}
			if s.Format != nil && format == "" {
				if s.DraftVersion < 2019 && formatsKept[s.Format.Name] && t == tStr {
					format = s.Format.Name
				} else if s.DraftVersion < 2019 {
					c.warn(pointerOf(s.Location), "format %q dropped (not checked the same way by the API server)", s.Format.Name)
				}
			}
		}
		var re *regexp.Regexp
		if pattern != "" {
			re = regexp.MustCompile(pattern)
		}
		for _, v := range strs {
			l := utf8.RuneCountInString(v)
			if minL >= 0 && l < minL {
				c.warn(loc, "values.yaml violates minLength at %s; dropped", p.path)
				minL = -1
			}
			if maxL >= 0 && l > maxL {
				c.warn(loc, "values.yaml violates maxLength at %s; dropped", p.path)
				maxL = -1
			}
			if re != nil && !re.MatchString(v) {
				c.warn(loc, "values.yaml violates pattern at %s; dropped", p.path)
				pattern, re = "", nil
			}
			if format != "" && !strfmt.Default.Validates(format, v) {
				c.warn(loc, "values.yaml violates format %q at %s; dropped", format, p.path)
				format = ""
			}
		}
		if minL > 0 {
			out.MinLength = ptrInt64(int64(minL))
		}
		if maxL >= 0 {
			out.MaxLength = ptrInt64(int64(maxL))
		}
		out.Pattern = pattern
		out.Format = format
	}
	if t&tNumber != 0 {
		var min, max, mult *big.Rat
		minEx, maxEx := false, false
		for _, s := range n.schemas {
			if s.Minimum != nil && (min == nil || s.Minimum.Cmp(min) > 0) {
				min, minEx = s.Minimum, false
			}
			if s.ExclusiveMinimum != nil && (min == nil || s.ExclusiveMinimum.Cmp(min) >= 0) {
				min, minEx = s.ExclusiveMinimum, true
			}
			if s.Maximum != nil && (max == nil || s.Maximum.Cmp(max) < 0) {
				max, maxEx = s.Maximum, false
			}
			if s.ExclusiveMaximum != nil && (max == nil || s.ExclusiveMaximum.Cmp(max) <= 0) {
				max, maxEx = s.ExclusiveMaximum, true
			}
			// The API server checks multipleOf in floating point; only
			// integral factors give the same answers as exact arithmetic.
			if s.MultipleOf != nil && mult == nil && s.MultipleOf.IsInt() && s.MultipleOf.Sign() > 0 {
				mult = s.MultipleOf
			}
		}
		for _, r := range nums {
			if min != nil && (r.Cmp(min) < 0 || (minEx && r.Cmp(min) == 0)) {
				c.warn(loc, "values.yaml violates minimum at %s; dropped", p.path)
				min = nil
			}
			if max != nil && (r.Cmp(max) > 0 || (maxEx && r.Cmp(max) == 0)) {
				c.warn(loc, "values.yaml violates maximum at %s; dropped", p.path)
				max = nil
			}
			if mult != nil && !new(big.Rat).Quo(r, mult).IsInt() {
				c.warn(loc, "values.yaml violates multipleOf at %s; dropped", p.path)
				mult = nil
			}
		}
		if min != nil {
			f := ratFloat(min, -1)
			out.Minimum, out.ExclusiveMinimum = &f, minEx && isExact(min)
		}
		if max != nil {
			f := ratFloat(max, +1)
			out.Maximum, out.ExclusiveMaximum = &f, maxEx && isExact(max)
		}
		if mult != nil {
			if f, exact := mult.Float64(); exact && f < 1<<53 {
				out.MultipleOf = &f
			}
		}
	}
}

// ratFloat converts a bound to float64, rounding away from the accepted
// range's inside (dir -1 for minimums, +1 for maximums) so rounding never
// rejects a value Helm accepts.
func ratFloat(r *big.Rat, dir int) float64 {
	f, exact := r.Float64()
	if exact || math.IsInf(f, 0) {
		return f
	}
	back := new(big.Rat)
	if back.SetFloat64(f) == nil {
		return f
	}
	if dir < 0 && back.Cmp(r) > 0 {
		return math.Nextafter(f, math.Inf(-1))
	}
	if dir > 0 && back.Cmp(r) < 0 {
		return math.Nextafter(f, math.Inf(1))
	}
	return f
}

func isExact(r *big.Rat) bool { _, exact := r.Float64(); return exact }

// enum restricts the value to a list. The API server's enum check never
// accepts null, even with nullable: a nullable node gets the list as a CEL
// rule instead (CEL rules are not evaluated for null), where that is cheap
// and well-typed; otherwise the list is only documented.
func (c *converter) enum(n *node, p pos, loc string, out *apiextensionsv1.JSONSchemaProps, t int) {
	vals, ok := n.enum()
	if !ok {
		return
	}
	var kept []any
	for _, v := range vals {
		k := kindOf(v)
		if k == tNull {
			out.Nullable = true
			continue
		}
		if k&t != 0 {
			kept = append(kept, v)
		}
	}
	for _, v := range p.vals {
		if v == nil {
			continue
		}
		found := false
		for _, e := range kept {
			if canon(e) == canon(v) {
				found = true
				break
			}
		}
		if !found {
			c.warn(loc, "values.yaml value at %s is not in the enum; enum dropped", p.path)
			return
		}
	}
	if !isScalarType(out.Type) && !out.XIntOrString {
		c.warn(loc, "enum on a non-scalar or untyped node dropped (the API server compares such values inexactly)")
		return
	}
	if len(kept) == 0 {
		if !out.Nullable {
			c.warn(loc, "enum allows no value of the node's type; dropped")
		}
		return
	}
	if !out.Nullable {
		for _, v := range kept {
			out.Enum = append(out.Enum, apiextensionsv1.JSON{Raw: rawJSON(v)})
		}
		return
	}
	rule, ok := enumRule(out, kept)
	if !ok || p.repeated || p.noCEL {
		c.warn(loc, "enum on a nullable field is not enforced (the API server rejects null in enums and a CEL rule is too costly or not well-typed here)")
		out.Description = appendSentence(out.Description, "Allowed values: "+allowedList(kept)+".")
		return
	}
	c.celEnums[rule] = kept
	out.XValidations = append(out.XValidations, apiextensionsv1.ValidationRule{
		Rule:    rule,
		Message: "must be one of " + allowedList(kept),
	})
}

func appendSentence(desc, s string) string {
	if desc == "" {
		return s
	}
	if !strings.HasSuffix(desc, ".") {
		desc += "."
	}
	return desc + " " + s
}

func allowedList(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = compactJSON(v, 60)
	}
	s := strings.Join(parts, ", ")
	if len(s) > 400 {
		s = s[:400]
		for len(s) > 0 && !utf8.RuneStart(s[len(s)-1]) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}

// enumRule builds "self in [...]" for string, integer, number or boolean
// nodes. For strings it also caps maxLength at the longest allowed value:
// that rejects nothing extra and bounds the rule's estimated cost.
func enumRule(out *apiextensionsv1.JSONSchemaProps, vals []any) (string, bool) {
	if len(vals) > 64 {
		return "", false
	}
	lits := make([]string, 0, len(vals))
	maxLen := 0
	for _, v := range vals {
		switch out.Type {
		case "string":
			s, ok := v.(string)
			if !ok || !utf8.ValidString(s) {
				return "", false
			}
			if l := utf8.RuneCountInString(s); l > maxLen {
				maxLen = l
			}
			lits = append(lits, strconv.Quote(s))
		case "boolean":
			b, ok := v.(bool)
			if !ok {
				return "", false
			}
			lits = append(lits, strconv.FormatBool(b))
		case "integer":
			r, ok := numRat(v)
			if !ok || !r.IsInt() || !r.Num().IsInt64() {
				return "", false
			}
			lits = append(lits, r.Num().String())
		case "number":
			r, ok := numRat(v)
			if !ok {
				return "", false
			}
			f, _ := r.Float64()
			if math.IsInf(f, 0) {
				return "", false
			}
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if !strings.ContainsAny(s, ".eE") {
				s += ".0"
			}
			lits = append(lits, s)
		default:
			return "", false
		}
	}
	if out.Type == "string" && (out.MaxLength == nil || *out.MaxLength > int64(maxLen)) {
		out.MaxLength = ptrInt64(int64(maxLen))
	}
	return "self in [" + strings.Join(lits, ", ") + "]", true
}

func numRat(v any) (*big.Rat, bool) {
	switch v := v.(type) {
	case json.Number:
		return new(big.Rat).SetString(string(v))
	case float64:
		r := new(big.Rat).SetFloat64(v)
		return r, r != nil
	}
	return nil, false
}

// rawJSON encodes an enum member or a default for the CRD, every number in
// the form a YAML round trip keeps: an integral number that fits an int64 is
// written as an integer (-2, not -2.0 or -2e0). `chartkind generate` prints
// YAML, in which -2.0 becomes -2, and the operator's apply goes through
// runtime.DefaultUnstructuredConverter, which does the same; the API server
// then decodes -2 as an int64 and -2.0 as a float64, and compares an enum
// after converting the value to the member's type (so an int64 member -2
// accepts -2.5). Writing the integer form everywhere makes the CRD that is
// printed, the one that is applied and the one chartkind checks offline
// (internal/crd.Checker) one and the same.
func rawJSON(v any) []byte {
	b, err := json.Marshal(canonicalNumbers(v))
	if err != nil {
		return []byte("null")
	}
	return b
}

// canonicalNumbers returns v with integral numbers as integers (see rawJSON).
func canonicalNumbers(v any) any {
	switch x := v.(type) {
	case json.Number, float64:
		if r, ok := numRat(x); ok && r.IsInt() && r.Num().IsInt64() {
			return json.Number(r.Num().String())
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canonicalNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canonicalNumbers(e)
		}
		return out
	}
	return v
}

// rawOf returns the source JSON object of a compiled schema, for keywords
// the compiler does not keep (x-kubernetes-*).
func (c *converter) rawOf(s *jsonschema.Schema) map[string]any {
	if !isLocal(s) {
		return nil
	}
	_, frag, _ := strings.Cut(s.Location, "#")
	v := c.doc
	for _, tok := range pointerTokens(frag) {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	m, _ := v.(map[string]any)
	return m
}

// extensions keeps the x-kubernetes-* keys of the source that stay valid on
// the converted node; other x-* keys are not copied.
func (c *converter) extensions(n *node, p pos, loc string, out *apiextensionsv1.JSONSchemaProps) {
	seen := map[string]bool{}
	for _, s := range n.schemas {
		raw := c.rawOf(s)
		for _, k := range sortedKeys(raw) {
			if !strings.HasPrefix(k, "x-kubernetes-") || seen[k] {
				continue
			}
			seen[k] = true
			v := raw[k]
			sloc := pointerOf(s.Location)
			switch k {
			case "x-kubernetes-preserve-unknown-fields":
				if v == true && (out.Type == "object" || out.Type == "") && !out.XIntOrString && out.AdditionalProperties == nil {
					out.XPreserveUnknownFields = ptrTrue()
				}
			case "x-kubernetes-int-or-string":
				// Only ever loosens: a string or integer node also accepts the other.
				if v == true && (out.Type == "string" || out.Type == "integer") {
					out.Type = ""
					out.XIntOrString = true
					out.Format = ""
				}
			case "x-kubernetes-validations":
				rules, ok := parseRules(v)
				if !ok {
					c.warn(sloc, "invalid x-kubernetes-validations dropped")
					continue
				}
				out.XValidations = append(out.XValidations, rules...)
			case "x-kubernetes-list-type":
				lt, _ := v.(string)
				switch {
				case out.Type != "array" || out.XListType != nil:
				case lt == "atomic":
					out.XListType = ptrStr(lt)
				case lt == "set" && out.Items.Schema != nil && !out.Items.Schema.Nullable && isScalarType(out.Items.Schema.Type):
					out.XListType = ptrStr(lt)
				case lt == "map":
					if keys, ok := listMapKeys(raw["x-kubernetes-list-map-keys"], out.Items.Schema); ok {
						out.XListType = ptrStr(lt)
						out.XListMapKeys = keys
					} else {
						c.warn(sloc, "x-kubernetes-list-type map dropped (its keys are not required non-nullable item properties here)")
					}
				default:
					c.warn(sloc, "x-kubernetes-list-type %v dropped", v)
				}
			case "x-kubernetes-map-type":
				if mt, _ := v.(string); out.Type == "object" && (mt == "atomic" || mt == "granular") {
					out.XMapType = ptrStr(mt)
				}
			case "x-kubernetes-list-map-keys":
				// handled with x-kubernetes-list-type
			case "x-kubernetes-embedded-resource":
				// The API server requires apiVersion and kind in embedded
				// resources, which Helm does not: never copied.
				if v == true {
					c.warn(sloc, "x-kubernetes-embedded-resource dropped (it would require apiVersion/kind)")
				}
			default:
				c.warn(sloc, "%s dropped", k)
			}
		}
	}
	if out.XIntOrString {
		out.XPreserveUnknownFields = nil
	}
}

func isScalarType(t string) bool {
	return t == "string" || t == "integer" || t == "number" || t == "boolean"
}

func listMapKeys(v any, items *apiextensionsv1.JSONSchemaProps) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 || items == nil || items.Type != "object" {
		return nil, false
	}
	req := map[string]bool{}
	for _, r := range items.Required {
		req[r] = true
	}
	var keys []string
	for _, k := range arr {
		ks, ok := k.(string)
		if !ok {
			return nil, false
		}
		prop, ok := items.Properties[ks]
		if !ok || prop.Nullable || !req[ks] || !isScalarType(prop.Type) {
			return nil, false
		}
		keys = append(keys, ks)
	}
	return keys, true
}

func parseRules(v any) (apiextensionsv1.ValidationRules, bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	var rules apiextensionsv1.ValidationRules
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, false
	}
	for _, r := range rules {
		if r.Rule == "" {
			return nil, false
		}
	}
	return rules, true
}
