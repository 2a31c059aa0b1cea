package schemaconv

import (
	"bytes"
	"encoding/json"
	"github.com/chartkind/chartkind/internal/corpus"
	"sort"
	"strings"
	"testing"
)

// TestCorpus converts every chart of the shared corpus and checks the result
// with the API server's own code: the CRD is valid, and the chart's
// values.yaml, an empty spec and values.yaml with every top-level key set to
// null are accepted without pruning anything.
func TestCorpus(t *testing.T) {
	charts := corpus.Load(t)
	var sizes []int
	totalWarnings := 0
	for _, ch := range charts {
		for _, opts := range []Options{{}, {Defaults: true}} {
			name := ch.Name
			if opts.Defaults {
				name += "/defaults"
			}
			t.Run(name, func(t *testing.T) {
				res, err := Convert(ch.Schema, ch.Values, opts)
				if err != nil {
					t.Fatalf("Convert: %v", err)
				}
				for _, w := range res.Warnings {
					if strings.Contains(w, "accepting any spec") || strings.Contains(w, "CRD would be invalid") {
						t.Errorf("self-check fallback used: %s", w)
					}
				}
				out, _ := json.Marshal(res.Schema)
				if !opts.Defaults {
					sizes = append(sizes, len(out))
					totalWarnings += len(res.Warnings)
				}
				t.Logf("%d bytes in, %d bytes out, %d warnings", len(ch.Schema), len(out), len(res.Warnings))

				chk, errs := newCRDChecker(t, res.Schema)
				if len(errs) > 0 {
					t.Fatalf("CRD invalid:\n%s", firstN(errs, 10))
				}
				values := decodeValues(t, ch.Values)
				cases := map[string]map[string]any{
					"values.yaml": values,
					"{}":          {},
				}
				nulls := map[string]any{}
				for k := range decodeValues(t, ch.Values) {
					nulls[k] = nil
				}
				cases["top-level nulls"] = nulls
				for name, spec := range cases {
					pruned, errs := chk.check(spec)
					if len(pruned) > 0 {
						sort.Strings(pruned)
						t.Errorf("%s: pruned fields:\n%s", name, firstN(pruned, 10))
					}
					if len(errs) > 0 {
						t.Errorf("%s: rejected:\n%s", name, firstN(errs, 10))
					}
				}
			})
		}
	}
	sort.Ints(sizes)
	if len(sizes) > 0 {
		t.Logf("charts: %d, output bytes: median %d, largest %d; warnings total %d", len(sizes), sizes[len(sizes)/2], sizes[len(sizes)-1], totalWarnings)
	}
}

// TestCorpusDeterministic converts every corpus chart twice.
func TestCorpusDeterministic(t *testing.T) {
	for _, ch := range corpus.Load(t) {
		a, err := Convert(ch.Schema, ch.Values, Options{Defaults: true})
		if err != nil {
			t.Fatalf("%s: %v", ch.Name, err)
		}
		b, err := Convert(ch.Schema, ch.Values, Options{Defaults: true})
		if err != nil {
			t.Fatalf("%s: %v", ch.Name, err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Errorf("%s: two conversions differ", ch.Name)
		}
	}
}
