package valuescheck

import (
	"strings"
	"sync"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"

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
// Unlike TestCorpusAgreement no case is left out, so each chart's null cases
// are all checked; the number of dropped-but-admitted nulls must be zero.
func TestNullsGetHelmsVerdict(t *testing.T) {
	quietHelm(t)
	charts := corpus.Load(t)
	var (
		mu    sync.Mutex
		total = newStats()
	)
	t.Run("chart", func(t *testing.T) {
		for _, cc := range charts {
			t.Run(cc.Name, func(t *testing.T) {
				t.Parallel()
				st := nullCases(t, cc)
				mu.Lock()
				total.merge(st)
				mu.Unlock()
			})
		}
	})
	total.log(t)
	if n := len(total.disagreements); n > 0 {
		shown := total.disagreements
		if len(shown) > 15 {
			shown = shown[:15]
		}
		t.Fatalf("%d null case(s) without Helm's verdict; the first:\n%s", n, strings.Join(shown, "\n"))
	}
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
	for _, m := range mutations(v.root, oracle.Values) {
		if m.kind != kNullDefault && m.kind != kNullNoDefault && m.kind != kRequiredNull {
			continue
		}
		specJSON := mustJSON(t, m.spec)
		st.record(t, m, c.Name, checker, v, apiVersion, res.CRD.Spec.Names.Kind, specJSON, helmVerdict(oracle, specJSON),
			func(b []byte) error { return helmVerdict(oracle, b) })
	}
	if len(st.disagreements) > 0 {
		t.Errorf("%d null case(s) without Helm's verdict", len(st.disagreements))
	}
	return st
}
