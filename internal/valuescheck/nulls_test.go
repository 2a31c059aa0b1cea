package valuescheck

import (
	"bytes"
	"os"
	"strings"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	helmutil "helm.sh/helm/v4/pkg/chart/common/util"
	helmchart "helm.sh/helm/v4/pkg/chart/v2"
	chartutil4 "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/generate"
)

// TestNullsGetHelmsVerdict: for every corpus chart, a null at every path the
// generator reaches (each top-level and nested property, map entry and array
// item's property, with and without a chart default, required or not) gets
// Helm's verdict on the spec as written, from the CRD and the webhook
// together. The API server drops the null of a field that is neither
// nullable nor defaulted before the webhook sees it (crd.Checker does what
// the API server does, with its code); the generated CRD makes every
// optional field nullable, so no such null is dropped and Helm's verdict on
// it is given: refused where Helm refuses (e.g. null for `type: integer`
// without a default), accepted where Helm accepts (null removing a default).
// A required key's null is dropped and the object then refused for the
// missing key, as Helm refuses it.
//
// Every top-level null is checked and up to maxNestedNulls nested ones per
// chart (all with CHARTKIND_ALL_NULLS=1); the number of dropped-but-admitted
// nulls must be zero.
func TestNullsGetHelmsVerdict(t *testing.T) {
	quietHelm(t)
	charts := corpus.Load(t)
	total := eachChart(t, charts, nullCases)
	total.failOnDisagreements(t, "null case(s) without Helm's verdict")
	if total.normalized > 0 {
		t.Fatalf("%d null(s) admitted but dropped by the API server before the webhook", total.normalized)
	}
	var n int
	for _, k := range total.kinds {
		n += k.total
	}
	if n < len(charts) {
		t.Fatalf("only %d null cases over %d charts", n, len(charts))
	}
}

func nullCases(t *testing.T, cc corpus.Chart) *stats {
	st := newStats()
	c, err := chart.Load(cc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	def, err := definition.ForChart(c.Name, c.Version, v1alpha1.ChartTemplate{Name: c.Name, SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}})
	if err != nil {
		t.Fatal(err)
	}
	def.Spec.Release.Prefix = "x-"
	res, err := generate.CRD(generate.Input{Definition: def, Chart: c})
	if err != nil {
		t.Fatal(err)
	}
	checker, err := crd.NewChecker(res.CRD, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	oracle := loadV4(t, cc.Dir)
	if len(v.Unchecked()) > 0 {
		cp := *oracle
		cp.Schema = standInSchema(t, oracle.Schema)
		oracle = &cp
	}
	apiVersion := res.CRD.Spec.Group + "/" + crd.Version
	fast := newCompiledOracle(t, oracle)
	n := 0
	for _, m := range nullMutations(mutations(v.root, oracle.Values)) {
		specJSON := mustJSON(t, m.spec)
		helmUser := fast.verdict(t, specJSON)
		// The compiled oracle is Helm's install path with the schema compiled
		// once; the first cases of every chart also go the whole way.
		if n++; n <= 10 {
			if full := helmVerdict(oracle, specJSON); (full == nil) != (helmUser == nil) {
				t.Fatalf("%s: the compiled oracle says %v, Helm says %v", m, helmUser, full)
			}
		}
		st.record(t, m, c.Name, checker, v, apiVersion, res.CRD.Spec.Names.Kind, specJSON, helmUser,
			func(b []byte) error { return fast.verdict(t, b) })
	}
	if len(st.disagreements) > 0 {
		t.Errorf("%d null case(s) without Helm's verdict", len(st.disagreements))
	}
	return st
}

// maxNestedNulls bounds the nested null cases of one chart, so the test fits
// the unit suite: a few corpus charts have thousands of nested paths and
// values.yaml files of ~100 KB that Helm copies on every merge.
// CHARTKIND_ALL_NULLS=1 checks every one (measured: 20,063 cases on the 60
// corpus charts, all with Helm's verdict, none dropped).
const maxNestedNulls = 150

// nullMutations keeps the null cases: every top-level one, and the nested
// ones spread evenly over the schema up to maxNestedNulls.
func nullMutations(all []mutation) []mutation {
	var top, nested []mutation
	for _, m := range all {
		if m.kind != kNullDefault && m.kind != kNullNoDefault && m.kind != kRequiredNull {
			continue
		}
		if strings.Count(m.path, ".") == 1 && !strings.Contains(m.path, "[") {
			top = append(top, m)
		} else {
			nested = append(nested, m)
		}
	}
	if len(nested) > maxNestedNulls && os.Getenv("CHARTKIND_ALL_NULLS") == "" {
		picked := make([]mutation, 0, maxNestedNulls)
		for i := 0; i < maxNestedNulls; i++ {
			picked = append(picked, nested[i*len(nested)/maxNestedNulls])
		}
		nested = picked
	}
	return append(top, nested...)
}

// compiledOracle is helmVerdict with the chart's schema compiled once, with
// the settings of Helm v4's util.ValidateAgainstSingleSchema (default draft,
// resource file:///values.schema.json; the corpus schemas' external
// references are stood in for before), instead of once per call: the null
// cases are many, and compiling the largest corpus schema takes ~50 ms.
// Merging is Helm's own code. nullCases checks it against helmVerdict on the
// first cases of every chart. Corpus charts have no subcharts, so the one
// schema is all Helm checks.
type compiledOracle struct {
	chart  *helmchart.Chart
	schema *jsonschema.Schema
}

func newCompiledOracle(t testing.TB, hc *helmchart.Chart) *compiledOracle {
	t.Helper()
	if len(hc.Dependencies()) > 0 {
		t.Fatalf("chart %s has subcharts; the compiled oracle checks one schema", hc.Name())
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(hc.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///values.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("file:///values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return &compiledOracle{chart: hc, schema: sch}
}

func (o *compiledOracle) verdict(t testing.TB, specJSON []byte) error {
	values, err := helmControllerReads(specJSON)
	if err != nil {
		return err
	}
	if err := chartutil4.ProcessDependencies(o.chart, values); err != nil {
		return err
	}
	merged, err := helmutil.CoalesceValues(o.chart, values)
	if err != nil {
		return err
	}
	return o.schema.Validate(merged.AsMap())
}
