package schemaconv

import (
	"encoding/json"
	"math/big"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// JSON value kinds as a bit set. Numbers are split into integral and
// non-integral values so that "integer" and "number" are both plain masks.
const (
	tNull = 1 << iota
	tBool
	tInt
	tNum // non-integral numbers
	tStr
	tArr
	tObj

	tNumber = tInt | tNum
	tAll    = tNull | tBool | tInt | tNum | tStr | tArr | tObj
)

// node is everything known about one value position: the conjunction of the
// compiled schemas that apply there ($ref targets and allOf branches are
// flattened in) and of disjunctions (anyOf/oneOf branches, tuple items,
// pattern/additional property alternatives). Working on this form instead of
// single schemas makes allOf merging and anyOf hulls the same code path.
type node struct {
	schemas []*jsonschema.Schema
	ors     [][]*node
	never   bool // a `false` schema applies: no value is valid

	// dynamic and remote record why parts of the schema were treated as
	// "accept anything"; warnings are emitted when the node is converted.
	notes []note

	typesMemo int // types()+1, 0 if not computed yet
}

type note struct{ loc, msg string }

func (n *node) isAny() bool { return !n.never && len(n.schemas) == 0 && len(n.ors) == 0 }

func (n *node) has(s *jsonschema.Schema) bool {
	for _, x := range n.schemas {
		if x == s {
			return true
		}
	}
	return false
}

// loc is the location used in warnings about this node.
func (n *node) loc() string {
	if len(n.schemas) > 0 {
		return pointerOf(n.schemas[0].Location)
	}
	for _, g := range n.ors {
		for _, b := range g {
			if l := b.loc(); l != "" {
				return l
			}
		}
	}
	return ""
}

func isLocal(s *jsonschema.Schema) bool { return strings.HasPrefix(s.Location, rootURL+"#") }

// nodeOf builds the node for one schema.
func nodeOf(s *jsonschema.Schema) *node {
	n := &node{}
	add(n, s, map[*jsonschema.Schema]bool{})
	return n
}

// add flattens s into the conjunction n. A schema already being flattened
// (a $ref/allOf cycle) is skipped: leaving a constraint out only loosens.
func add(n *node, s *jsonschema.Schema, active map[*jsonschema.Schema]bool) {
	if s == nil {
		return
	}
	if s.Bool != nil {
		if !*s.Bool {
			n.never = true
		}
		return
	}
	if active[s] || n.has(s) {
		return
	}
	n.schemas = append(n.schemas, s)
	active[s] = true
	defer delete(active, s)

	if s.Ref != nil {
		if isLocal(s.Ref) {
			add(n, s.Ref, active)
		} else {
			n.notes = append(n.notes, note{pointerOf(s.Location), "$ref " + s.Ref.Location + " is not resolved (no network or file access); accepting any value there"})
		}
	}
	if s.RecursiveRef != nil {
		n.notes = append(n.notes, note{pointerOf(s.Location), "$recursiveRef is resolved dynamically; accepting any value there"})
	}
	if s.DynamicRef != nil {
		n.notes = append(n.notes, note{pointerOf(s.Location), "$dynamicRef is resolved dynamically; accepting any value there"})
	}
	for _, a := range s.AllOf {
		add(n, a, active)
	}
	for _, alts := range [][]*jsonschema.Schema{s.AnyOf, s.OneOf} {
		if len(alts) == 0 {
			continue
		}
		var g []*node
		anyBranch := false
		for _, b := range alts {
			bn := &node{}
			add(bn, b, active)
			n.notes = append(n.notes, bn.notes...)
			bn.notes = nil
			if bn.isAny() {
				anyBranch = true
				break
			}
			g = append(g, bn)
		}
		if !anyBranch {
			n.ors = append(n.ors, g)
		}
	}
}

// types is the set of value kinds the node accepts.
func (n *node) types() int {
	if n.typesMemo == 0 {
		n.typesMemo = n.computeTypes() + 1
	}
	return n.typesMemo - 1
}

func (n *node) computeTypes() int {
	if n.never {
		return 0
	}
	m := tAll
	for _, s := range n.schemas {
		m &= schemaTypes(s)
	}
	for _, g := range n.ors {
		u := 0
		for _, b := range g {
			u |= b.types()
		}
		m &= u
	}
	return m
}

func schemaTypes(s *jsonschema.Schema) int {
	m := tAll
	if s.Types != nil {
		m = 0
		for _, t := range s.Types.ToStrings() {
			switch t {
			case "null":
				m |= tNull
			case "boolean":
				m |= tBool
			case "integer":
				m |= tInt
			case "number":
				m |= tNumber
			case "string":
				m |= tStr
			case "array":
				m |= tArr
			case "object":
				m |= tObj
			}
		}
	}
	if vals, ok := schemaEnum(s); ok {
		e := 0
		for _, v := range vals {
			k := kindOf(v)
			if k&tNumber != 0 {
				k = tNumber // an enum of 1 in a "number" field must not narrow it to integers
			}
			e |= k
		}
		m &= e
	}
	return m
}

func schemaEnum(s *jsonschema.Schema) ([]any, bool) {
	switch {
	case s.Const != nil:
		return []any{*s.Const}, true
	case s.Enum != nil:
		return s.Enum.Values, true
	}
	return nil, false
}

// kindOf classifies a decoded JSON/YAML value.
func kindOf(v any) int {
	switch v := v.(type) {
	case nil:
		return tNull
	case bool:
		return tBool
	case string:
		return tStr
	case []any:
		return tArr
	case map[string]any:
		return tObj
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok && r.IsInt() {
			return tInt
		}
		return tNum
	case float64:
		if v == float64(int64(v)) {
			return tInt
		}
		return tNum
	case float32:
		return kindOf(float64(v))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return tInt
	}
	return 0
}

// propertyNames is the sorted union of the named properties of all schemas,
// including those of object branches of anyOf/oneOf (for documentation).
func (n *node) propertyNames() []string {
	set := map[string]bool{}
	var collect func(n *node)
	collect = func(n *node) {
		for _, s := range n.schemas {
			for k := range s.Properties {
				set[k] = true
			}
		}
		for _, g := range n.ors {
			for _, b := range g {
				if b.types()&tObj != 0 {
					collect(b)
				}
			}
		}
	}
	collect(n)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedPatterns(m map[jsonschema.Regexp]*jsonschema.Schema) []jsonschema.Regexp {
	out := make([]jsonschema.Regexp, 0, len(m))
	for re := range m {
		out = append(out, re)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// prop is the node for the value of property name.
func (n *node) prop(name string) *node {
	c := &node{never: n.never}
	for _, s := range n.schemas {
		matched := false
		if ps, ok := s.Properties[name]; ok {
			add(c, ps, map[*jsonschema.Schema]bool{})
			matched = true
		}
		for _, re := range sortedPatterns(s.PatternProperties) {
			if re.MatchString(name) {
				add(c, s.PatternProperties[re], map[*jsonschema.Schema]bool{})
				matched = true
			}
		}
		if !matched {
			switch ap := s.AdditionalProperties.(type) {
			case bool:
				if !ap {
					c.never = true
				}
			case *jsonschema.Schema:
				add(c, ap, map[*jsonschema.Schema]bool{})
			}
		}
	}
	c.orChildren(n, tObj, func(b *node) *node { return b.prop(name) })
	return c
}

// mapValue is the node for the value of a key that is not a named property
// of any schema of n (the key itself is unknown, so every pattern may or may
// not match: the alternatives are OR-ed, which only loosens).
func (n *node) mapValue() *node {
	c := &node{never: n.never}
	for _, s := range n.schemas {
		var alts []*node
		for _, re := range sortedPatterns(s.PatternProperties) {
			alts = append(alts, nodeOf(s.PatternProperties[re]))
		}
		switch ap := s.AdditionalProperties.(type) {
		case nil:
			continue // unmatched keys accept anything
		case bool:
			if ap {
				continue
			}
		case *jsonschema.Schema:
			alts = append(alts, nodeOf(ap))
		}
		c.addAlternatives(alts)
	}
	c.orChildren(n, tObj, (*node).mapValue)
	return c
}

// items is the node for every element of an array.
func (n *node) items() *node {
	c := &node{never: n.never}
	for _, s := range n.schemas {
		var (
			tuple []*jsonschema.Schema
			rest  any // nil/true: anything; false: nothing; *Schema
		)
		switch it := s.Items.(type) {
		case *jsonschema.Schema:
			add(c, it, map[*jsonschema.Schema]bool{})
			continue
		case []*jsonschema.Schema:
			tuple, rest = it, s.AdditionalItems
		}
		if s.PrefixItems != nil {
			tuple = s.PrefixItems
			if s.Items2020 != nil {
				rest = s.Items2020
			}
		} else if s.Items2020 != nil {
			add(c, s.Items2020, map[*jsonschema.Schema]bool{})
			continue
		}
		if tuple == nil {
			continue
		}
		var alts []*node
		switch r := rest.(type) {
		case nil:
			continue
		case bool:
			if r {
				continue
			}
		case *jsonschema.Schema:
			alts = append(alts, nodeOf(r))
		}
		for _, t := range tuple {
			alts = append(alts, nodeOf(t))
		}
		c.addAlternatives(alts)
	}
	c.orChildren(n, tArr, (*node).items)
	return c
}

func (c *node) addAlternatives(alts []*node) {
	if len(alts) == 0 {
		c.never = true
		return
	}
	for _, a := range alts {
		if a.isAny() {
			return
		}
	}
	if len(alts) == 1 {
		c.schemas = append(c.schemas, alts[0].schemas...)
		c.ors = append(c.ors, alts[0].ors...)
		c.never = c.never || alts[0].never
		return
	}
	c.ors = append(c.ors, alts)
}

// orChildren carries n's disjunctions down to a child position: only the
// branches that accept kind (objects or arrays) can match such a value.
func (c *node) orChildren(n *node, kind int, child func(*node) *node) {
	for _, g := range n.ors {
		var alts []*node
		anyBranch := false
		for _, b := range g {
			if b.types()&kind == 0 {
				continue
			}
			bc := child(b)
			if bc.isAny() {
				anyBranch = true
				break
			}
			alts = append(alts, bc)
		}
		if anyBranch || len(alts) == 0 {
			continue
		}
		c.ors = append(c.ors, alts)
	}
}

// required is the union of required properties; a disjunction contributes
// the properties required by every one of its object branches.
func (n *node) required() []string {
	set := map[string]bool{}
	for _, s := range n.schemas {
		for _, r := range s.Required {
			set[r] = true
		}
	}
	for _, g := range n.ors {
		var common map[string]bool
		for _, b := range g {
			if b.types()&tObj == 0 {
				continue
			}
			bs := map[string]bool{}
			for _, r := range b.required() {
				bs[r] = true
			}
			if common == nil {
				common = bs
				continue
			}
			for k := range common {
				if !bs[k] {
					delete(common, k)
				}
			}
		}
		for k := range common {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// enum returns the allowed values, if the node restricts them to a list:
// the intersection over schemas, and for a disjunction the union of its
// branches (only if every branch has a list).
func (n *node) enum() ([]any, bool) {
	var cur []any
	has := false
	apply := func(vals []any) {
		if !has {
			cur, has = vals, true
			return
		}
		cur = intersect(cur, vals)
	}
	for _, s := range n.schemas {
		if vals, ok := schemaEnum(s); ok {
			apply(vals)
		}
	}
	for _, g := range n.ors {
		var union []any
		ok := true
		for _, b := range g {
			ev, bok := b.enum()
			if !bok {
				ok = false
				break
			}
			union = unionVals(union, ev)
		}
		if ok {
			apply(union)
		}
	}
	return cur, has
}

func intersect(a, b []any) []any {
	keys := map[string]bool{}
	for _, v := range b {
		keys[canon(v)] = true
	}
	var out []any
	for _, v := range a {
		if keys[canon(v)] {
			out = append(out, v)
		}
	}
	return out
}

func unionVals(a, b []any) []any {
	keys := map[string]bool{}
	for _, v := range a {
		keys[canon(v)] = true
	}
	for _, v := range b {
		if k := canon(v); !keys[k] {
			keys[k] = true
			a = append(a, v)
		}
	}
	return a
}

// canon is a canonical text for JSON equality (numbers compared by value).
func canon(v any) string {
	switch v := v.(type) {
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok {
			return "n:" + r.RatString()
		}
	case float64:
		if r := new(big.Rat).SetFloat64(v); r != nil {
			return "n:" + r.RatString()
		}
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = canon(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			kb, _ := json.Marshal(k)
			parts[i] = string(kb) + ":" + canon(v[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
