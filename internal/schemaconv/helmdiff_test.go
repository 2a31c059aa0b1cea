package schemaconv

import (
	"bytes"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	helmutil "helm.sh/helm/v4/pkg/chart/common/util"
	helmchart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// FuzzHelmAccepts is the differential form of the package's main promise:
// whenever Helm accepts a user override (merged over values.yaml and
// validated against the original schema), the CRD accepts the override as
// spec without pruning anything. Both Helms are asked: v4, which
// helm-controller v1.6.2 runs, and v3.22; the CRD must accept what either
// accepts.
func FuzzHelmAccepts(f *testing.F) {
	seeds := []struct{ schema, values, override string }{
		{`{"properties":{"a":{"type":"string","enum":["x","y"]},"b":{"type":["integer","string"]}},"required":["a"]}`, "a: x\n", `{"a":null,"b":"3"}`},
		{`{"properties":{"o":{"type":"object","required":["r"],"properties":{"r":{"type":"string","minLength":2}},"additionalProperties":false}}}`, "o:\n  r: ab\n", `{"o":{"r":"cd"}}`},
		{`{"properties":{"l":{"type":"array","items":{"type":"object","required":["n"],"properties":{"n":{"type":"integer","minimum":1}}}}}}`, "l: []\n", `{"l":[{"n":2}]}`},
		{`{"properties":{"m":{"type":"object","additionalProperties":{"type":"string","pattern":"^v"}}}}`, "m:\n  k: v1\n", `{"m":{"k":null,"j":"v2"}}`},
		{`{"properties":{"u":{"anyOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"boolean"}]}}}`, "", `{"u":{"a":"x","b":1}}`},
		{`{"$defs":{"n":{"type":"object","properties":{"k":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"properties":{"t":{"$ref":"#/$defs/n"}}}`, "", `{"t":{"k":[{"k":[{"k":[]}]}]}}`},
	}
	for _, s := range seeds {
		f.Add([]byte(s.schema), []byte(s.values), []byte(s.override))
	}
	f.Fuzz(func(t *testing.T, schema, values, override []byte) {
		if bytes.Contains(schema, []byte("http")) || bytes.Contains(schema, []byte("$ref")) && !bytes.Contains(schema, []byte(`"$ref":"#`)) {
			return // Helm would fetch or read files
		}
		if !helmV4Accepts(schema, values, override) && !helmV3Accepts(schema, values, override) {
			return // Helm rejects it: nothing to check
		}
		res, err := Convert(schema, values, Options{})
		if err != nil {
			t.Fatalf("Helm accepts the schema, Convert fails: %v", err)
		}
		chk, errs := newCRDChecker(t, res.Schema)
		if len(errs) > 0 {
			t.Fatalf("invalid CRD: %v", errs)
		}
		if hasChartRules(res.Schema) {
			return
		}
		spec := decodeValues(t, override)
		if pruned, errs := chk.check(spec); len(pruned) > 0 || len(errs) > 0 {
			t.Fatalf("Helm accepts %s but the CRD prunes %v / rejects %v", override, pruned, errs)
		}
	})
}

func helmV3Accepts(schema, values, override []byte) bool {
	defaults, err := chartutil.ReadValues(values)
	if err != nil {
		return false
	}
	user, err := chartutil.ReadValues(override)
	if err != nil {
		return false
	}
	merged := chartutil.CoalesceTables(user.AsMap(), defaults.AsMap())
	return chartutil.ValidateAgainstSingleSchema(merged, schema) == nil
}

// helmV4Accepts merges as Helm v4 does: values.yaml read by its loader (all
// YAML documents), nulls of values.yaml dropped (util.CoalesceValues).
func helmV4Accepts(schema, values, override []byte) bool {
	defaults, err := loader.LoadValues(bytes.NewReader(values))
	if err != nil {
		return false
	}
	user, err := loader.LoadValues(bytes.NewReader(override))
	if err != nil {
		return false
	}
	c := &helmchart.Chart{Metadata: &helmchart.Metadata{APIVersion: "v2", Name: "fuzz", Version: "0.0.0"}, Values: defaults, Schema: schema}
	merged, err := helmutil.CoalesceValues(c, user)
	if err != nil {
		return false
	}
	return helmutil.ValidateAgainstSingleSchema(merged, schema) == nil
}
