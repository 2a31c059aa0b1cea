package schemaconv

import (
	"bytes"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// FuzzHelmAccepts is the differential form of the package's main promise:
// whenever Helm accepts a user override (merged over values.yaml and
// validated against the original schema), the CRD accepts the override as
// spec without pruning anything.
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
		defaults, err := chartutil.ReadValues(values)
		if err != nil {
			return
		}
		user, err := chartutil.ReadValues(override)
		if err != nil {
			return
		}
		merged := chartutil.CoalesceTables(user.AsMap(), defaults.AsMap())
		if err := chartutil.ValidateAgainstSingleSchema(merged, schema); err != nil {
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
