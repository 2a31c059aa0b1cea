// Package schemaconv converts a Helm chart's values.schema.json (JSON Schema
// draft-04 … 2020-12) plus its values.yaml into the structural OpenAPI v3
// schema used as the .spec of a generated CustomResourceDefinition.
//
// The one rule that wins over every other consideration: the CRD must never
// reject or prune a value that Helm itself would accept. Helm validates the
// merged values (chart defaults from values.yaml + the user's overrides)
// against the full JSON Schema; a custom resource only holds the overrides,
// and the API server validates them with a much weaker schema language. So
// everything a CRD cannot express exactly is loosened (never tightened), and
// every loosening is reported as a warning naming the JSON pointer of the
// source schema node. The exact check still happens when Helm installs the
// release with the original schema.
package schemaconv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Options tunes a conversion. The zero value is the recommended setting.
type Options struct {
	// Defaults, when true, copies schema defaults into the CRD (opt-in by the
	// definition). Default: false, chart defaults are shown in descriptions
	// instead ("Default: 5432.") so they are not frozen into objects: the
	// API server writes CRD defaults into every object on create and read, so
	// a later chart version could no longer change them.
	Defaults bool

	// MaxDepth limits how deep (in schema nodes) the output may nest; deeper
	// nodes, and the second repetition of a recursive $ref, become open nodes
	// that accept anything. 0 means 32. Conversion lowers it further by itself
	// when the output would exceed MaxBytes.
	MaxDepth int

	// MaxBytes is the budget for the JSON size of the output schema. The CRD
	// is stored in etcd (1.5 MiB object limit) and may carry several versions,
	// so inlining every $ref of a big schema is not always affordable.
	// 0 means 512 KiB, which leaves room for a second version of the schema
	// in the same CRD during a migration.
	MaxBytes int
}

const (
	defaultMaxDepth = 32
	defaultMaxBytes = 512 << 10
	// maxRepeat is how often one schema may appear on the path from the root
	// (recursive $ref): the second appearance is still typed, the third is cut.
	maxRepeat = 2
)

// Result is the outcome of a successful conversion.
type Result struct {
	Schema   *apiextensionsv1.JSONSchemaProps // schema for .spec (type object)
	Warnings []string                         // things dropped/loosened, each naming the JSON pointer
}

// PathError is returned when the input cannot be used at all (it would make
// Helm fail too). Pointer locates the problem in values.schema.json as a JSON
// pointer ("#/properties/foo"); it is empty when no location is known.
type PathError struct {
	Pointer string
	Err     error
}

// Error names the pointer but not the file: the caller knows whether the
// schema came from a chart's values.schema.json or a definition's spec.schema.
func (e *PathError) Error() string {
	if e.Pointer == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("at %s: %v", e.Pointer, e.Err)
}

func (e *PathError) Unwrap() error { return e.Err }

// rootURL is where the chart schema lives for the compiler; Helm uses the
// same URL, so relative references resolve the same way.
const rootURL = "file:///values.schema.json"

// Convert converts a chart schema and the chart's values.yaml into the
// schema of a CRD's .spec. valuesYAML may be empty.
func Convert(schemaJSON, valuesYAML []byte, opts Options) (*Result, error) {
	doc, err := parseSchemaJSON(schemaJSON)
	if err != nil {
		return nil, err
	}
	values, err := parseValues(valuesYAML)
	if err != nil {
		return nil, err
	}
	root, remote, err := compile(doc)
	if err != nil {
		return nil, err
	}

	maxDepth := opts.MaxDepth
	if maxDepth <= 0 {
		maxDepth = defaultMaxDepth
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = defaultMaxBytes
	}

	var (
		props     *apiextensionsv1.JSONSchemaProps
		warnings  []string
		shrinking []string
	)
	// Degrade until the output fits the size budget: first shorten the
	// descriptions (inlined $refs repeat them), then keep them only near the
	// root, and only then limit the nesting depth (validation of deep nodes
	// is lost, so that comes last).
	steps := []budgetStep{{depth: maxDepth, descDepth: -1}, {depth: maxDepth, descMax: 120, descDepth: -1}}
	for _, dd := range []int{8, 4, 2, 0} {
		steps = append(steps, budgetStep{depth: maxDepth, descMax: 120, descDepth: dd})
	}
	for d := maxDepth * 3 / 4; d >= 2; d = d * 3 / 4 {
		steps = append(steps, budgetStep{depth: d, descMax: 120, descDepth: 0, cut: true})
	}
	for i := 0; i < len(steps); i++ {
		st := steps[i]
		c := newConverter(doc, remote, opts, st.depth)
		c.descMax, c.descDepth = st.descMax, st.descDepth
		c.maxNodes = maxBytes / 16
		props = c.convertRoot(root, values)
		warnings = c.warnings()
		size := jsonSize(props)
		exploded := c.nodes > c.maxNodes
		if size <= maxBytes && !exploded {
			if i > 0 {
				shrinking = append(shrinking, fmt.Sprintf("#: output over the %d byte budget; %s", maxBytes, st))
			}
			break
		}
		if i == len(steps)-1 {
			if exploded {
				shrinking = append(shrinking, fmt.Sprintf("#: schema expands to more than %d nodes even with %s; the rest accepts any value", c.maxNodes, st))
			} else {
				shrinking = append(shrinking, fmt.Sprintf("#: output is %d bytes, over the %d byte budget even with %s", size, maxBytes, st))
			}
			break
		}
		// Shorter descriptions do not help against too many nodes.
		for exploded && i+1 < len(steps)-1 && steps[i+1].depth == st.depth {
			i++
		}
	}
	props, warnings = selfCheck(props, append(warnings, shrinking...))
	return &Result{Schema: props, Warnings: sortedUnique(warnings)}, nil
}

// budgetStep is one level of degradation to meet Options.MaxBytes.
type budgetStep struct {
	depth     int  // MaxDepth
	descMax   int  // if > 0, descriptions are cut to their first sentence and this many runes
	descDepth int  // if >= 0, descriptions are only kept up to this depth
	cut       bool // depth is lower than requested
}

func (s budgetStep) String() string {
	out := "descriptions shortened to their first sentence"
	if s.descDepth >= 0 {
		out += fmt.Sprintf(" and kept only %d levels deep", s.descDepth)
	}
	if s.cut {
		out += fmt.Sprintf("; nodes deeper than %d levels accept any value", s.depth)
	}
	return out
}

func jsonSize(p *apiextensionsv1.JSONSchemaProps) int {
	b, err := json.Marshal(p)
	if err != nil {
		return 0
	}
	return len(b)
}

func sortedUnique(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// parseSchemaJSON decodes the schema the way Helm does (json.Number for
// numbers, nothing after the top-level value), reporting syntax errors with
// line and column.
func parseSchemaJSON(b []byte) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err == nil {
		return doc, nil
	}
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off >= 0 {
		line, col := lineCol(b, off)
		return nil, &PathError{Err: fmt.Errorf("invalid JSON at byte %d (line %d, column %d): %w", off, line, col, err)}
	}
	return nil, &PathError{Err: fmt.Errorf("invalid JSON: %w", err)}
}

func lineCol(b []byte, off int64) (line, col int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line, col = 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// parseValues reads values.yaml the way Helm does (sigs.k8s.io/yaml, so
// numbers are float64). An empty file is an empty map.
func parseValues(b []byte) (map[string]any, error) {
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	if v == nil {
		v = map[string]any{}
	}
	return v, nil
}

// compile compiles the schema exactly as Helm v3.22 does
// (pkg/chartutil/jsonschema.go: santhosh-tekuri/jsonschema/v6, default draft
// 2020-12, resource file:///values.schema.json) except for the loaders: Helm
// fetches http(s) and reads local files, which a controller must not do. Any
// external document is replaced by one in which every JSON pointer used by
// a $ref in the chart schema resolves to an empty (accept-anything) schema.
func compile(doc any) (*jsonschema.Schema, map[string]bool, error) {
	remote := map[string]bool{}
	ld := &openLoader{ptrs: externalPointers(doc), loaded: remote}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{"file": ld, "http": ld, "https": ld, "urn": ld})
	if err := c.AddResource(rootURL, doc); err != nil {
		return nil, nil, compileError(err)
	}
	sch, err := compileSafe(c)
	if err != nil {
		return nil, nil, compileError(err)
	}
	return sch, remote, nil
}

// Compile parses and compiles a chart schema with the settings Convert uses
// (Helm 3.22's, remote documents replaced by accept-anything stand-ins), so
// code that validates values (internal/valuescheck) checks against the very
// graph the CRD was converted from. remote lists the external documents that
// were stood in for, sorted; errors are *PathError.
func Compile(schemaJSON []byte) (sch *jsonschema.Schema, remote []string, err error) {
	doc, err := parseSchemaJSON(schemaJSON)
	if err != nil {
		return nil, nil, err
	}
	sch, loaded, err := compile(doc)
	if err != nil {
		return nil, nil, err
	}
	for u := range loaded {
		remote = append(remote, u)
	}
	sort.Strings(remote)
	return sch, remote, nil
}

func compileSafe(c *jsonschema.Compiler) (s *jsonschema.Schema, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unable to compile schema: %v", r)
		}
	}()
	return c.Compile(rootURL)
}

// openLoader stands in for every external document.
type openLoader struct {
	ptrs   [][]string
	loaded map[string]bool
}

func (l *openLoader) Load(u string) (any, error) {
	l.loaded[u] = true
	doc := map[string]any{}
	for _, toks := range l.ptrs {
		m := doc
		for _, t := range toks {
			next, ok := m[t].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[t] = next
			}
			m = next
		}
	}
	return doc, nil
}

// externalPointers lists the JSON pointer fragments of every $ref in doc that
// does not start with '#', i.e. that may point into another document.
func externalPointers(doc any) [][]string {
	seen := map[string]bool{}
	var out [][]string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					if r, ok := x.(string); ok && !strings.HasPrefix(r, "#") {
						if _, frag, ok := strings.Cut(r, "#"); ok && strings.HasPrefix(frag, "/") && !seen[frag] {
							seen[frag] = true
							out = append(out, pointerTokens(frag))
						}
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], "/") < strings.Join(out[j], "/") })
	return out
}

// pointerTokens splits a (possibly percent-encoded) JSON pointer.
func pointerTokens(frag string) []string {
	if u, err := url.PathUnescape(frag); err == nil {
		frag = u
	}
	frag = strings.TrimPrefix(frag, "/")
	if frag == "" {
		return nil
	}
	toks := strings.Split(frag, "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks
}

// pointerOf turns a compiled schema location into "#/json/pointer" for the
// chart's own document and leaves other documents' URLs as they are.
func pointerOf(loc string) string {
	if rest, ok := strings.CutPrefix(loc, rootURL); ok {
		if rest == "" {
			return "#"
		}
		if u, err := url.PathUnescape(rest); err == nil {
			return u
		}
		return rest
	}
	return loc
}

// compileError maps compiler errors to a PathError naming the schema node.
func compileError(err error) error {
	ptr := ""
	var (
		sve *jsonschema.SchemaValidationError
		ve  *jsonschema.ValidationError
		re  *jsonschema.InvalidRegexError
		jpe *jsonschema.JSONPointerNotFoundError
		ipe *jsonschema.InvalidJsonPointerError
		ane *jsonschema.AnchorNotFoundError
		pie *jsonschema.ParseIDError
		pae *jsonschema.ParseAnchorError
		die *jsonschema.DuplicateIDError
		dae *jsonschema.DuplicateAnchorError
	)
	switch {
	case errors.As(err, &sve):
		if errors.As(sve.Err, &ve) {
			for len(ve.Causes) > 0 {
				ve = ve.Causes[0]
			}
			ptr = "#"
			for _, t := range ve.InstanceLocation {
				ptr += "/" + strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
			}
		}
	case errors.As(err, &re):
		ptr = urlPointer(re.URL)
	case errors.As(err, &jpe):
		ptr = urlPointer(jpe.URL)
	case errors.As(err, &ipe):
		ptr = urlPointer(ipe.URL)
	case errors.As(err, &ane):
		ptr = urlPointer(ane.URL)
	case errors.As(err, &pie):
		ptr = urlPointer(pie.URL)
	case errors.As(err, &pae):
		ptr = urlPointer(pae.URL)
	case errors.As(err, &die):
		ptr = urlPointer(die.URL + "#" + die.Ptr2)
	case errors.As(err, &dae):
		ptr = urlPointer(dae.URL + "#" + dae.Ptr2)
	}
	return &PathError{Pointer: ptr, Err: err}
}

func urlPointer(u string) string {
	if _, frag, ok := strings.Cut(u, "#"); ok {
		if d, err := url.PathUnescape(frag); err == nil {
			frag = d
		}
		return "#" + frag
	}
	return "#"
}
