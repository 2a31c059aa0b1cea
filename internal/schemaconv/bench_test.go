package schemaconv

import (
	"encoding/json"
	"testing"
)

// BenchmarkConvertLargest converts the largest schema of the corpus.
func BenchmarkConvertLargest(b *testing.B) {
	var largest corpusChart
	for _, ch := range loadCorpus(b) {
		if len(ch.schema) > len(largest.schema) {
			largest = ch
		}
	}
	b.Logf("largest corpus schema: %s (%d bytes)", largest.name, len(largest.schema))
	var out int
	b.ReportAllocs()
	for b.Loop() {
		res, err := Convert(largest.schema, largest.values, Options{})
		if err != nil {
			b.Fatal(err)
		}
		j, _ := json.Marshal(res.Schema)
		out = len(j)
	}
	b.ReportMetric(float64(out), "out-bytes")
	b.ReportMetric(float64(len(largest.schema)), "in-bytes")
}
