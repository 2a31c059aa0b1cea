package schemachange

import (
	"encoding/json"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/crd"
)

// props parses a JSONSchemaProps written as JSON, to keep the tables readable.
func props(t testing.TB, s string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	var p apiextensionsv1.JSONSchemaProps
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("schema %s: %v", s, err)
	}
	return &p
}

// render lists changes as "Kind path: detail", the form the tables use.
func render(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Kind.String() + " " + c.String()
	}
	return out
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     []string
	}{
		// Properties.
		{"property removed from a closed object is pruned",
			`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}`,
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			[]string{"PropertyRemoved spec.b: property removed: its values would be pruned"}},
		{"property added",
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
			[]string{"PropertyAdded spec.b: property added (integer)"}},
		{"property removed from an open object is kept unvalidated",
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"string"},"b":{"type":"string","maxLength":3}}}`,
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"string"}}}`,
			[]string{"TypeWidened spec.b: type widened from string to any (values kept unvalidated)"}},
		{"object turned into a map: old properties become map entries",
			`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			[]string{
				"ObjectOpened spec: object opened: unknown fields are kept",
				"TypeChanged spec.b: type changed from integer to string",
			}},
		{"property described in an open object is now constrained",
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true}`,
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"string"}}}`,
			[]string{"TypeChanged spec.a: type changed from any to string"}},
		{"map key described as a property with the same schema: nothing changes",
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			nil},

		// Types.
		{"type changed", `{"type":"string"}`, `{"type":"integer"}`,
			[]string{"TypeChanged spec: type changed from string to integer"}},
		{"integer to number widens", `{"type":"integer"}`, `{"type":"number"}`,
			[]string{"TypeWidened spec: type widened from integer to number"}},
		{"number to integer narrows", `{"type":"number"}`, `{"type":"integer"}`,
			[]string{"TypeChanged spec: type changed from number to integer"}},
		{"string to int-or-string widens", `{"type":"string"}`, `{"x-kubernetes-int-or-string":true}`,
			[]string{"TypeWidened spec: type widened from string to int-or-string"}},
		{"int-or-string to string narrows", `{"x-kubernetes-int-or-string":true}`, `{"type":"string"}`,
			[]string{"TypeChanged spec: type changed from int-or-string to string"}},
		{"disjoint types hide the details of the old node",
			`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
			`{"type":"string","maxLength":3}`,
			[]string{"TypeChanged spec: type changed from object to string"}},
		{"anything to an object with properties",
			`{"x-kubernetes-preserve-unknown-fields":true}`,
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			[]string{
				"TypeChanged spec: type changed from any to object",
				"ObjectClosed spec: object closed: fields other than a would be pruned",
				"TypeChanged spec.a: type changed from any to string",
			}},
		{"object to anything", `{"type":"object","properties":{"a":{"type":"string"}}}`, `{"x-kubernetes-preserve-unknown-fields":true}`,
			[]string{"TypeWidened spec: type widened from object to any (values kept unvalidated)"}},

		// Enums.
		{"enum narrowed", `{"type":"string","enum":["a","b","c"]}`, `{"type":"string","enum":["a","b"]}`,
			[]string{`EnumNarrowed spec: enum narrowed: "c" no longer allowed`}},
		{"enum widened", `{"type":"string","enum":["a"]}`, `{"type":"string","enum":["a","b"]}`,
			[]string{`EnumWidened spec: enum widened: "b" now allowed`}},
		{"enum added", `{"type":"integer"}`, `{"type":"integer","enum":[1,2]}`,
			[]string{`EnumNarrowed spec: enum added: only 1, 2 allowed`}},
		{"enum removed", `{"type":"integer","enum":[1,2]}`, `{"type":"integer"}`,
			[]string{`EnumWidened spec: enum removed (was 1, 2)`}},
		{"enum values swapped", `{"type":"string","enum":["a","b"]}`, `{"type":"string","enum":["a","c"]}`,
			[]string{`EnumNarrowed spec: enum narrowed: "b" no longer allowed ("c" added)`}},
		{"enum order does not matter", `{"type":"string","enum":["a","b"]}`, `{"type":"string","enum":["b","a"]}`, nil},
		{"nullable enum rule narrowed (the converter's self in [...])",
			`{"type":"string","nullable":true,"maxLength":5,"x-kubernetes-validations":[{"rule":"self in [\"small\", \"large\"]","message":"must be one of \"small\", \"large\""}]}`,
			`{"type":"string","nullable":true,"maxLength":5,"x-kubernetes-validations":[{"rule":"self in [\"small\"]","message":"must be one of \"small\""}]}`,
			[]string{`EnumNarrowed spec: enum narrowed: "large" no longer allowed`}},
		{"nullable enum rule widened",
			`{"type":"integer","nullable":true,"x-kubernetes-validations":[{"rule":"self in [1, 2]"}]}`,
			`{"type":"integer","nullable":true,"x-kubernetes-validations":[{"rule":"self in [1, 2, 3]"}]}`,
			[]string{`EnumWidened spec: enum widened: 3 now allowed`}},
		{"enum moved into a rule when the field became nullable",
			`{"type":"string","enum":["a","b"]}`,
			`{"type":"string","nullable":true,"maxLength":1,"x-kubernetes-validations":[{"rule":"self in [\"a\", \"b\"]"}]}`,
			[]string{"NullableAdded spec: now nullable", "BoundsTightened spec: maxLength added: 1"}},

		// Required.
		{"required added", `{"type":"object","properties":{"a":{"type":"string"}}}`, `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
			[]string{"RequiredAdded spec.a: now required"}},
		{"required removed", `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`, `{"type":"object","properties":{"a":{"type":"string"}}}`,
			[]string{"RequiredRemoved spec.a: no longer required"}},

		// Open and closed objects.
		{"object closed",
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"string"}}}`,
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			[]string{"ObjectClosed spec: object closed: fields other than a would be pruned"}},
		{"map closed",
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			[]string{"ObjectClosed spec: object closed: fields other than a would be pruned"}},
		{"object closed with no properties left",
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true}`,
			`{"type":"object"}`,
			[]string{"ObjectClosed spec: object closed: all its fields would be pruned"}},
		{"object opened",
			`{"type":"object","properties":{"a":{"type":"string"}}}`,
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"string"}}}`,
			[]string{"ObjectOpened spec: object opened: unknown fields are kept"}},
		{"map values narrowed",
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			`{"type":"object","additionalProperties":{"type":"string","maxLength":5}}`,
			[]string{"BoundsTightened spec[*]: maxLength added: 5"}},
		{"open object values narrowed to a map",
			`{"type":"object","x-kubernetes-preserve-unknown-fields":true}`,
			`{"type":"object","additionalProperties":{"type":"string"}}`,
			[]string{"TypeChanged spec[*]: type changed from any to string"}},

		// Arrays.
		{"items type changed",
			`{"type":"object","properties":{"items":{"type":"array","items":{"type":"string"}}}}`,
			`{"type":"object","properties":{"items":{"type":"array","items":{"type":"integer"}}}}`,
			[]string{"TypeChanged spec.items[*]: type changed from string to integer"}},
		{"required added in array items",
			`{"type":"array","items":{"type":"object","properties":{"host":{"type":"string"},"port":{"type":"integer"}}}}`,
			`{"type":"array","items":{"type":"object","properties":{"host":{"type":"string"},"port":{"type":"integer"}},"required":["port"]}}`,
			[]string{"RequiredAdded spec[*].port: now required"}},

		// Patterns.
		{"pattern added", `{"type":"string"}`, `{"type":"string","pattern":"^v[0-9]+$"}`,
			[]string{"PatternAdded spec: pattern added: ^v[0-9]+$"}},
		{"pattern changed", `{"type":"string","pattern":"^a"}`, `{"type":"string","pattern":"^b"}`,
			[]string{"PatternChanged spec: pattern changed from ^a to ^b"}},
		{"pattern removed", `{"type":"string","pattern":"^a"}`, `{"type":"string"}`,
			[]string{"PatternRemoved spec: pattern removed (was ^a)"}},

		// Bounds.
		{"maximum tightened", `{"type":"integer","maximum":10}`, `{"type":"integer","maximum":5}`,
			[]string{"BoundsTightened spec: maximum tightened from 10 to 5"}},
		{"maximum loosened", `{"type":"integer","maximum":5}`, `{"type":"integer","maximum":10}`,
			[]string{"BoundsLoosened spec: maximum loosened from 5 to 10"}},
		{"maximum made exclusive", `{"type":"number","maximum":5}`, `{"type":"number","maximum":5,"exclusiveMaximum":true}`,
			[]string{"BoundsTightened spec: maximum tightened from 5 to 5 (exclusive)"}},
		{"minimum made inclusive", `{"type":"number","minimum":5,"exclusiveMinimum":true}`, `{"type":"number","minimum":5}`,
			[]string{"BoundsLoosened spec: minimum loosened from 5 (exclusive) to 5"}},
		{"minimum raised", `{"type":"integer","minimum":0}`, `{"type":"integer","minimum":1}`,
			[]string{"BoundsTightened spec: minimum tightened from 0 to 1"}},
		{"minimum lowered", `{"type":"number","minimum":0.5}`, `{"type":"number","minimum":-1.5}`,
			[]string{"BoundsLoosened spec: minimum loosened from 0.5 to -1.5"}},
		{"minimum added", `{"type":"integer"}`, `{"type":"integer","minimum":1}`,
			[]string{"BoundsTightened spec: minimum added: 1"}},
		{"maximum removed", `{"type":"integer","maximum":1}`, `{"type":"integer"}`,
			[]string{"BoundsLoosened spec: maximum removed (was 1)"}},
		{"string lengths", `{"type":"string","minLength":1,"maxLength":10}`, `{"type":"string","minLength":2,"maxLength":20}`,
			[]string{"BoundsLoosened spec: maxLength loosened from 10 to 20", "BoundsTightened spec: minLength tightened from 1 to 2"}},
		{"item counts", `{"type":"array","items":{"type":"string"},"maxItems":3}`, `{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2}`,
			[]string{"BoundsTightened spec: maxItems tightened from 3 to 2", "BoundsTightened spec: minItems added: 1"}},
		{"property counts", `{"type":"object","additionalProperties":{"type":"string"},"minProperties":2}`, `{"type":"object","additionalProperties":{"type":"string"},"maxProperties":4,"minProperties":1}`,
			[]string{"BoundsTightened spec: maxProperties added: 4", "BoundsLoosened spec: minProperties loosened from 2 to 1"}},
		{"multipleOf to a multiple tightens", `{"type":"integer","multipleOf":2}`, `{"type":"integer","multipleOf":4}`,
			[]string{"BoundsTightened spec: multipleOf changed from 2 to 4"}},
		{"multipleOf to a divisor loosens", `{"type":"integer","multipleOf":4}`, `{"type":"integer","multipleOf":2}`,
			[]string{"BoundsLoosened spec: multipleOf loosened from 4 to 2"}},
		{"multipleOf to an unrelated step", `{"type":"integer","multipleOf":2}`, `{"type":"integer","multipleOf":3}`,
			[]string{"BoundsTightened spec: multipleOf changed from 2 to 3"}},
		{"multipleOf added", `{"type":"integer"}`, `{"type":"integer","multipleOf":3}`,
			[]string{"BoundsTightened spec: multipleOf added: 3"}},

		// Nullable.
		{"nullable removed", `{"type":"string","nullable":true}`, `{"type":"string"}`,
			[]string{"NullableRemoved spec: no longer nullable: stored nulls would be dropped"}},
		{"nullable removed, with a default", `{"type":"string","nullable":true}`, `{"type":"string","default":"x"}`,
			[]string{
				`NullableRemoved spec: no longer nullable: stored nulls would be replaced by the default "x"`,
				`DefaultChanged spec: default added: "x"`,
			}},
		{"nullable added", `{"type":"string"}`, `{"type":"string","nullable":true}`,
			[]string{"NullableAdded spec: now nullable"}},

		// Formats.
		{"checked format added", `{"type":"string"}`, `{"type":"string","format":"uuid"}`,
			[]string{"FormatChanged spec: format added: uuid"}},
		{"checked format changed", `{"type":"string","format":"ipv4"}`, `{"type":"string","format":"ipv6"}`,
			[]string{"FormatChanged spec: format changed from ipv4 to ipv6"}},
		{"format the API server does not check", `{"type":"integer"}`, `{"type":"integer","format":"int64"}`,
			[]string{"FormatRelaxed spec: format changed from none to int64, which the API server does not check"}},
		{"format removed", `{"type":"string","format":"uuid"}`, `{"type":"string"}`,
			[]string{"FormatRelaxed spec: format removed (was uuid)"}},

		// CEL rules.
		{"rule added", `{"type":"string"}`, `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 1"}]}`,
			[]string{"CELRuleAdded spec: validation rule added: `self.size() > 1`"}},
		{"rule changed", `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 1"}]}`, `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 2"}]}`,
			[]string{"CELRuleChanged spec: validation rule changed from `self.size() > 1` to `self.size() > 2`"}},
		{"rule removed", `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 1"}]}`, `{"type":"string"}`,
			[]string{"CELRuleRemoved spec: validation rule removed: `self.size() > 1`"}},
		{"rule message changed only", `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 1","message":"a"}]}`, `{"type":"string","x-kubernetes-validations":[{"rule":"self.size() > 1","message":"b"}]}`,
			nil},

		// List types.
		{"list became a set", `{"type":"array","items":{"type":"string"}}`, `{"type":"array","items":{"type":"string"},"x-kubernetes-list-type":"set"}`,
			[]string{"ListTypeChanged spec: list type changed from atomic to set: lists with duplicates would be rejected"}},
		{"list map keys changed", `{"type":"array","items":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a","b"]},"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["a"]}`,
			`{"type":"array","items":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a","b"]},"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["b"]}`,
			[]string{"ListTypeChanged spec: list map keys changed from [a] to [b]"}},
		{"set became atomic", `{"type":"array","items":{"type":"string"},"x-kubernetes-list-type":"set"}`, `{"type":"array","items":{"type":"string"}}`,
			[]string{"ListTypeRelaxed spec: list type changed from set to atomic"}},

		// Value validations.
		{"anyOf added", `{"type":"string"}`, `{"type":"string","anyOf":[{"pattern":"^a"},{"pattern":"^b"}]}`,
			[]string{"CompositionChanged spec: allOf/anyOf/oneOf/not changed"}},
		{"anyOf removed", `{"type":"string","anyOf":[{"pattern":"^a"},{"pattern":"^b"}]}`, `{"type":"string"}`,
			[]string{"CompositionRemoved spec: allOf/anyOf/oneOf/not removed"}},

		// Annotations.
		{"default changed", `{"type":"integer","default":1}`, `{"type":"integer","default":2}`,
			[]string{"DefaultChanged spec: default changed from 1 to 2"}},
		{"default removed", `{"type":"integer","default":1}`, `{"type":"integer"}`,
			[]string{"DefaultChanged spec: default removed (was 1)"}},
		{"description changed", `{"type":"integer","description":"a"}`, `{"type":"integer","description":"b"}`,
			[]string{"DescriptionChanged spec: description changed"}},
		{"equal defaults written differently", `{"type":"object","default":{"a":1,"b":2}}`, `{"type":"object","default":{"b":2, "a":1}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(props(t, tc.old), props(t, tc.new))
			if g, w := strings.Join(render(got), "\n"), strings.Join(tc.want, "\n"); g != w {
				t.Fatalf("got:\n%s\nwant:\n%s", g, w)
			}
		})
	}
}

func TestClassifyEqualSchemasHaveNoChanges(t *testing.T) {
	s := `{"type":"object","required":["a"],"properties":{
		"a":{"type":"string","pattern":"^x","minLength":1,"maxLength":5,"format":"uuid","description":"A."},
		"b":{"type":"array","items":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"c":{"type":"integer","minimum":0,"maximum":9,"multipleOf":3}}},"x-kubernetes-list-type":"atomic"},
		"m":{"type":"object","additionalProperties":{"type":"string","nullable":true}},
		"e":{"type":"string","nullable":true,"maxLength":3,"x-kubernetes-validations":[{"rule":"self in [\"abc\", \"d\"]"}]},
		"q":{"x-kubernetes-int-or-string":true,"anyOf":[{"type":"integer"},{"type":"string"}]},
		"any":{"x-kubernetes-preserve-unknown-fields":true}}}`
	if got := Classify(props(t, s), props(t, s)); len(got) != 0 {
		t.Fatalf("equal schemas gave changes:\n%s", strings.Join(render(got), "\n"))
	}
	if got := Classify(nil, nil); len(got) != 0 {
		t.Fatalf("nil schemas gave changes: %v", render(got))
	}
}

// TestClassifyOrder checks the order promised: parents before children,
// properties by name, the same every time (maps are iterated randomly).
func TestClassifyOrder(t *testing.T) {
	old := props(t, `{"type":"object","properties":{
		"z":{"type":"string"},
		"a":{"type":"object","properties":{"y":{"type":"string"},"b":{"type":"string"}}},
		"m":{"type":"integer","maximum":3}}}`)
	new := props(t, `{"type":"object","required":["n"],"properties":{
		"a":{"type":"object","properties":{"y":{"type":"integer"}}},
		"m":{"type":"integer","maximum":2},
		"n":{"type":"string"}}}`)
	want := []string{
		"RequiredAdded spec.n: now required",
		"PropertyRemoved spec.a.b: property removed: its values would be pruned",
		"TypeChanged spec.a.y: type changed from string to integer",
		"BoundsTightened spec.m: maximum tightened from 3 to 2",
		"PropertyAdded spec.n: property added (string)",
		"PropertyRemoved spec.z: property removed: its values would be pruned",
	}
	for i := 0; i < 20; i++ {
		if got := strings.Join(render(Classify(old, new)), "\n"); got != strings.Join(want, "\n") {
			t.Fatalf("run %d:\n%s\nwant:\n%s", i, got, strings.Join(want, "\n"))
		}
	}
}

func TestKindsBreakingOrCompatible(t *testing.T) {
	breaking := []Kind{PropertyRemoved, TypeChanged, EnumNarrowed, RequiredAdded, ObjectClosed, PatternAdded, PatternChanged,
		BoundsTightened, NullableRemoved, FormatChanged, CELRuleAdded, CELRuleChanged, ListTypeChanged, CompositionChanged}
	compatible := []Kind{PropertyAdded, TypeWidened, EnumWidened, RequiredRemoved, ObjectOpened, PatternRemoved, BoundsLoosened,
		NullableAdded, FormatRelaxed, CELRuleRemoved, ListTypeRelaxed, CompositionRemoved, DefaultChanged, DescriptionChanged}
	if len(breaking)+len(compatible) != len(kindNames) {
		t.Fatalf("%d kinds listed here, %d named: a new kind must be added to this test", len(breaking)+len(compatible), len(kindNames))
	}
	for _, k := range breaking {
		if !k.Breaking() || !(Change{Kind: k}).Breaking() {
			t.Errorf("%s should be breaking", k)
		}
	}
	for _, k := range compatible {
		if k.Breaking() {
			t.Errorf("%s should be compatible", k)
		}
	}
	if got := Kind(0).String(); got != "Kind(0)" {
		t.Errorf("unknown kind prints %q", got)
	}
}

func TestBreakingFilters(t *testing.T) {
	cs := Classify(props(t, `{"type":"object","properties":{"a":{"type":"string"}}}`),
		props(t, `{"type":"object","properties":{"a":{"type":"integer","description":"x"}},"required":["a"]}`))
	if got := strings.Join(render(Breaking(cs)), "\n"); got != "RequiredAdded spec.a: now required\nTypeChanged spec.a: type changed from string to integer" {
		t.Fatalf("Breaking kept:\n%s", got)
	}
}

func TestParseEnumRule(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want string // joined values, or "-" when not an enum rule
	}{
		{`self in ["a", "b"]`, `"a" "b"`},
		{`self in ["a, b", "c]"]`, `"a, b" "c]"`},
		{`self in ["q\"uote", "\u00e9"]`, `"q\"uote" "é"`},
		{`self in [1, 2.5, -3]`, `1 2.5 -3`},
		{`self in [1.0]`, `1`},
		{`self in [true, false]`, `true false`},
		{`self in []`, ``},
		{`self in ["a"] || self == "b"`, `-`},
		{`self.size() > 1`, `-`},
		{`self in [x]`, `-`},
		{`self in ["a"`, `-`},
		{`self in ["a" "b"]`, `-`},
	} {
		vals, ok := parseEnumRule(apiextensionsv1.ValidationRule{Rule: tc.rule})
		got := strings.Join(vals, " ")
		if !ok {
			got = "-"
		}
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.rule, got, tc.want)
		}
	}
	if _, ok := parseEnumRule(apiextensionsv1.ValidationRule{Rule: `self in ["a"]`, FieldPath: ".x"}); ok {
		t.Error("a rule with a fieldPath is not the converter's enum rule")
	}
}

func TestSpecSchema(t *testing.T) {
	c := testCRD(t, props(t, `{"type":"object","properties":{"a":{"type":"string"}}}`))
	s, err := SpecSchema(c, "v1alpha1")
	if err != nil || s == nil || s.Properties["a"].Type != "string" {
		t.Fatalf("SpecSchema = %v, %v", s, err)
	}
	if _, err := SpecSchema(c, "v2"); err == nil || !strings.Contains(err.Error(), "no version v2") {
		t.Fatalf("missing version: %v", err)
	}
	delete(c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties, "spec")
	if s, err := SpecSchema(c, "v1alpha1"); s != nil || err != nil {
		t.Fatalf("no spec property: %v, %v", s, err)
	}
}

// TestClassifyCorpus runs Classify over the real charts of the corpus: a
// schema compared with itself has no change, and applying the chart defaults
// (spec.defaults: Apply) changes nothing but defaults.
func TestClassifyCorpus(t *testing.T) {
	for _, ch := range corpus.Load(t) {
		describe := generatedCRD(t, string(ch.Schema), v1alpha1.DefaultsDescribe)
		apply := generatedCRD(t, string(ch.Schema), v1alpha1.DefaultsApply)
		d, _ := SpecSchema(describe, crd.Version)
		a, _ := SpecSchema(apply, crd.Version)
		if cs := Classify(d, d.DeepCopy()); len(cs) != 0 {
			t.Errorf("%s: a schema compared with itself: %s", ch.Name, cs[0])
		}
		defaults := 0
		for _, c := range Classify(d, a) {
			if c.Kind != DefaultChanged {
				t.Errorf("%s: Describe → Apply: %s %s", ch.Name, c.Kind, c)
				continue
			}
			defaults++
		}
		t.Logf("%s: %d defaults added", ch.Name, defaults)
	}
}
