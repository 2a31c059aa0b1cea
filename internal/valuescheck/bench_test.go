package valuescheck

import (
	"testing"

	helmutil "helm.sh/helm/v4/pkg/chart/common/util"

	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/corpus"
)

// BenchmarkValidateLargest measures a webhook request's check on the largest
// schema of the corpus. The baseline, measured in the same run, is what Helm
// does with the same values on every install (Helm v4, as helm-controller runs
// it): util.CoalesceValues, then util.ValidateAgainstSchema, which compiles
// the schema on each call.
// Compare validate to helm as a ratio; absolute figures depend on the machine.
//
// Two specs: "valid" sets a few values, "invalid" breaks several rules, so the
// cost of turning jsonschema's errors into field errors is counted too.
func BenchmarkValidateLargest(b *testing.B) {
	quietHelm(b)
	var largest corpus.Chart
	for _, ch := range corpus.Load(b) {
		if len(ch.Schema) > len(largest.Schema) {
			largest = ch
		}
	}
	c, err := chart.Load(largest.Dir)
	if err != nil {
		b.Fatal(err)
	}
	v, err := New(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("largest corpus schema: %s (%d bytes), values.yaml %d bytes", largest.Name, len(largest.Schema), len(largest.Values))

	// Realistic specs from the agreement test's generator: a few small
	// overrides merged, all valid for "valid", all invalid for "invalid".
	valid, invalid := map[string]any{}, map[string]any{}
	hc := loadV4(b, largest.Dir)
	for _, m := range pick(mutations(v.root, hc.Values), 200) {
		spec := asAPIServerDecodes(b, mustJSON(b, m.spec))
		if m.kind == kValuesYAML || m.kind == kEmpty || len(mustJSON(b, spec)) > 1024 {
			continue
		}
		into := valid
		if len(v.Validate(spec)) > 0 {
			into = invalid
		}
		if len(into) >= 4 {
			continue
		}
		for k, x := range spec {
			if _, taken := into[k]; !taken {
				into[k] = x
			}
		}
	}
	if len(valid) == 0 || len(v.Validate(valid)) > 0 || len(v.Validate(invalid)) == 0 {
		b.Fatal("no valid or no invalid spec generated")
	}
	b.Logf("valid spec: %d bytes of JSON, invalid spec: %d bytes", len(mustJSON(b, valid)), len(mustJSON(b, invalid)))

	for _, tc := range []struct {
		name string
		spec map[string]any
	}{{"valid", valid}, {"invalid", invalid}} {
		helmValues, err := asHelmReads(tc.spec)
		if err != nil {
			b.Fatal(err)
		}
		wantOK := len(v.Validate(tc.spec)) == 0
		b.Run(tc.name+"/helm", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				merged, err := helmutil.CoalesceValues(hc, helmValues)
				if err != nil {
					b.Fatal(err)
				}
				if err := helmutil.ValidateAgainstSchema(hc, merged); (err == nil) != wantOK {
					b.Fatalf("Helm's verdict differs: %v", err)
				}
			}
		})
		b.Run(tc.name+"/validate", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok := len(v.Validate(tc.spec)) == 0; ok != wantOK {
					b.Fatal("verdict changed")
				}
			}
		})
	}
}
