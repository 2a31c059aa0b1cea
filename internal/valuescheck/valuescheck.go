// Package valuescheck gives Helm's exact verdict on an application object's
// spec: it merges the spec with the chart's values the way `helm install` does
// and validates the result against the chart's JSON Schema (and every
// subchart's), so an object that passes here passes Helm's own check when the
// release is installed.
//
// The Helm whose verdict counts is the one that installs: helm-controller
// v1.6.2 runs Helm v4 (4.2.2) linked with santhosh-tekuri/jsonschema/v6
// v6.0.2. So the chart is read by Helm v4's loader and the values are merged
// by Helm v4's code (chartutil.ProcessDependencies and util.CoalesceValues of
// helm.sh/helm/v4), and go.mod pins jsonschema to v6.0.2 (see
// docs/validation.md). Helm v4 differs from v3 here: it drops nulls of the
// chart's own values.yaml when merging, and reads multi-document values.yaml.
//
// The generated CRD cannot say as much: a structural schema is loosened
// wherever JSON Schema is richer (oneOf, if/then, required after merging,
// conditionals, …, see docs/schema-conversion.md). The admission webhook and
// `chartkind validate` both call this package, so the two agree by
// construction.
//
// Only the schema check is done here rather than by util.ValidateAgainstSchema,
// because that function compiles every schema on every call; the schemas are
// compiled once, in New, with the same compiler settings (see
// schemaconv.Compile).
package valuescheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
	helmchart3 "helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	helmutil "helm.sh/helm/v4/pkg/chart/common/util"
	helmchart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/schemaconv"
)

// Validator checks specs of one kind. It is safe for concurrent use: New
// compiles everything once, Validate only reads it.
type Validator struct {
	// chart is what values are merged with; never modified (Validate works on
	// a copy when Helm's dependency processing would change it).
	chart *helmchart.Chart
	// root is the schema of the top-level values: the definition's inline
	// schema or the chart's values.schema.json; nil for none.
	root *jsonschema.Schema
	// subSchemas are the compiled schemas of subcharts, keyed by the first
	// byte of the chart's Schema slice. Helm's dependency processing copies
	// chart structs (aliases), but the copies share the Schema bytes, so the
	// key finds the compiled schema of any copy.
	subSchemas map[*byte]*jsonschema.Schema
	// processDeps is true when some chart of the tree declares dependencies in
	// its Chart.yaml: Helm then resolves conditions, tags, aliases and
	// import-values against each install's values, which changes the chart.
	processDeps bool
	// unchecked lists the external schema documents Helm would load at install
	// and this validator does not (values there are accepted as anything).
	unchecked []string
}

// specPath is where values live in an application object.
var specPath = field.NewPath("spec")

// New builds the validator of a kind. c is the chart the kind installs; it may
// be nil when the definition has only an inline schema. schemaOverride, when
// not empty, is the definition's spec.schema, used instead of the chart's
// values.schema.json for the top-level values (as internal/generate does for
// the CRD); subcharts keep their own schemas, because Helm checks those too.
//
// Schemas are compiled once here, as Helm 4.2 compiles them, except that
// external documents ($ref to http(s) or file URLs) are never loaded: a
// webhook must not fetch URLs named by a chart, so values under such a $ref
// are accepted as anything (Unchecked lists them). Errors name the schema and
// the JSON pointer; a schema Helm could not compile is an error here too.
func New(c *chart.Chart, schemaOverride []byte) (*Validator, error) {
	hc, err := helmChart(c)
	if err != nil {
		return nil, err
	}
	v := &Validator{chart: hc, subSchemas: map[*byte]*jsonschema.Schema{}}
	chartSource := ""
	if c != nil && c.Source != "" {
		chartSource = c.Source + ": "
	}
	source := chartSource + "values.schema.json"
	rootSchema := hc.Schema
	if len(schemaOverride) > 0 {
		rootSchema, source = schemaOverride, "spec.schema"
	}
	if rootSchema != nil {
		if v.root, err = v.compile(rootSchema, source); err != nil {
			return nil, err
		}
	}
	// Subcharts, depth first, as Helm visits them.
	var walk func(ch *helmchart.Chart, prefix string) error
	walk = func(ch *helmchart.Chart, prefix string) error {
		if ch.Metadata != nil && len(ch.Metadata.Dependencies) > 0 {
			v.processDeps = true
		}
		for _, sub := range ch.Dependencies() {
			name := prefix + "charts/" + sub.Name() + "/"
			if sub.Schema != nil {
				if _, done := v.subSchemas[schemaKey(sub.Schema)]; !done {
					sch, err := v.compile(sub.Schema, name+"values.schema.json")
					if err != nil {
						return err
					}
					v.subSchemas[schemaKey(sub.Schema)] = sch
				}
			}
			if err := walk(sub, name); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(hc, chartSource); err != nil {
		return nil, err
	}
	return v, nil
}

// compile compiles one schema document. An empty (non-nil) document is what a
// chart with an empty values.schema.json holds; Helm fails on it at install,
// and so does this.
func (v *Validator) compile(doc []byte, source string) (*jsonschema.Schema, error) {
	sch, remote, err := schemaconv.Compile(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	for _, u := range remote {
		v.unchecked = append(v.unchecked, source+": "+u)
	}
	return sch, nil
}

// schemaKey identifies a subchart's schema bytes (see Validator.subSchemas).
func schemaKey(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

// helmChart returns the chart values are merged with, as Helm v4 reads it.
// internal/chart loads charts with Helm v3's loader; helm-controller loads the
// same archive with Helm v4's (chart/v2/loader.LoadArchive). The two build the
// same tree of the same structs except for values.yaml, which Helm v4 reads
// with LoadValues (several YAML documents are merged). So the tree is copied
// into Helm v4's types and each chart's values.yaml, kept verbatim in Raw, is
// read again by LoadValues. A Chart that was not read by a loader (built by
// hand, or no chart at all) gets a chart of its own values.yaml.
func helmChart(c *chart.Chart) (*helmchart.Chart, error) {
	if c != nil && c.Helm != nil {
		hc, err := toV4(c.Helm)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Source, err)
		}
		return hc, nil
	}
	hc := &helmchart.Chart{Metadata: &helmchart.Metadata{APIVersion: helmchart.APIVersionV2, Name: "values", Version: "0.0.0"}}
	if c == nil {
		return hc, nil
	}
	hc.Metadata.Name, hc.Metadata.Version, hc.Schema = c.Name, c.Version, c.Schema
	if c.Values != nil {
		vals, err := loader.LoadValues(bytes.NewReader(c.Values))
		if err != nil {
			return nil, fmt.Errorf("%s: values.yaml: %w", c.Source, err)
		}
		hc.Values = vals
	}
	return hc, nil
}

// toV4 copies a chart tree loaded by Helm v3 into Helm v4's types (see
// helmChart). Metadata and lock go through JSON, which both versions' structs
// share field for field; files are shared.
func toV4(c *helmchart3.Chart) (*helmchart.Chart, error) {
	out := &helmchart.Chart{Schema: c.Schema, Values: c.Values}
	if err := convertJSON(c.Metadata, &out.Metadata); err != nil {
		return nil, fmt.Errorf("chart %s: Chart.yaml: %w", c.Name(), err)
	}
	if c.Lock != nil {
		if err := convertJSON(c.Lock, &out.Lock); err != nil {
			return nil, fmt.Errorf("chart %s: Chart.lock: %w", c.Name(), err)
		}
	}
	files := func(in []*helmchart3.File) []*common.File {
		var l []*common.File
		for _, f := range in {
			l = append(l, &common.File{Name: f.Name, Data: f.Data})
		}
		return l
	}
	out.Templates, out.Files, out.Raw = files(c.Templates), files(c.Files), files(c.Raw)
	for _, f := range c.Raw {
		if f.Name == "values.yaml" {
			vals, err := loader.LoadValues(bytes.NewReader(f.Data))
			if err != nil {
				return nil, fmt.Errorf("chart %s: Helm v4 cannot load values.yaml: %w", c.Name(), err)
			}
			out.Values = vals
		}
	}
	for _, d := range c.Dependencies() {
		sub, err := toV4(d)
		if err != nil {
			return nil, err
		}
		out.AddDependency(sub)
	}
	return out, nil
}

func convertJSON(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Unchecked lists the external schema documents ("<schema>: <url>") that Helm
// would load when installing but this validator stands in for with schemas
// that accept anything. Empty when the verdict is exact.
func (v *Validator) Unchecked() []string {
	if v == nil {
		return nil
	}
	return append([]string(nil), v.unchecked...)
}

// Validate merges spec with the chart's values exactly as Helm does at install
// and checks the result against every schema Helm would check. It returns one
// error per cause, rooted at "spec" (spec.persistence.size: Invalid value:
// "abc": must match pattern '…'), sorted by field; nil when Helm would accept
// the values. A nil Validator, or one without any schema, accepts everything.
//
// spec is the object's spec as the API server decoded it (int64 and float64
// numbers); it is not modified.
func (v *Validator) Validate(spec map[string]any) field.ErrorList {
	if v == nil || (v.root == nil && len(v.subSchemas) == 0) {
		return nil
	}
	user, err := asHelmReads(spec)
	if err != nil {
		return field.ErrorList{field.Invalid(specPath, field.OmitValueType{}, err.Error())}
	}
	ch := v.chart
	if v.processDeps {
		ch = copyTree(ch)
		if err := chartutil.ProcessDependencies(ch, user); err != nil {
			return field.ErrorList{mergeError(ch, user, err)}
		}
	}
	merged, err := helmutil.CoalesceValues(ch, user)
	if err != nil {
		return field.ErrorList{mergeError(ch, user, err)}
	}
	r := &report{user: user}
	v.check(ch, true, merged, specPath, nil, r)
	return r.list()
}

// asHelmReads returns a copy of spec as Helm will read it. The object's spec
// reaches Helm as the HelmRelease's values: JSON that helm-controller decodes
// with sigs.k8s.io/yaml, so every number becomes a float64 (integers too large
// for one are rounded). The copy converts numbers the same way, so the values
// checked here are the values Helm checks; anything that did not come from
// decoding JSON takes the same JSON round trip as it would to reach Helm.
func asHelmReads(spec map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(spec))
	for k, v := range spec {
		x, err := helmReads(v)
		if err != nil {
			return nil, err
		}
		out[k] = x
	}
	return out, nil
}

func helmReads(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return x, nil
	case int64:
		return float64(x), nil
	case int:
		return float64(x), nil
	case map[string]any:
		return asHelmReads(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			y, err := helmReads(e)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("spec cannot be encoded as JSON: %w", err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("spec cannot be read as Helm values: %w", err)
	}
	return out, nil
}

// copyTree copies what chartutil.ProcessDependencies changes in a
// chart tree (the dependency lists, the Chart.yaml dependency entries and the
// values it replaces), so that every Validate call starts from the chart as
// loaded, as every Helm install does. Templates, files and schemas are shared.
func copyTree(c *helmchart.Chart) *helmchart.Chart {
	cp := *c
	if c.Metadata != nil {
		md := *c.Metadata
		if c.Metadata.Dependencies != nil {
			md.Dependencies = make([]*helmchart.Dependency, len(c.Metadata.Dependencies))
			for i, d := range c.Metadata.Dependencies {
				if d == nil {
					continue
				}
				dd := *d
				dd.ImportValues = append([]any(nil), d.ImportValues...)
				md.Dependencies[i] = &dd
			}
		}
		cp.Metadata = &md
	}
	kids := make([]*helmchart.Chart, 0, len(c.Dependencies()))
	for _, k := range c.Dependencies() {
		kids = append(kids, copyTree(k))
	}
	cp.SetDependencies(kids...)
	return &cp
}

// check mirrors util.ValidateAgainstSchema: the chart's schema against
// its values, then each subchart that has values, against its own schema.
func (v *Validator) check(ch *helmchart.Chart, isRoot bool, values map[string]any, path *field.Path, elems []elem, r *report) {
	sch := v.root
	if !isRoot {
		sch = v.subSchemas[schemaKey(ch.Schema)]
		if sch == nil && ch.Schema != nil {
			// Not seen by New (cannot happen with Helm's dependency
			// processing, which only copies charts); compile it rather than
			// skip a check Helm makes, without touching the shared Validator.
			var err error
			if sch, _, err = schemaconv.Compile(ch.Schema); err != nil {
				r.add(elems, field.Invalid(path, field.OmitValueType{}, fmt.Sprintf("charts/%s/values.schema.json: %v", ch.Name(), err)))
				return
			}
		}
	}
	if sch != nil {
		if err := sch.Validate(values); err != nil {
			var ve *jsonschema.ValidationError
			if errors.As(err, &ve) {
				r.fromSchema(ve, values, path, elems)
			} else {
				r.add(elems, field.Invalid(path, field.OmitValueType{}, err.Error()))
			}
		}
	}
	for _, sub := range ch.Dependencies() {
		raw, ok := values[sub.Name()]
		if !ok || raw == nil {
			continue
		}
		subPath, subElems := path.Child(sub.Name()), appendElem(elems, elem{key: sub.Name()})
		m, ok := raw.(map[string]any)
		if !ok {
			r.add(subElems, field.TypeInvalid(subPath, shown(raw), fmt.Sprintf("must be of type object: it holds the values of subchart %s", sub.Name())))
			continue
		}
		v.check(sub, false, m, subPath, subElems, r)
	}
}

// mergeError reports why Helm could not merge the values with the chart's:
// the key of a subchart holding something other than an object.
func mergeError(ch *helmchart.Chart, user map[string]any, err error) *field.Error {
	for _, sub := range ch.Dependencies() {
		if raw, ok := user[sub.Name()]; ok {
			if _, isMap := raw.(map[string]any); !isMap {
				return field.TypeInvalid(specPath.Child(sub.Name()), shown(raw), fmt.Sprintf("must be of type object: it holds the values of subchart %s", sub.Name()))
			}
		}
	}
	return field.Invalid(specPath, field.OmitValueType{}, "Helm cannot merge these values with the chart's: "+err.Error())
}
