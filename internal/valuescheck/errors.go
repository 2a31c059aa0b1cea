package valuescheck

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// This file turns the jsonschema validation error tree into field errors in
// the API server's style: one error per leaf cause, on the field it is about.

// elem is one step of a field path, kept beside the rendered path so errors
// can be sorted field by field, with list indexes in numeric order.
type elem struct {
	key   string
	index int
	isIdx bool
}

func appendElem(elems []elem, e elem) []elem {
	return append(elems[:len(elems):len(elems)], e)
}

func compareElems(a, b []elem) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		switch {
		case x.isIdx && y.isIdx:
			if x.index != y.index {
				if x.index < y.index {
					return -1
				}
				return 1
			}
		case x.isIdx != y.isIdx:
			if x.isIdx {
				return -1
			}
			return 1
		default:
			if c := strings.Compare(x.key, y.key); c != 0 {
				return c
			}
		}
	}
	return len(a) - len(b)
}

type located struct {
	elems []elem
	err   *field.Error
}

// report collects the errors of one Validate call.
type report struct {
	user map[string]any // the spec as given, to tell "set to null" from "absent"
	errs []located
}

func (r *report) add(elems []elem, err *field.Error) {
	r.errs = append(r.errs, located{elems, err})
}

// list returns the errors sorted by field, then type and message, without
// duplicates (a cause reached through two allOf branches is one cause).
func (r *report) list() field.ErrorList {
	if len(r.errs) == 0 {
		return nil
	}
	sort.SliceStable(r.errs, func(i, j int) bool {
		a, b := r.errs[i], r.errs[j]
		if c := compareElems(a.elems, b.elems); c != 0 {
			return c < 0
		}
		if a.err.Type != b.err.Type {
			return a.err.Type < b.err.Type
		}
		return a.err.ErrorBody() < b.err.ErrorBody()
	})
	out := make(field.ErrorList, 0, len(r.errs))
	for i, e := range r.errs {
		if i > 0 && e.err.Error() == r.errs[i-1].err.Error() {
			continue
		}
		out = append(out, e.err)
	}
	return out
}

// fromSchema adds the leaf causes of a validation error. values is the
// instance that was validated, found at path (spec, or spec.<subchart>).
func (r *report) fromSchema(ve *jsonschema.ValidationError, values any, path *field.Path, elems []elem) {
	before := len(r.errs)
	r.walk(ve, values, path, elems)
	if len(r.errs) == before {
		// Every error kind is handled below; should a new one appear, the
		// verdict must still be Helm's.
		r.add(elems, field.Invalid(path, field.OmitValueType{}, strings.TrimSpace(ve.Error())))
	}
}

// kindMessage is jsonschema's own wording of one error kind, without the
// instance location it would normally start with.
func kindMessage(k jsonschema.ErrorKind) string {
	return strings.TrimPrefix((&jsonschema.ValidationError{ErrorKind: k}).Error(), "at '': ")
}

// at resolves an instance location to its field path, its sort key and the
// value found there.
func at(values any, path *field.Path, elems []elem, loc []string) (*field.Path, []elem, any, bool) {
	cur, found := values, true
	for _, tok := range loc {
		switch c := cur.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err == nil && i >= 0 && i < len(c) {
				path, elems, cur = path.Index(i), appendElem(elems, elem{index: i, isIdx: true}), c[i]
				continue
			}
			path, elems, cur, found = path.Child(tok), appendElem(elems, elem{key: tok}), nil, false
		case map[string]any:
			path, elems = child(path, tok), appendElem(elems, elem{key: tok})
			cur, found = c[tok]
		default:
			path, elems, cur, found = child(path, tok), appendElem(elems, elem{key: tok}), nil, false
		}
	}
	return path, elems, cur, found
}

// plainKey is a key that reads unambiguously after a dot in a field path.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// child steps into an object: spec.resources, or spec.podLabels[app.kubernetes.io/name]
// for keys a dotted path would garble.
func child(p *field.Path, key string) *field.Path {
	if plainKey.MatchString(key) {
		return p.Child(key)
	}
	return p.Key(key)
}

func (r *report) walk(ve *jsonschema.ValidationError, values any, base *field.Path, baseElems []elem) {
	path, elems, value, _ := at(values, base, baseElems, ve.InstanceLocation)
	bad := shown(value)
	switch k := ve.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.Reference, *kind.AllOf, nil:
		for _, c := range ve.Causes {
			r.walk(c, values, base, baseElems)
		}
	case *kind.AnyOf:
		r.alternatives(ve, "anyOf", values, base, baseElems, path, elems, bad)
	case *kind.OneOf:
		if len(k.Subschemas) == 2 {
			r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must match exactly one schema of oneOf (%s), but matches #%d and #%d",
				schemaPointer(ve.SchemaURL, "oneOf"), k.Subschemas[0], k.Subschemas[1])))
			return
		}
		r.alternatives(ve, "oneOf", values, base, baseElems, path, elems, bad)
	case *kind.Type:
		r.add(elems, field.TypeInvalid(path, bad, "must be of type "+orList(k.Want)))
	case *kind.Enum:
		r.add(elems, enumError(path, bad, k.Want))
	case *kind.Const:
		r.add(elems, enumError(path, bad, []any{k.Want}))
	case *kind.Required:
		for _, m := range k.Missing {
			r.add(appendElem(elems, elem{key: m}), field.Required(child(path, m), r.nullNote(appendElem(elems, elem{key: m}))))
		}
	case *kind.Dependency:
		for _, m := range k.Missing {
			r.add(appendElem(elems, elem{key: m}), field.Required(child(path, m), fmt.Sprintf("required when %s is set", k.Prop)))
		}
	case *kind.DependentRequired:
		for _, m := range k.Missing {
			r.add(appendElem(elems, elem{key: m}), field.Required(child(path, m), fmt.Sprintf("required when %s is set", k.Prop)))
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			r.add(appendElem(elems, elem{key: p}), field.Forbidden(child(path, p), "field not declared in the schema"))
		}
	case *kind.AdditionalItems:
		r.add(elems, field.TooMany(path, listLen(value), listLen(value)-k.Count))
	case *kind.FalseSchema:
		r.add(elems, field.Forbidden(path, "not allowed by the schema"))
	case *kind.Not:
		r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must not match the schema at %s", schemaPointer(ve.SchemaURL, "not"))))
	case *kind.Pattern:
		r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must match pattern '%s'", k.Want)))
	case *kind.Format:
		r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must be a valid %s", k.Want)))
	case *kind.MinLength:
		s, _ := value.(string)
		r.add(elems, field.TooShort(path, s, k.Want))
	case *kind.MaxLength:
		s, _ := value.(string)
		r.add(elems, field.TooLongCharacters(path, s, k.Want))
	case *kind.MinItems:
		r.add(elems, field.TooFew(path, k.Got, k.Want))
	case *kind.MaxItems:
		r.add(elems, field.TooMany(path, k.Got, k.Want))
	case *kind.MinProperties:
		r.add(elems, field.Invalid(path, field.OmitValueType{}, fmt.Sprintf("must have at least %d %s", k.Want, plural(k.Want, "field", "fields"))))
	case *kind.MaxProperties:
		r.add(elems, field.Invalid(path, field.OmitValueType{}, fmt.Sprintf("must have at most %d %s", k.Want, plural(k.Want, "field", "fields"))))
	case *kind.UniqueItems:
		dup := k.Duplicates[1]
		var item any
		if l, ok := value.([]any); ok && dup < len(l) {
			item = l[dup]
		}
		r.add(appendElem(elems, elem{index: dup, isIdx: true}), field.Duplicate(path.Index(dup), shown(item)))
	case *kind.Minimum:
		r.add(elems, field.Invalid(path, bad, "must be greater than or equal to "+num(k.Want)))
	case *kind.ExclusiveMinimum:
		r.add(elems, field.Invalid(path, bad, "must be greater than "+num(k.Want)))
	case *kind.Maximum:
		r.add(elems, field.Invalid(path, bad, "must be less than or equal to "+num(k.Want)))
	case *kind.ExclusiveMaximum:
		r.add(elems, field.Invalid(path, bad, "must be less than "+num(k.Want)))
	case *kind.MultipleOf:
		r.add(elems, field.Invalid(path, bad, "must be a multiple of "+num(k.Want)))
	case *kind.PropertyNames:
		why := "not allowed by the schema"
		if leaves := leafMessages(ve.Causes); len(leaves) > 0 {
			why = leaves[0]
		}
		r.add(appendElem(elems, elem{key: k.Property}), field.Invalid(child(path, k.Property), k.Property, "field name "+why))
	default:
		// contains, minContains, maxContains, content*, reference cycles and
		// vocabulary extensions: jsonschema's own wording.
		r.add(elems, field.Invalid(path, bad, kindMessage(k)))
	}
}

// alternatives reports a failed anyOf or oneOf (none matched). When the value's
// type fits no alternative, that is one type error. When it fits exactly one,
// that alternative's own causes are the useful ones. Otherwise the message
// names the first cause of each alternative.
func (r *report) alternatives(ve *jsonschema.ValidationError, keyword string, values any, base *field.Path, baseElems []elem, path *field.Path, elems []elem, bad any) {
	var fitting []*jsonschema.ValidationError
	var types []string
	seen := map[string]bool{}
	for _, c := range ve.Causes {
		if t, ok := typeMismatch(c, ve.InstanceLocation); ok {
			for _, w := range t.Want {
				if !seen[w] {
					seen[w] = true
					types = append(types, w)
				}
			}
			continue
		}
		fitting = append(fitting, c)
	}
	switch len(fitting) {
	case 0:
		r.add(elems, field.TypeInvalid(path, bad, "must be of type "+orList(types)))
	case 1:
		before := len(r.errs)
		r.walk(fitting[0], values, base, baseElems)
		if len(r.errs) == before {
			r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must match a schema of %s (%s)", keyword, schemaPointer(ve.SchemaURL, keyword))))
		}
	default:
		sub := &report{user: r.user}
		var why []string
		for i, c := range fitting {
			if i == 3 {
				why = append(why, fmt.Sprintf("and %d more", len(fitting)-i))
				break
			}
			sub.errs = sub.errs[:0]
			sub.walk(c, values, base, baseElems)
			if l := sub.list(); len(l) > 0 {
				why = append(why, relative(l[0], path))
			}
		}
		r.add(elems, field.Invalid(path, bad, fmt.Sprintf("must match a schema of %s (%s): %s", keyword, schemaPointer(ve.SchemaURL, keyword), strings.Join(why, "; or "))))
	}
}

// typeMismatch says whether an alternative failed only because the value at
// loc has a type it does not allow.
func typeMismatch(ve *jsonschema.ValidationError, loc []string) (*kind.Type, bool) {
	for {
		switch ve.ErrorKind.(type) {
		case *kind.Group, *kind.Reference, *kind.AllOf, *kind.Schema:
			if len(ve.Causes) != 1 {
				return nil, false
			}
			ve = ve.Causes[0]
			continue
		}
		break
	}
	t, ok := ve.ErrorKind.(*kind.Type)
	if !ok || len(ve.InstanceLocation) != len(loc) {
		return nil, false
	}
	return t, true
}

// relative renders an error of an alternative for the message of its parent:
// "spec.a.b: Required value" under spec.a reads "b: Required value".
func relative(e *field.Error, parent *field.Path) string {
	p := parent.String()
	switch {
	case e.Field == p:
		return e.ErrorBody()
	case strings.HasPrefix(e.Field, p+"."):
		return strings.TrimPrefix(e.Field, p+".") + ": " + e.ErrorBody()
	case strings.HasPrefix(e.Field, p+"["):
		return strings.TrimPrefix(e.Field, p) + ": " + e.ErrorBody()
	}
	return e.Error()
}

// leafMessages renders the leaf causes of an error in jsonschema's words.
func leafMessages(causes []*jsonschema.ValidationError) []string {
	var out []string
	for _, c := range causes {
		if len(c.Causes) > 0 {
			out = append(out, leafMessages(c.Causes)...)
			continue
		}
		if c.ErrorKind != nil {
			out = append(out, kindMessage(c.ErrorKind))
		}
	}
	return out
}

// nullNote explains a missing required field the user set to null: in Helm,
// null removes the chart's default, so the field is gone after merging.
func (r *report) nullNote(field []elem) string {
	var cur any = r.user
	for _, e := range field {
		m, ok := cur.(map[string]any)
		if !ok || e.isIdx {
			return ""
		}
		if cur, ok = m[e.key]; !ok {
			return ""
		}
	}
	if cur == nil {
		return "set to null, which removes the chart's default"
	}
	return ""
}

func enumError(path *field.Path, bad any, want []any) *field.Error {
	strs := make([]string, 0, len(want))
	for _, w := range want {
		s, ok := w.(string)
		if !ok {
			strs = nil
			break
		}
		strs = append(strs, s)
	}
	if strs != nil {
		return field.NotSupported(path, bad, strs)
	}
	vals := make([]string, 0, len(want))
	for _, w := range want {
		b, _ := json.Marshal(w)
		vals = append(vals, string(b))
	}
	if len(vals) == 1 {
		return field.Invalid(path, bad, "must be "+vals[0])
	}
	return field.Invalid(path, bad, "must be one of "+strings.Join(vals, ", "))
}

// shown is the value to print in a message: scalars as they are, small lists
// and objects as JSON, big ones omitted (the field path says where they are).
func shown(v any) any {
	switch x := v.(type) {
	case nil, bool, string:
		return x
	case float64:
		if x == float64(int64(x)) && x >= -1<<53 && x <= 1<<53 {
			return int64(x)
		}
		return x
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil || len(b) > 80 {
			return field.OmitValueType{}
		}
		return x
	}
	return v
}

// orList joins alternatives: "a", "a or b", "a, b or c".
func orList(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func listLen(v any) int {
	l, _ := v.([]any)
	return len(l)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// num prints a schema bound: 5, 0.5, 1e+21.
func num(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// schemaPointer names the schema keyword an error comes from: "#/properties/tls/oneOf"
// for the chart's own schema, the URL for another document.
func schemaPointer(schemaURL, keyword string) string {
	loc := schemaURL
	if _, frag, ok := strings.Cut(schemaURL, "#"); ok && strings.HasPrefix(schemaURL, "file:///values.schema.json") {
		if u, err := url.PathUnescape(frag); err == nil {
			frag = u
		}
		loc = "#" + frag
	}
	return loc + "/" + keyword
}
