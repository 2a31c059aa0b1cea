package valuescheck

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// This file generates the cases of the agreement test: specs derived from a
// chart's values.yaml by walking its compiled schema, each aimed at one rule
// (a type, an enum, a bound, a oneOf, required after merging, …). Whether a
// case is valid is never decided here: Helm decides. The aim is only that
// every rule of every chart is exercised from both sides.

// mutation is one generated spec.
type mutation struct {
	kind string         // what it aims at, for the statistics ("enum", "oneOf", …)
	path string         // the field it changes, for messages
	spec map[string]any // the application object's spec
}

// Mutation kinds, in the order the statistics list them.
const (
	kValuesYAML    = "values.yaml" // the chart's values.yaml as the spec
	kEmpty         = "empty"       // {}
	kSame          = "same-as-default"
	kType          = "wrong-type"
	kEnum          = "enum"       // a value outside the enum
	kEnumOK        = "enum-other" // another value of the enum
	kConst         = "const"
	kPattern       = "pattern"        // a string the pattern refuses
	kBounds        = "bounds"         // below minimum, above maximum, …
	kBoundsEdge    = "bounds-edge"    // exactly at a bound
	kLength        = "length"         // minLength / maxLength
	kItems         = "items"          // wrong item, minItems, maxItems, uniqueItems
	kOneOf         = "oneOf"          // a value two branches accept
	kOneOfOK       = "oneOf-one"      // a value one branch accepts
	kAnyOf         = "anyOf"          // a value no branch accepts
	kRequiredNull  = "required-null"  // null on a required key that has a default
	kRequiredEmpty = "required-empty" // an empty object where keys are required
	kNullDefault   = "null-default"   // null removing an optional default
	kNullNoDefault = "null-no-default"
	kClosed        = "closed-object" // an unknown key in an object that allows none
	kOpen          = "open-object"   // an unknown key in an object that allows it
	kMapEntry      = "map-entry"     // a new entry of a map (additionalProperties schema)
)

var kindOrder = []string{kValuesYAML, kEmpty, kSame, kType, kEnum, kEnumOK, kConst, kPattern, kBounds, kBoundsEdge,
	kLength, kItems, kOneOf, kOneOfOK, kAnyOf, kRequiredNull, kRequiredEmpty, kNullDefault, kNullNoDefault,
	kClosed, kOpen, kMapEntry}

// facets gathers what a node says about its value, through $ref and allOf.
type facets struct {
	types      []string // nil: any
	enum       []any
	constVal   *any
	pattern    jsonschema.Regexp
	min, max   *big.Rat
	exMin      *big.Rat
	exMax      *big.Rat
	multipleOf *big.Rat
	minLen     *int
	maxLen     *int
	minItems   *int
	maxItems   *int
	unique     bool
	props      map[string]*jsonschema.Schema
	required   []string
	closed     bool
	addl       *jsonschema.Schema
	items      *jsonschema.Schema
	oneOf      [][]*jsonschema.Schema
	anyOf      [][]*jsonschema.Schema
	remote     bool // part of a document the validator stands in for
}

func collect(s *jsonschema.Schema) *facets {
	f := &facets{props: map[string]*jsonschema.Schema{}}
	seen := map[*jsonschema.Schema]bool{}
	var walk func(s *jsonschema.Schema)
	walk = func(s *jsonschema.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if !strings.HasPrefix(s.Location, "file:///values.schema.json") {
			f.remote = true
			return
		}
		if s.Types != nil && !s.Types.IsEmpty() && f.types == nil {
			f.types = s.Types.ToStrings()
		}
		if s.Enum != nil && f.enum == nil {
			f.enum = s.Enum.Values
		}
		if s.Const != nil && f.constVal == nil {
			f.constVal = s.Const
		}
		if s.Pattern != nil && f.pattern == nil {
			f.pattern = s.Pattern
		}
		first := func(dst **big.Rat, v *big.Rat) {
			if *dst == nil {
				*dst = v
			}
		}
		first(&f.min, s.Minimum)
		first(&f.max, s.Maximum)
		first(&f.exMin, s.ExclusiveMinimum)
		first(&f.exMax, s.ExclusiveMaximum)
		first(&f.multipleOf, s.MultipleOf)
		firstInt := func(dst **int, v *int) {
			if *dst == nil {
				*dst = v
			}
		}
		firstInt(&f.minLen, s.MinLength)
		firstInt(&f.maxLen, s.MaxLength)
		firstInt(&f.minItems, s.MinItems)
		firstInt(&f.maxItems, s.MaxItems)
		f.unique = f.unique || s.UniqueItems
		for k, p := range s.Properties {
			if _, ok := f.props[k]; !ok {
				f.props[k] = p
			}
		}
		f.required = append(f.required, s.Required...)
		switch a := s.AdditionalProperties.(type) {
		case bool:
			if !a && len(s.PatternProperties) == 0 {
				f.closed = true
			}
		case *jsonschema.Schema:
			if f.addl == nil {
				f.addl = a
			}
		}
		switch it := s.Items.(type) {
		case *jsonschema.Schema:
			f.items = it
		}
		if s.Items2020 != nil {
			f.items = s.Items2020
		}
		if len(s.OneOf) > 0 {
			f.oneOf = append(f.oneOf, s.OneOf)
		}
		if len(s.AnyOf) > 0 {
			f.anyOf = append(f.anyOf, s.AnyOf)
		}
		walk(s.Ref)
		for _, a := range s.AllOf {
			walk(a)
		}
	}
	walk(s)
	return f
}

func (f *facets) allows(t string) bool {
	if f.types == nil {
		return true
	}
	for _, x := range f.types {
		if x == t || (x == "number" && t == "integer") {
			return true
		}
	}
	return false
}

// generator walks one chart's schema and values. A generator for the items of
// an array, or the entries of a map, sets values inside one item or entry and
// hands the whole array or map entry to its parent: Helm replaces arrays as a
// whole, so an override of an item is an override of the array.
type generator struct {
	out *[]mutation
	// setAt builds the spec that sets path (relative to this generator's
	// root) to v; label names path for messages.
	setAt func(path []string, v any) map[string]any
	label func(path []string) string
	// specRoot is true for the generator of the spec itself, whose root
	// cannot be replaced by a scalar.
	specRoot bool
}

// mutations returns every candidate mutation of a chart, in a deterministic order.
func mutations(root *jsonschema.Schema, values map[string]any) []mutation {
	var out []mutation
	g := &generator{out: &out, specRoot: true,
		setAt: func(path []string, v any) map[string]any {
			spec := map[string]any{}
			setIn(spec, path, v)
			return spec
		},
		label: func(path []string) string { return strings.Join(append([]string{"spec"}, path...), ".") },
	}
	g.add(kValuesYAML, "spec", deepCopy(values))
	g.add(kEmpty, "spec", map[string]any{})
	if root != nil {
		g.walk(root, nil, values, true, map[*jsonschema.Schema]bool{}, 0)
	}
	return out
}

func (g *generator) add(kind, path string, spec map[string]any) {
	*g.out = append(*g.out, mutation{kind: kind, path: path, spec: spec})
}

// set adds a spec that sets path to v and nothing else: the rest comes from
// the chart's values when Helm merges.
func (g *generator) set(kind string, path []string, v any) {
	if len(path) == 0 && g.specRoot {
		if m, ok := v.(map[string]any); ok {
			g.add(kind, "spec", m)
		}
		return
	}
	g.add(kind, g.label(path), g.setAt(path, v))
}

// setIn sets path in m to v, creating the objects on the way.
func setIn(m map[string]any, path []string, v any) {
	cur := m
	for _, k := range path[:len(path)-1] {
		next, ok := cur[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	cur[path[len(path)-1]] = v
}

// items is the generator of the first item of the array at path, starting
// from base (the chart's first item, or a sample value).
func (g *generator) items(path []string, base any) *generator {
	return &generator{out: g.out,
		setAt: func(sub []string, v any) map[string]any {
			item := v
			if len(sub) > 0 {
				m, ok := deepCopyValue(base).(map[string]any)
				if !ok {
					m = map[string]any{}
				}
				setIn(m, sub, v)
				item = m
			}
			return g.setAt(path, []any{item})
		},
		label: func(sub []string) string {
			l := g.label(path) + "[0]"
			if len(sub) > 0 {
				l += "." + strings.Join(sub, ".")
			}
			return l
		},
	}
}

const maxWalkDepth = 8

// walk generates the mutations of one node and descends into its properties,
// the items of an array and the entries of a map. dv is the chart's value at
// path (has tells whether there is one).
func (g *generator) walk(s *jsonschema.Schema, path []string, dv any, has bool, onPath map[*jsonschema.Schema]bool, depth int) {
	if onPath[s] || depth > maxWalkDepth {
		return
	}
	onPath[s] = true
	defer delete(onPath, s)
	f := collect(s)
	if f.remote {
		return
	}
	if len(path) > 0 || !g.specRoot {
		g.leaf(f, path, dv, has)
		g.alternatives(f, path, dv, has)
	}
	g.object(f, path, dv, has)
	g.array(f, path, dv, has)

	dm, _ := dv.(map[string]any)
	for _, k := range sortedKeys(f.props) {
		cv, chas := dm[k]
		g.walk(f.props[k], appendPath(path, k), cv, chas, onPath, depth+1)
	}
	// One entry of a map: the chart's first, else a new one.
	if f.addl != nil {
		key, entry, ok := "chartkind-entry", any(nil), false
		for _, k := range sortedKeys(dm) {
			key, entry, ok = k, dm[k], true
			break
		}
		g.walk(f.addl, appendPath(path, key), entry, ok, onPath, depth+1)
	}
	// The first item of an array.
	if f.items != nil && f.allows("array") && (len(path) > 0 || !g.specRoot) {
		dl, _ := dv.([]any)
		var base any = map[string]any{}
		has := len(dl) > 0
		if has {
			base = dl[0]
		}
		g.items(path, base).walk(f.items, nil, base, has, onPath, depth+1)
	}
}

func (g *generator) leaf(f *facets, path []string, dv any, has bool) {
	if has {
		g.set(kSame, path, deepCopyValue(dv))
		g.set(kNullDefault, path, nil)
	} else {
		g.set(kNullNoDefault, path, nil)
	}
	if w, ok := wrongType(f); ok {
		g.set(kType, path, w)
	}
	if f.enum != nil {
		g.set(kEnum, path, outside(f.enum))
		for _, e := range f.enum {
			if e != nil && (!has || canon(e) != canon(dv)) {
				g.set(kEnumOK, path, e)
				break
			}
		}
	}
	if f.constVal != nil {
		g.set(kConst, path, outside([]any{*f.constVal}))
	}
	if f.pattern != nil && f.allows("string") {
		for _, c := range []string{"", "chartkind invalid !@#", "-", "0", "a", "A_B", " ", "x.y", "999999999999"} {
			if !f.pattern.MatchString(c) {
				g.set(kPattern, path, c)
				break
			}
		}
	}
	if f.allows("number") || f.allows("integer") {
		integer := !f.allows("number")
		step := big.NewRat(1, 1)
		if !integer {
			step = big.NewRat(1, 2)
		}
		if f.min != nil {
			g.set(kBounds, path, ratValue(new(big.Rat).Sub(f.min, step), integer))
			g.set(kBoundsEdge, path, ratValue(f.min, integer))
		}
		if f.max != nil {
			g.set(kBounds, path, ratValue(new(big.Rat).Add(f.max, step), integer))
			g.set(kBoundsEdge, path, ratValue(f.max, integer))
		}
		if f.exMin != nil {
			g.set(kBoundsEdge, path, ratValue(f.exMin, integer))
		}
		if f.exMax != nil {
			g.set(kBoundsEdge, path, ratValue(f.exMax, integer))
		}
		if f.multipleOf != nil {
			g.set(kBounds, path, ratValue(new(big.Rat).Mul(f.multipleOf, big.NewRat(3, 2)), false))
		}
	}
	if f.allows("string") {
		if f.minLen != nil && *f.minLen > 0 {
			g.set(kLength, path, strings.Repeat("a", *f.minLen-1))
		}
		if f.maxLen != nil && *f.maxLen < 4096 {
			g.set(kLength, path, strings.Repeat("a", *f.maxLen+1))
		}
	}
}

func (g *generator) object(f *facets, path []string, dv any, has bool) {
	if !f.allows("object") || (len(f.props) == 0 && f.addl == nil && !f.closed && len(f.required) == 0) {
		return
	}
	dm, _ := dv.(map[string]any)
	if f.closed {
		g.set(kClosed, appendPath(path, "chartkindUnknownField"), "x")
		// Nested too: a closed object inside a closed object.
		for _, k := range sortedKeys(f.props) {
			if cf := collect(f.props[k]); cf.closed && !cf.remote {
				g.set(kClosed, appendPath(appendPath(path, k), "chartkindUnknownField"), map[string]any{"nested": true})
				break
			}
		}
	} else if f.addl == nil && len(f.props) > 0 {
		g.set(kOpen, appendPath(path, "chartkindUnknownField"), "x")
	}
	if f.addl != nil {
		af := collect(f.addl)
		if w, ok := wrongType(af); ok && !af.remote {
			g.set(kMapEntry, appendPath(path, "chartkind-entry"), w)
		}
		for _, k := range sortedKeys(dm) {
			g.set(kMapEntry, appendPath(path, "chartkind-copy"), deepCopyValue(dm[k]))
			break
		}
	}
	for _, r := range f.required {
		if _, ok := dm[r]; ok {
			g.set(kRequiredNull, appendPath(path, r), nil)
		}
	}
	if len(f.required) > 0 && !has && (len(path) > 0 || !g.specRoot) {
		g.set(kRequiredEmpty, path, map[string]any{})
	}
}

func (g *generator) array(f *facets, path []string, dv any, _ bool) {
	if !f.allows("array") || (len(path) == 0 && g.specRoot) {
		return
	}
	dl, _ := dv.([]any)
	var item any = "x"
	if len(dl) > 0 {
		item = dl[0]
	}
	if f.items != nil {
		itf := collect(f.items)
		if !itf.remote {
			if w, ok := wrongType(itf); ok {
				g.set(kItems, path, append(deepCopyList(dl), w))
			}
			if len(itf.required) > 0 && itf.allows("object") {
				g.set(kItems, path, []any{map[string]any{}})
			}
			if len(dl) == 0 {
				item = sample(itf)
			}
		}
	}
	if f.minItems != nil && *f.minItems > 0 {
		g.set(kItems, path, repeat(item, *f.minItems-1))
	}
	if f.maxItems != nil && *f.maxItems < 1000 {
		g.set(kItems, path, repeat(item, *f.maxItems+1))
	}
	if f.unique {
		g.set(kItems, path, repeat(item, 2))
	}
}

// alternatives looks for values that one, several or no branch of a oneOf
// (anyOf) accepts, by trying simple candidates on each branch.
func (g *generator) alternatives(f *facets, path []string, dv any, has bool) {
	try := func(branches []*jsonschema.Schema, cands []any) (none, one, many any, okNone, okOne, okMany bool) {
		for _, c := range cands {
			n := 0
			for _, b := range branches {
				if b.Validate(c) == nil {
					n++
				}
			}
			switch {
			case n == 0 && !okNone:
				none, okNone = c, true
			case n == 1 && !okOne:
				one, okOne = c, true
			case n > 1 && !okMany:
				many, okMany = c, true
			}
		}
		return
	}
	for _, branches := range f.oneOf {
		none, one, many, okNone, okOne, okMany := try(branches, candidates(branches, dv, has))
		if okMany {
			g.set(kOneOf, path, many)
		}
		if okOne {
			g.set(kOneOfOK, path, one)
		}
		if okNone {
			g.set(kAnyOf, path, none)
		}
	}
	for _, branches := range f.anyOf {
		none, _, _, okNone, _, _ := try(branches, candidates(branches, dv, has))
		if okNone {
			g.set(kAnyOf, path, none)
		}
	}
}

// candidates are values worth trying on alternatives: the chart's value,
// every branch's enum and const values, simple values of every type, and an
// object holding every property any branch requires.
func candidates(branches []*jsonschema.Schema, dv any, has bool) []any {
	var out []any
	if has {
		out = append(out, dv)
	}
	union := map[string]any{}
	for _, b := range branches {
		bf := collect(b)
		out = append(out, bf.enum...)
		if bf.constVal != nil {
			out = append(out, *bf.constVal)
		}
		for _, r := range bf.required {
			if p, ok := bf.props[r]; ok {
				union[r] = sample(collect(p))
			} else {
				union[r] = "x"
			}
		}
	}
	out = append(out, union, "x", "", 1.0, 1.5, -1.0, true, map[string]any{}, []any{}, []any{"x"})
	return out
}

// wrongType picks a value of a type the node does not allow.
func wrongType(f *facets) (any, bool) {
	if f.types == nil {
		return nil, false
	}
	for _, c := range []struct {
		t string
		v any
	}{
		{"string", "chartkind-wrong-type"},
		{"boolean", true},
		{"integer", 7.0},
		{"number", 1.5},
		{"object", map[string]any{"chartkindWrongType": true}},
		{"array", []any{"chartkind"}},
	} {
		if !f.allows(c.t) {
			return c.v, true
		}
	}
	return nil, false
}

// outside picks a value of the same kind as the enum's that is not in it.
func outside(enum []any) any {
	var cands []any
	if len(enum) > 0 {
		switch enum[0].(type) {
		case float64, json.Number:
			cands = []any{987654321.0, -3.0}
		case bool:
			cands = []any{true, false}
		}
	}
	cands = append(cands, "chartkind-not-in-enum", 987654321.0, true, false)
	for _, c := range cands {
		in := false
		for _, e := range enum {
			if canon(e) == canon(c) {
				in = true
			}
		}
		if !in {
			return c
		}
	}
	return "chartkind-not-in-enum"
}

// sample is a plausible valid value of a node: its first enum value, or a
// simple value of its first type.
func sample(f *facets) any {
	if len(f.enum) > 0 {
		return f.enum[0]
	}
	if f.constVal != nil {
		return *f.constVal
	}
	t := "string"
	if len(f.types) > 0 {
		t = f.types[0]
	}
	switch t {
	case "integer", "number":
		if f.min != nil {
			return ratValue(f.min, t == "integer")
		}
		return 1.0
	case "boolean":
		return true
	case "object":
		return map[string]any{}
	case "array":
		return []any{}
	case "null":
		return nil
	}
	return "x"
}

func ratValue(r *big.Rat, integer bool) any {
	if integer && !r.IsInt() {
		r = new(big.Rat).SetInt(new(big.Int).Quo(r.Num(), r.Denom()))
	}
	f, _ := r.Float64()
	return f
}

func repeat(v any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = deepCopyValue(v)
	}
	return out
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func appendPath(p []string, k string) []string {
	return append(p[:len(p):len(p)], k)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return deepCopyValue(m).(map[string]any)
}

func deepCopyList(l []any) []any {
	if l == nil {
		return nil
	}
	return deepCopyValue(l).([]any)
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopyValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// pick chooses at most n mutations, spread over kinds (round robin) and, within
// a kind, evenly over the schema, so that a big schema's cases are not all
// about its first properties. The chart's values.yaml and {} always come first.
func pick(all []mutation, n int) []mutation {
	byKind := map[string][]mutation{}
	for _, m := range all {
		byKind[m.kind] = append(byKind[m.kind], m)
	}
	quota := map[string]int{}
	total := 0
	for progress := true; progress && total < n; {
		progress = false
		for _, k := range kindOrder {
			if quota[k] < len(byKind[k]) && total < n {
				quota[k]++
				total++
				progress = true
			}
		}
	}
	var out []mutation
	for _, k := range kindOrder {
		l, q := byKind[k], quota[k]
		for i := 0; i < q; i++ {
			out = append(out, l[i*len(l)/q])
		}
	}
	return out
}

func (m mutation) String() string {
	return fmt.Sprintf("%s at %s", m.kind, m.path)
}
