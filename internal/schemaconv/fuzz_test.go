package schemaconv

import (
	"encoding/json"
	"github.com/chartkind/chartkind/internal/corpus"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FuzzConvert: arbitrary schema (and values) bytes never panic, and every
// successful conversion is a valid CRD schema that accepts an empty spec,
// without falling back to the accept-anything safety net.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{
		`{}`, `true`, `false`, `{"type":"object"}`,
		`{"properties":{"a":{"type":["string","null"],"enum":["x",null]}}}`,
		`{"$defs":{"n":{"type":"object","properties":{"k":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}`,
		`{"properties":{"a":{"$ref":"https://example.com/x.json#/definitions/y"}}}`,
		`{"allOf":[{"properties":{"a":{"type":"string"}}},{"required":["a"]}],"anyOf":[{"type":"object"},{"type":"string"}]}`,
		`{"type":"object","patternProperties":{"^a":{"type":"integer"}},"additionalProperties":false}`,
		`{"$schema":"http://json-schema.org/draft-04/schema#","properties":{"n":{"type":"number","maximum":3,"exclusiveMaximum":true}}}`,
		`{"properties":{"l":{"type":"array","items":{"type":"string"},"uniqueItems":true,"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["a"]}}}`,
		`{"properties":{"q":{"type":"string","x-kubernetes-int-or-string":true,"x-kubernetes-validations":[{"rule":"self.size() > 1"}]}}}`,
	} {
		f.Add([]byte(s), []byte("a: x\n"))
	}
	// Property schemas of the corpus, when it is there.
	dir := corpus.Dir()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "values.schema.json"))
		if err != nil {
			continue
		}
		var doc map[string]any
		if json.Unmarshal(b, &doc) != nil {
			continue
		}
		props, _ := doc["properties"].(map[string]any)
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i >= 3 {
				break
			}
			sb, _ := json.Marshal(map[string]any{"properties": map[string]any{k: props[k]}})
			if len(sb) < 4096 {
				f.Add(sb, []byte(""))
			}
		}
	}
	f.Fuzz(func(t *testing.T, schema, values []byte) {
		// No wall-clock limit here: a timed check fails on a loaded machine.
		// Blow-ups are bounded by the converter's node and byte budgets
		// (TestExplodingSchemas asserts them); a hang fails the test's
		// -timeout; speed is BenchmarkConvertLargest's business.
		res, err := Convert(schema, values, Options{})
		if err != nil {
			return
		}
		for _, w := range res.Warnings {
			if strings.Contains(w, "accepting any spec") {
				t.Fatalf("self-check fallback: %s", w)
			}
		}
		chk, errs := newCRDChecker(t, res.Schema)
		if len(errs) > 0 {
			t.Fatalf("invalid CRD: %v", errs)
		}
		if hasChartRules(res.Schema) {
			return // the chart's own CEL rules may reject anything
		}
		if pruned, errs := chk.check(map[string]any{}); len(pruned) > 0 || len(errs) > 0 {
			t.Fatalf("{} rejected: %v %v", pruned, errs)
		}
	})
}

func hasChartRules(p interface {
}) bool {
	b, _ := json.Marshal(p)
	return strings.Contains(string(b), `"x-kubernetes-validations"`) && !strings.Contains(string(b), `"rule":"self in [`)
}
