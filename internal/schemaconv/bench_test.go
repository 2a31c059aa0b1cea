package schemaconv

import (
	"encoding/json"
	"github.com/chartkind/chartkind/internal/corpus"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// BenchmarkLargest converts the largest schema of the corpus. Its baseline,
// measured in the same run, is what Helm itself does with that schema on every
// install and upgrade: compile it and validate the chart's values against it.
// Compare convert to helm-validate as a ratio; absolute figures depend on the
// machine.
func BenchmarkLargest(b *testing.B) {
	var largest corpus.Chart
	for _, ch := range corpus.Load(b) {
		if len(ch.Schema) > len(largest.Schema) {
			largest = ch
		}
	}
	b.Logf("largest corpus schema: %s (%d bytes)", largest.Name, len(largest.Schema))

	b.Run("helm-validate", func(b *testing.B) {
		values, err := chartutil.ReadValues(largest.Values)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := chartutil.ValidateAgainstSingleSchema(values, largest.Schema); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("convert", func(b *testing.B) {
		var out int
		b.ReportAllocs()
		for b.Loop() {
			res, err := Convert(largest.Schema, largest.Values, Options{})
			if err != nil {
				b.Fatal(err)
			}
			j, _ := json.Marshal(res.Schema)
			out = len(j)
		}
		b.ReportMetric(float64(out), "out-bytes")
		b.ReportMetric(float64(len(largest.Schema)), "in-bytes")
	})
}
