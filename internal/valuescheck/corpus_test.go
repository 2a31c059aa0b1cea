package valuescheck

import (
	"bytes"
	"fmt"
	"sort"
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

// TestCorpusAgreement is the agreement test against Helm as the oracle. For
// every chart of the shared corpus it generates valid and invalid specs by
// mutating values.yaml along the schema (mutate_test.go) and checks each twice:
//
//   - Validate alone gives Helm's verdict: Validate(spec) accepts exactly when
//     `helm install` with spec as the values accepts (helmVerdict: Helm v4, as
//     helm-controller v1.6.2 runs it: merge with the chart's values, validate
//     against the schema).
//   - What a user sees at admission gives Helm's verdict on the spec as
//     written: the API server's handling of the generated CRD (pruning, nulls
//     of non-nullable fields dropped, OpenAPI and CEL validation; anything
//     pruned counts as refused, as with kubectl's default --validate=strict)
//     and then the webhook's Validate on the object as stored.
//
// Every case is also given to Helm v3.22 (helmV3Verdict); the cases where the
// two Helms differ are counted and shown, and Validate must follow v4 there.
// Any disagreement with v4 fails the test, listing chart, mutation, field and
// both sides' messages.
func TestCorpusAgreement(t *testing.T) {
	quietHelm(t)
	charts := corpus.Load(t)
	total := eachChart(t, charts, agree)
	total.failOnDisagreements(t, "disagreement(s) with Helm")
	if len(charts) < 60 {
		t.Fatalf("the corpus has %d charts, expected 60", len(charts))
	}
}

// casesFor bounds the cases of a chart: Helm compiles the schema for every
// verdict, so big schemas get fewer cases (compiling the largest takes ~50 ms).
func casesFor(schemaSize int) int {
	return max(30, min(120, 3_000_000/max(schemaSize, 1)))
}

func agree(t *testing.T, cc corpus.Chart) *stats {
	st := newStats()
	c, err := chart.Load(cc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	def, err := definition.ForChart(c.Name, c.Version, v1alpha1.ChartTemplate{Name: c.Name, SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}})
	if err != nil {
		t.Fatal(err)
	}
	// Values, not names, are compared here: a prefix that fits every object
	// name (a long chart name's derived prefix leaves none; the CRD's name
	// rules would refuse every object).
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
	oracle, oracle3 := loadV4(t, cc.Dir), c.Helm
	if len(v.Unchecked()) > 0 {
		local := standInSchema(t, c.Helm.Schema)
		cp, cp3 := *oracle, *oracle3
		cp.Schema, cp3.Schema = local, local
		oracle, oracle3 = &cp, &cp3
		st.standIns++
	}
	apiVersion := res.CRD.Spec.Group + "/" + crd.Version
	kind := res.CRD.Spec.Names.Kind

	for _, m := range pick(mutations(v.root, oracle.Values), casesFor(len(c.Schema))) {
		specJSON := mustJSON(t, m.spec)
		helmUser := helmVerdict(oracle, specJSON)
		if helm3 := helmV3Verdict(oracle3, specJSON); (helm3 == nil) != (helmUser == nil) {
			st.v3Differs++
			if len(st.v3Examples) < 3 {
				st.v3Examples = append(st.v3Examples, fmt.Sprintf("%s: %s: v4 %s, v3 %s", c.Name, m, errText(helmUser), errText(helm3)))
			}
		}
		st.record(t, m, c.Name, checker, v, apiVersion, kind, specJSON, helmUser, func(b []byte) error { return helmVerdict(oracle, b) })
	}
	if len(st.disagreements) > 0 {
		t.Errorf("%d disagreement(s) with Helm", len(st.disagreements))
	}
	return st
}

// record checks one case both ways (Validate alone, CRD + webhook combined)
// against helmUser, Helm's verdict on the spec as written; helm gives Helm's
// verdict on other values (the spec as the API server would store it).
func (st *stats) record(t testing.TB, m mutation, chartName string, checker *crd.Checker, v *Validator, apiVersion, kind string,
	specJSON []byte, helmUser error, helm func([]byte) error) {
	r := checker.Check(map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   map[string]any{"name": "x", "namespace": "default"},
		"spec":       asAPIServerDecodes(t, specJSON),
	})
	pruned, crdErrs := r.Pruned, r.Invalid
	stored, _ := r.Spec.(map[string]any)
	storedJSON := mustJSON(t, stored)

	helmStored := helmUser
	changed := !bytes.Equal(storedJSON, specJSON)
	if changed {
		helmStored = helm(storedJSON)
	}
	webUser := v.Validate(asAPIServerDecodes(t, specJSON))
	webStored := webUser
	if changed {
		webStored = v.Validate(stored)
	}
	crdOK := len(pruned) == 0 && len(crdErrs) == 0
	if crdOK && changed {
		st.normalized++
	}
	combinedOK := crdOK && len(webStored) == 0

	k := st.kind(m.kind)
	k.total++
	if helmUser == nil {
		k.valid++
	}
	if !crdOK {
		k.crdRefused++
	} else if len(webStored) > 0 {
		k.webhookOnly++
	}
	agreeAlone := (len(webUser) == 0) == (helmUser == nil) && (len(webStored) == 0) == (helmStored == nil)
	agreeCombined := combinedOK == (helmUser == nil)
	if agreeAlone {
		st.agreeAlone++
	}
	if agreeCombined {
		st.agreeCombined++
	}
	if !agreeAlone || !agreeCombined {
		st.disagreements = append(st.disagreements, fmt.Sprintf("%s: %s %s\n    spec: %s\n    stored: %s\n    Helm: %s\n    Validate: %s\n    CRD: pruned %v, errors %s",
			chartName, m, verdictWord(!agreeAlone, !agreeCombined), truncate(string(specJSON), 300), truncate(string(storedJSON), 300), errText(helmUser),
			truncate(lines(webStored), 300), pruned, truncate(lines(crdErrs), 300)))
	}
}

func verdictWord(alone, combined bool) string {
	switch {
	case alone && combined:
		return "(Validate alone and combined verdict differ from Helm)"
	case alone:
		return "(Validate alone differs from Helm)"
	}
	return "(combined CRD + webhook verdict differs from Helm)"
}

func errText(err error) string {
	if err == nil {
		return "accepted"
	}
	return truncate(strings.TrimSpace(err.Error()), 400)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type kindStats struct {
	total, valid, crdRefused, webhookOnly int
}

type stats struct {
	kinds                     map[string]*kindStats
	agreeAlone, agreeCombined int
	normalized                int // cases the API server admitted but changed (nulls dropped) before Helm would see them
	v3Differs                 int // cases Helm v3.22 and Helm v4 judge differently
	v3Examples                []string
	standIns                  int // charts whose external $refs were stood in for
	disagreements             []string
	charts                    int
}

func newStats() *stats { return &stats{kinds: map[string]*kindStats{}} }

func (s *stats) kind(k string) *kindStats {
	if s.kinds[k] == nil {
		s.kinds[k] = &kindStats{}
	}
	return s.kinds[k]
}

func (s *stats) merge(o *stats) {
	for k, v := range o.kinds {
		d := s.kind(k)
		d.total += v.total
		d.valid += v.valid
		d.crdRefused += v.crdRefused
		d.webhookOnly += v.webhookOnly
	}
	s.agreeAlone += o.agreeAlone
	s.agreeCombined += o.agreeCombined
	s.normalized += o.normalized
	s.v3Differs += o.v3Differs
	s.v3Examples = append(s.v3Examples, o.v3Examples...)
	s.standIns += o.standIns
	s.disagreements = append(s.disagreements, o.disagreements...)
	s.charts++
}

func (s *stats) log(t *testing.T) {
	var all kindStats
	kinds := append([]string(nil), kindOrder...)
	for k := range s.kinds {
		if !contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	sort.SliceStable(kinds, func(i, j int) bool { return indexOf(kindOrder, kinds[i]) < indexOf(kindOrder, kinds[j]) })
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %6s %6s %8s %12s %13s\n", "mutation", "cases", "valid", "invalid", "CRD refuses", "webhook only")
	for _, k := range kinds {
		v := s.kinds[k]
		if v == nil {
			continue
		}
		fmt.Fprintf(&b, "%-16s %6d %6d %8d %12d %13d\n", k, v.total, v.valid, v.total-v.valid, v.crdRefused, v.webhookOnly)
		all.total += v.total
		all.valid += v.valid
		all.crdRefused += v.crdRefused
		all.webhookOnly += v.webhookOnly
	}
	fmt.Fprintf(&b, "%-16s %6d %6d %8d %12d %13d\n", "all", all.total, all.valid, all.total-all.valid, all.crdRefused, all.webhookOnly)
	if all.total == 0 {
		t.Fatal("no cases were generated")
	}
	t.Logf("agreement with Helm v4 over %d charts, %d cases (valid/invalid: Helm's verdict on the spec as written: %d valid, %d invalid; "+
		"%d admitted but changed by the API server before Helm would see them; %d chart(s) with external $refs stood in for):\n"+
		"  Validate alone:         %d/%d (%.2f%%)\n  CRD + webhook combined: %d/%d (%.2f%%)\n"+
		"  Helm v3.22 judges %d of the cases differently from Helm v4 (Validate follows v4)%s\n%s",
		s.charts, all.total, all.valid, all.total-all.valid, s.normalized, s.standIns,
		s.agreeAlone, all.total, 100*float64(s.agreeAlone)/float64(all.total),
		s.agreeCombined, all.total, 100*float64(s.agreeCombined)/float64(all.total),
		s.v3Differs, examples(s.v3Examples), b.String())
}

func examples(l []string) string {
	if len(l) == 0 {
		return ""
	}
	if len(l) > 5 {
		l = l[:5]
	}
	return ", e.g.\n    " + strings.Join(l, "\n    ")
}

func contains(l []string, s string) bool { return indexOf(l, s) < len(l) }

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return len(l)
}

// eachChart runs per on every chart in parallel subtests and sums their stats.
func eachChart(t *testing.T, charts []corpus.Chart, per func(*testing.T, corpus.Chart) *stats) *stats {
	var (
		mu    sync.Mutex
		total = newStats()
	)
	t.Run("chart", func(t *testing.T) {
		for _, cc := range charts {
			t.Run(cc.Name, func(t *testing.T) {
				t.Parallel()
				st := per(t, cc)
				mu.Lock()
				total.merge(st)
				mu.Unlock()
			})
		}
	})
	total.log(t)
	return total
}

// failOnDisagreements fails the test listing the first disagreements.
func (s *stats) failOnDisagreements(t *testing.T, what string) {
	t.Helper()
	if n := len(s.disagreements); n > 0 {
		shown := s.disagreements
		if len(shown) > 15 {
			shown = shown[:15]
		}
		t.Fatalf("%d %s; the first:\n%s", n, what, strings.Join(shown, "\n"))
	}
}
