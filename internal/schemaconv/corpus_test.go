package schemaconv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/corpus"
)

// TestCorpus converts every chart of the shared corpus and checks the result
// with the API server's own code: the CRD is valid, and the chart's
// values.yaml, an empty spec and values.yaml with every top-level key set to
// null are accepted without pruning anything. The schema also survives the
// YAML round trip of `chartkind generate` unchanged, as the API server
// decodes it (int64 and float64 apart): what is printed is what is applied.
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
				if diff := yamlRoundTrip(t, out); diff != "" {
					t.Errorf("the schema changes through YAML: %s", diff)
				}
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

// yamlRoundTrip prints the schema as YAML, as `chartkind generate` does,
// reads it back as kubectl does (YAML to JSON) and compares both as the API
// server decodes them (k8s.io/apimachinery/pkg/util/json: integers as int64,
// other numbers as float64). It returns "" when they are equal, else the
// first node that differs.
func yamlRoundTrip(t *testing.T, js []byte) string {
	t.Helper()
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	back, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := utiljson.Unmarshal(js, &a); err != nil {
		t.Fatal(err)
	}
	if err := utiljson.Unmarshal(back, &b); err != nil {
		t.Fatal(err)
	}
	return firstDiff("#", a, b)
}

func firstDiff(path string, a, b any) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return path
		}
		for _, k := range sortedKeys(x) {
			if d := firstDiff(path+"/"+k, x[k], y[k]); d != "" {
				return d
			}
		}
		if len(x) != len(y) {
			return path + " (keys)"
		}
		return ""
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return path
		}
		for i := range x {
			if d := firstDiff(path+"/"+itoa(i), x[i], y[i]); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%s: %#v printed, %#v read back", path, a, b)
	}
	return ""
}

func itoa(i int) string { return fmt.Sprint(i) }
