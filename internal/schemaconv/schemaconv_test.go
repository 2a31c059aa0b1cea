package schemaconv

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// convertOK converts and asserts that the result is a valid CRD schema.
func convertOK(t *testing.T, schema, values string, opts Options) (*Result, *crdChecker) {
	t.Helper()
	res, err := Convert([]byte(schema), []byte(values), opts)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	chk, errs := newCRDChecker(t, res.Schema)
	if len(errs) > 0 {
		b, _ := json.Marshal(res.Schema)
		t.Fatalf("invalid CRD:\n%s\nschema: %s", strings.Join(errs, "\n"), b)
	}
	return res, chk
}

// at walks "properties.a", "items" and "additionalProperties" segments.
func at(t *testing.T, p *apiextensionsv1.JSONSchemaProps, path string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	if path == "" {
		return p
	}
	segs := strings.Split(path, ".")
	for i := 0; i < len(segs); i++ {
		switch segs[i] {
		case "properties":
			i++
			q, ok := p.Properties[segs[i]]
			if !ok {
				t.Fatalf("no property %q at %s", segs[i], path)
			}
			p = &q
		case "items":
			if p.Items == nil || p.Items.Schema == nil {
				t.Fatalf("no items at %s", path)
			}
			p = p.Items.Schema
		case "additionalProperties":
			if p.AdditionalProperties == nil || p.AdditionalProperties.Schema == nil {
				t.Fatalf("no additionalProperties at %s", path)
			}
			p = p.AdditionalProperties.Schema
		default:
			t.Fatalf("bad path segment %q", segs[i])
		}
	}
	return p
}

// sameJSON compares a node with the expected JSON structurally.
func sameJSON(t *testing.T, got *apiextensionsv1.JSONSchemaProps, want string) {
	t.Helper()
	gb, _ := json.Marshal(got)
	var g, w any
	_ = json.Unmarshal(gb, &g)
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", gb, want)
	}
}

func hasWarning(res *Result, parts ...string) bool {
	for _, w := range res.Warnings {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(w, p)
		}
		if all {
			return true
		}
	}
	return false
}

const preserve = `"x-kubernetes-preserve-unknown-fields":true`

func TestConvertRules(t *testing.T) {
	tests := []struct {
		name, schema, values string
		opts                 Options
		path                 string // node to compare; "" is the spec root
		want                 string // expected node JSON
		warn                 []string
	}{
		// $ref
		{name: "ref into definitions", schema: `{"definitions":{"port":{"type":"integer","minimum":1,"description":"Port."}},"properties":{"p":{"$ref":"#/definitions/port"}},"additionalProperties":false}`,
			want: `{"type":"object","properties":{"p":{"description":"Port.","type":"integer","minimum":1,"nullable":true}}}`},
		{name: "ref into $defs, sibling description wins (2020-12)", schema: `{"$defs":{"s":{"type":"string","description":"inner"}},"properties":{"p":{"$ref":"#/$defs/s","description":"outer","maxLength":3}}}`,
			path: "properties.p", want: `{"description":"outer","type":"string","maxLength":3,"nullable":true}`},
		{name: "ref siblings ignored in draft-07", schema: `{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},"properties":{"p":{"$ref":"#/definitions/s","maxLength":3}}}`,
			path: "properties.p", want: `{"type":"string","nullable":true}`},
		{name: "ref into arbitrary pointer", schema: `{"properties":{"a":{"type":"object","properties":{"b":{"type":"boolean"}},"additionalProperties":false},"c":{"$ref":"#/properties/a/properties/b"}}}`,
			path: "properties.c", want: `{"type":"boolean","nullable":true}`},
		{name: "recursive ref cut", schema: `{"$defs":{"n":{"type":"object","additionalProperties":false,"properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}`,
			path: "properties.kids.items.properties.kids.items", want: `{"nullable":true,` + preserve + `}`, warn: []string{"recursive $ref cut"}},
		{name: "remote ref is open", schema: `{"properties":{"a":{"$ref":"https://kubernetesjsonschema.dev/v1.18.0/_definitions.json#/definitions/io.k8s.api.core.v1.Affinity"}}}`,
			path: "properties.a", want: `{"nullable":true,` + preserve + `}`, warn: []string{"#/properties/a", "not resolved"}},
		{name: "relative file ref is open", schema: `{"properties":{"a":{"$ref":"other.json#/x"}}}`,
			path: "properties.a", want: `{"nullable":true,` + preserve + `}`, warn: []string{"not resolved"}},

		// types
		{name: "string or null", schema: `{"properties":{"a":{"type":["string","null"]}}}`, path: "properties.a", want: `{"type":"string","nullable":true}`},
		{name: "integer or string", schema: `{"properties":{"a":{"type":["integer","string"]}}}`, path: "properties.a", want: `{"nullable":true,"x-kubernetes-int-or-string":true}`},
		{name: "integer, null or string", schema: `{"properties":{"a":{"type":["integer","null","string"]}}}`, path: "properties.a", want: `{"x-kubernetes-int-or-string":true,"nullable":true}`},
		{name: "object or string is open, properties kept", schema: `{"properties":{"a":{"type":["object","string"],"properties":{"b":{"type":"integer"}}}}}`,
			path: "properties.a", want: `{"properties":{"b":{"type":"integer","nullable":true}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`, warn: []string{"#/properties/a", "[string,object]"}},
		{name: "array or string is open", schema: `{"properties":{"a":{"type":["array","string"],"items":{"type":"string"}}}}`, path: "properties.a", want: `{"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`, warn: []string{"type union"}},
		{name: "number or string is open", schema: `{"properties":{"a":{"type":["number","string"]}}}`, path: "properties.a", want: `{"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "boolean or string is open", schema: `{"properties":{"a":{"type":["boolean","string"]}}}`, path: "properties.a", want: `{"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "no type is open", schema: `{"properties":{"a":{"description":"anything"}}}`, path: "properties.a", want: `{"description":"anything","nullable":true,` + preserve + `}`},
		{name: "type null only", schema: `{"properties":{"a":{"type":"null"}}}`, path: "properties.a", want: `{"nullable":true,` + preserve + `}`, warn: []string{"null-only"}},
		{name: "number with integer enum stays number", schema: `{"properties":{"a":{"type":"number","enum":[1,2]}}}`, path: "properties.a", want: `{"type":"number","nullable":true,"x-kubernetes-validations":[{"rule":"self in [1.0, 2.0]","message":"must be one of 1, 2"}]}`},
		{name: "required enum stays an enum", schema: `{"properties":{"o":{"type":"object","required":["c"],"properties":{"c":{"const":"fixed"}}}}}`, path: "properties.o.properties.c", want: `{"type":"string","enum":["fixed"]}`},
		{name: "optional property is nullable so its null reaches the webhook", schema: `{"properties":{"o":{"type":"object","required":["r"],"properties":{"r":{"type":"integer"},"p":{"type":"integer"}},"additionalProperties":{"type":"string"}}}}`,
			path: "properties.o", want: `{"type":"object","nullable":true,"required":["r"],"properties":{"r":{"type":"integer"},"p":{"type":"integer","nullable":true}},"x-kubernetes-preserve-unknown-fields":true}`, warn: []string{"not enforced next to named properties"}},
		{name: "integral enum members in integer form (YAML keeps them)", schema: `{"properties":{"o":{"type":"object","required":["n","i"],"properties":{"n":{"type":"number","const":-2.0},"i":{"type":"integer","enum":[1e3,2.0]}}}}}`,
			path: "properties.o", want: `{"type":"object","nullable":true,"required":["i","n"],"properties":{"n":{"type":"number","enum":[-2]},"i":{"type":"integer","enum":[1000,2]}},"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "untyped enum gets its type", schema: `{"properties":{"a":{"enum":["x","y"]}}}`, path: "properties.a", want: `{"type":"string","maxLength":1,"nullable":true,"x-kubernetes-validations":[{"rule":"self in [\"x\", \"y\"]","message":"must be one of \"x\", \"y\""}]}`},

		// combinators
		{name: "allOf merged", schema: `{"properties":{"o":{"type":"object","allOf":[{"properties":{"a":{"type":"string"}},"required":["a"]},{"properties":{"b":{"type":"integer","maximum":5}}},{"properties":{"b":{"minimum":1}}}]}}}`,
			path: "properties.o", want: `{"type":"object","required":["a"],"properties":{"a":{"type":"string"},"b":{"type":"integer","maximum":5,"minimum":1,"nullable":true}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "allOf strictest bounds and closed", schema: `{"type":"object","additionalProperties":false,"properties":{"s":{"type":"string","maxLength":10,"allOf":[{"maxLength":5},{"minLength":2}]}}}`,
			path: "properties.s", want: `{"type":"string","maxLength":5,"minLength":2,"nullable":true}`},
		{name: "anyOf objects: union of properties, common required", schema: `{"properties":{"o":{"anyOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false},{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false}]}}}`,
			path: "properties.o", want: `{"type":"object","required":["a"],"properties":{"a":{"type":"string"},"b":{"type":"integer","nullable":true}},"nullable":true}`},
		{name: "anyOf property only in one open branch is any", schema: `{"properties":{"o":{"anyOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"type":"object","properties":{"b":{"type":"integer"}}}]}}}`,
			path: "properties.o.properties.a", want: `{"nullable":true,` + preserve + `}`},
		{name: "oneOf integer/string is int-or-string", schema: `{"properties":{"q":{"oneOf":[{"type":"integer","minimum":0},{"type":"string","pattern":"^[0-9]+m$"}]}}}`,
			path: "properties.q", want: `{"nullable":true,"x-kubernetes-int-or-string":true}`, warn: []string{"oneOf exclusivity"}},
		{name: "anyOf string enums united", schema: `{"properties":{"m":{"type":"string","anyOf":[{"enum":["a","b"]},{"const":"c"}]}}}`,
			path: "properties.m", want: `{"type":"string","maxLength":1,"nullable":true,"x-kubernetes-validations":[{"rule":"self in [\"a\", \"b\", \"c\"]","message":"must be one of \"a\", \"b\", \"c\""}]}`},
		{name: "anyOf with an unrestricted branch", schema: `{"properties":{"m":{"type":"string","anyOf":[{"enum":["a"]},{"maxLength":3}]}}}`,
			path: "properties.m", want: `{"type":"string","nullable":true}`},
		{name: "anyOf string or boolean is open", schema: `{"properties":{"m":{"anyOf":[{"type":"string"},{"type":"boolean"}]}}}`,
			path: "properties.m", want: `{"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`, warn: []string{"type union"}},
		{name: "not, if/then/else, dependencies dropped", schema: `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"a":{"type":"string","not":{"const":"x"}},"b":{"type":"object","if":{"required":["x"]},"then":{"required":["y"]},"dependencies":{"x":["z"]}}}}`,
			path: "properties.a", want: `{"type":"string","nullable":true}`, warn: []string{"#/properties/a: dropped not"}},

		// objects
		{name: "properties are open by default", schema: `{"properties":{"o":{"type":"object","properties":{"a":{"type":"string"}}}}}`,
			path: "properties.o", want: `{"type":"object","properties":{"a":{"type":"string","nullable":true}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "additionalProperties false closes", schema: `{"properties":{"o":{"type":"object","additionalProperties":false,"properties":{"a":{"type":"string"}}}}}`,
			path: "properties.o", want: `{"type":"object","properties":{"a":{"type":"string","nullable":true}},"nullable":true}`},
		{name: "additionalProperties schema is a map", schema: `{"properties":{"o":{"type":"object","additionalProperties":{"type":"string"}}}}`,
			path: "properties.o", want: `{"type":"object","additionalProperties":{"type":"string","nullable":true},"nullable":true}`},
		{name: "additionalProperties schema with properties", schema: `{"properties":{"o":{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}}}`,
			path: "properties.o", want: `{"type":"object","properties":{"a":{"type":"integer","nullable":true}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true}`, warn: []string{"not enforced next to named properties"}},
		{name: "additionalProperties true", schema: `{"properties":{"o":{"type":"object","additionalProperties":true}}}`,
			path: "properties.o", want: `{"type":"object","nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "one patternProperties is a map", schema: `{"properties":{"o":{"type":"object","patternProperties":{"^x-":{"type":"string"}},"additionalProperties":false}}}`,
			path: "properties.o", want: `{"type":"object","additionalProperties":{"type":"string","nullable":true},"nullable":true}`},
		{name: "patternProperties plus open additional is open", schema: `{"properties":{"o":{"type":"object","patternProperties":{"^x-":{"type":"string"}}}}}`,
			path: "properties.o", want: `{"type":"object","nullable":true,"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "two patternProperties and additional schema: any of them", schema: `{"properties":{"o":{"type":"object","patternProperties":{"^a":{"type":"string"},"^b":{"type":"integer"}},"additionalProperties":{"type":"boolean"}}}}`,
			path: "properties.o", want: `{"type":"object","additionalProperties":{"nullable":true,"x-kubernetes-preserve-unknown-fields":true},"nullable":true}`},
		{name: "tuple items", schema: `{"properties":{"t":{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}}}`,
			path: "properties.t", want: `{"type":"array","items":{"x-kubernetes-int-or-string":true},"nullable":true}`},
		{name: "draft-04 tuple items", schema: `{"$schema":"http://json-schema.org/draft-04/schema#","properties":{"t":{"type":"array","items":[{"type":"string"}],"additionalItems":{"type":"string","maxLength":2}}}}`,
			path: "properties.t", want: `{"type":"array","items":{"type":"string"},"nullable":true}`},

		// value checks
		{name: "const is a one-value enum", schema: `{"properties":{"c":{"const":"fixed"}}}`, path: "properties.c", want: `{"type":"string","maxLength":5,"nullable":true,"x-kubernetes-validations":[{"rule":"self in [\"fixed\"]","message":"must be one of \"fixed\""}]}`},
		{name: "uniqueItems of scalars is a set", schema: `{"properties":{"l":{"type":"array","items":{"type":"string"},"uniqueItems":true}}}`,
			path: "properties.l", want: `{"type":"array","items":{"type":"string"},"nullable":true,"x-kubernetes-list-type":"set"}`},
		{name: "uniqueItems of objects dropped", schema: `{"properties":{"l":{"type":"array","items":{"type":"object"},"uniqueItems":true}}}`,
			path: "properties.l", want: `{"type":"array","items":{"type":"object","x-kubernetes-preserve-unknown-fields":true},"nullable":true}`, warn: []string{"uniqueItems dropped"}},
		{name: "format kept for draft-07 ipv4", schema: `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"f":{"type":"string","format":"ipv4"}}}`,
			path: "properties.f", want: `{"type":"string","format":"ipv4","nullable":true}`},
		{name: "format dropped when the API server checks it differently", schema: `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"f":{"type":"string","format":"duration"}}}`,
			path: "properties.f", want: `{"type":"string","nullable":true}`, warn: []string{"format \"duration\" dropped"}},
		{name: "format is only an annotation in 2020-12", schema: `{"properties":{"f":{"type":"string","format":"ipv4"}}}`,
			path: "properties.f", want: `{"type":"string","nullable":true}`},
		{name: "pattern and bounds kept", schema: `{"properties":{"s":{"type":"string","pattern":"^[a-z]+$","minLength":1,"maxLength":63},"n":{"type":"number","exclusiveMinimum":0,"maximum":1.5,"multipleOf":2},"l":{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3},"o":{"type":"object","minProperties":1,"maxProperties":2}}}`,
			want: `{"type":"object","properties":{"l":{"type":"array","maxItems":3,"minItems":1,"items":{"type":"integer"},"nullable":true},"n":{"type":"number","maximum":1.5,"minimum":0,"exclusiveMinimum":true,"multipleOf":2,"nullable":true},"o":{"type":"object","maxProperties":2,"minProperties":1,"nullable":true,"x-kubernetes-preserve-unknown-fields":true},"s":{"type":"string","maxLength":63,"minLength":1,"pattern":"^[a-z]+$","nullable":true}},"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "draft-04 boolean exclusiveMaximum", schema: `{"$schema":"http://json-schema.org/draft-04/schema#","properties":{"n":{"type":"integer","maximum":10,"exclusiveMaximum":true}}}`,
			path: "properties.n", want: `{"type":"integer","maximum":10,"exclusiveMaximum":true,"nullable":true}`},
		{name: "fractional multipleOf dropped", schema: `{"properties":{"n":{"type":"number","multipleOf":0.01}}}`, path: "properties.n", want: `{"type":"number","nullable":true}`},
		{name: "examples and foreign x- keys dropped, x-kubernetes kept", schema: `{"properties":{"q":{"type":"string","examples":["1Gi"],"x-cozystack-options":{"a":1},"x-kubernetes-int-or-string":true,"x-kubernetes-validations":[{"rule":"true","message":"ok"}]},"l":{"type":"array","items":{"type":"string"},"x-kubernetes-list-type":"atomic"},"o":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"additionalProperties":false,"properties":{"a":{"type":"string"}}}}}`,
			want: `{"type":"object","properties":{"l":{"type":"array","items":{"type":"string"},"nullable":true,"x-kubernetes-list-type":"atomic"},"o":{"type":"object","properties":{"a":{"type":"string","nullable":true}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true},"q":{"nullable":true,"x-kubernetes-int-or-string":true,"x-kubernetes-validations":[{"rule":"true","message":"ok"}]}},"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "title when no description", schema: `{"properties":{"a":{"type":"string","title":"The A"}}}`, path: "properties.a", want: `{"description":"The A","type":"string","nullable":true}`},

		// values.yaml interplay
		{name: "required provided by values.yaml is dropped", schema: `{"type":"object","required":["a","b"],"properties":{"a":{"type":"string"},"b":{"type":"object","required":["c"],"properties":{"c":{"type":"string"}}}}}`,
			values: "a: x\n", path: "", want: `{"type":"object","properties":{"a":{"description":"Default: \"x\".","type":"string","nullable":true},"b":{"type":"object","required":["c"],"properties":{"c":{"type":"string"}},"nullable":true,"x-kubernetes-preserve-unknown-fields":true}},"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "required inside array items stays", schema: `{"properties":{"l":{"type":"array","items":{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}}}}`,
			values: "l:\n- name: a\n", path: "properties.l.items", want: `{"type":"object",` + preserve + `,"required":["name"],"properties":{"name":{"type":"string"}}}`},
		{name: "values.yaml keys are nullable", schema: `{"properties":{"a":{"type":"object","additionalProperties":false,"properties":{"b":{"type":"integer"},"c":{"type":"integer"}}}}}`,
			values: "a:\n  b: 1\n", path: "properties.a", want: `{"type":"object","properties":{"b":{"description":"Default: 1.","type":"integer","nullable":true},"c":{"type":"integer","nullable":true}},"nullable":true}`},
		{name: "nullable enum becomes a CEL rule", schema: `{"properties":{"level":{"type":"string","enum":["debug","info"]}}}`,
			values: "level: info\n", path: "properties.level", want: `{"type":"string","nullable":true,"maxLength":5,"description":"Default: \"info\".","x-kubernetes-validations":[{"rule":"self in [\"debug\", \"info\"]","message":"must be one of \"debug\", \"info\""}]}`},
		{name: "enum with null", schema: `{"properties":{"m":{"enum":["a",null]}}}`, path: "properties.m",
			want: `{"type":"string","nullable":true,"maxLength":1,"x-kubernetes-validations":[{"rule":"self in [\"a\"]","message":"must be one of \"a\""}]}`},
		{name: "values.yaml contradicting the schema loosens it", schema: `{"properties":{"l":{"type":"array","items":{"type":"string"}},"s":{"type":"string","enum":["a"],"pattern":"^a$"}}}`,
			values: "l: \"[]\"\ns: b\n", path: "", want: `{"type":"object",` + preserve + `,"properties":{"l":{` + preserve + `,"nullable":true,"description":"Default: \"[]\"."},"s":{"type":"string","nullable":true,"description":"Default: \"b\"."}}}`,
			warn: []string{"values.yaml has a [string] at .l", "values.yaml violates pattern at .s"}},
		{name: "unknown values.yaml keys preserved in closed objects", schema: `{"type":"object","additionalProperties":false,"properties":{"a":{"type":"string"}}}`,
			values: "a: x\nextra: 1\n", path: "", want: `{"type":"object",` + preserve + `,"properties":{"a":{"type":"string","nullable":true,"description":"Default: \"x\"."}}}`, warn: []string{`key "extra"`}},

		// defaults
		{name: "default shown in description", schema: `{"properties":{"port":{"type":"integer","default":5432,"description":"Port"}}}`,
			path: "properties.port", want: `{"description":"Port. Default: 5432.","type":"integer","nullable":true}`},
		{name: "default copied with Options.Defaults", schema: `{"properties":{"port":{"type":"integer","default":5432}}}`, opts: Options{Defaults: true},
			path: "properties.port", want: `{"description":"Default: 5432.","type":"integer","default":5432,"nullable":true}`},
		{name: "contradicting default not copied", schema: `{"properties":{"l":{"type":"array","items":{"type":"string"},"default":"[]"}}}`, opts: Options{Defaults: true},
			path: "properties.l", want: `{"description":"Default: \"[]\".","type":"array","items":{"type":"string"},"nullable":true}`, warn: []string{"contradicts the schema"}},
		{name: "default under a nullable enum checked against the list", schema: `{"properties":{"level":{"type":"string","enum":["debug","info"],"default":"info"}}}`, opts: Options{Defaults: true},
			values: "level: debug\n", path: "properties.level", want: `{"type":"string","nullable":true,"maxLength":5,"default":"info","description":"Default: \"info\".","x-kubernetes-validations":[{"rule":"self in [\"debug\", \"info\"]","message":"must be one of \"debug\", \"info\""}]}`},

		// root
		{name: "untyped root is an object", schema: `{"properties":{"a":{"type":"string"}}}`, want: `{"type":"object","properties":{"a":{"type":"string","nullable":true}},"x-kubernetes-preserve-unknown-fields":true}`},
		{name: "boolean schema true", schema: `true`, want: `{"type":"object",` + preserve + `}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := convertOK(t, tc.schema, tc.values, tc.opts)
			sameJSON(t, at(t, res.Schema, tc.path), tc.want)
			for _, w := range tc.warn {
				if !hasWarning(res, w) {
					t.Errorf("missing warning containing %q in %q", w, res.Warnings)
				}
			}
		})
	}
}

// TestValidationBehaviour checks with the API server's validators that the
// converted schemas accept what Helm accepts and still reject the rest.
func TestValidationBehaviour(t *testing.T) {
	schema := `{
	  "type": "object",
	  "additionalProperties": false,
	  "required": ["image"],
	  "properties": {
	    "image": {"type": "object", "required": ["repository"], "properties": {"repository": {"type": "string", "minLength": 1}, "tag": {"type": ["string", "null"]}}},
	    "level": {"type": "string", "enum": ["debug", "info"]},
	    "mode": {"type": "string", "enum": ["a", "b"]},
	    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
	    "size": {"type": ["integer", "string"]},
	    "extra": {"type": ["object", "string"], "properties": {"n": {"type": "integer"}}}
	  }
	}`
	values := "image:\n  repository: nginx\nlevel: info\nport: 80\n"
	_, chk := convertOK(t, schema, values, Options{})
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{`{}`, true},
		{`{"image":{"tag":"1.0"}}`, true},      // repository comes from values.yaml
		{`{"image":null,"level":null}`, true},  // null removes a chart default
		{`{"level":"debug","mode":"b"}`, true}, // enums
		{`{"level":"trace"}`, false},           // enum moved to CEL still checked
		{`{"mode":"c"}`, false},
		{`{"mode":null}`, true}, // not in values.yaml: Helm refuses the null, so it must reach the webhook, which says so
		{`{"port":0}`, false},
		{`{"port":"80"}`, false},
		{`{"size":"1Gi"}`, true},
		{`{"size":3}`, true},
		{`{"extra":"text"}`, true},
		{`{"extra":{"n":1,"other":true}}`, true},
		{`{"extra":{"n":"x"}}`, false},
	} {
		var spec map[string]any
		if err := json.Unmarshal([]byte(tc.spec), &spec); err != nil {
			t.Fatal(err)
		}
		spec = decodeValues(t, []byte(tc.spec)) // int64 numbers, like the API server
		pruned, errs := chk.check(spec)
		if len(pruned) > 0 {
			t.Errorf("%s: pruned %v", tc.spec, pruned)
		}
		if ok := len(errs) == 0; ok != tc.ok {
			t.Errorf("%s: accepted=%v, want %v (errors: %v)", tc.spec, ok, tc.ok, errs)
		}
	}
}

func TestConvertErrors(t *testing.T) {
	_, err := Convert([]byte("{\n  \"type\": \"object\",\n  \"properties\": {]\n}"), nil, Options{})
	var pe *PathError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("invalid JSON: got %v, want a PathError naming line 3", err)
	}
	_, err = Convert([]byte(`{"properties":{"a":{"type":"string","pattern":"(?=x)"}}}`), nil, Options{})
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Pointer, "#/properties/a") {
		t.Errorf("invalid pattern: got %#v", err)
	}
	_, err = Convert([]byte(`{"properties":{"a":{"type":"strin"}}}`), nil, Options{})
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Pointer, "#/properties/a/type") || !strings.Contains(pe.Error(), "#/properties/a/type") {
		t.Errorf("invalid type: got %#v", err)
	}
	_, err = Convert([]byte(`{"$ref":"#/definitions/missing"}`), nil, Options{})
	if !errors.As(err, &pe) {
		t.Errorf("missing ref: got %#v", err)
	}
	if _, err := Convert([]byte(`{}`), []byte("a: [\n"), Options{}); err == nil {
		t.Errorf("invalid values.yaml accepted")
	}
}

func TestSizeBudget(t *testing.T) {
	// A definition inlined 40 times with long descriptions.
	var sb strings.Builder
	sb.WriteString(`{"$defs":{"leaf":{"type":"object","description":"` + strings.Repeat("Long text. ", 40) + `","properties":{"deep":{"type":"object","properties":{"x":{"type":"string","description":"` + strings.Repeat("More. ", 40) + `"}}}}}},"properties":{`)
	for i := 0; i < 40; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"p` + strings.Repeat("x", i) + `":{"$ref":"#/$defs/leaf"}`)
	}
	sb.WriteString(`}}`)
	full, _ := convertOK(t, sb.String(), "", Options{})
	fullSize := jsonSize(full.Schema)
	// A third: descriptions and nesting can go, the typed top two levels
	// (optional nodes nullable) stay.
	small, _ := convertOK(t, sb.String(), "", Options{MaxBytes: fullSize / 3})
	if s := jsonSize(small.Schema); s > fullSize/3 {
		t.Errorf("size %d over budget %d", s, fullSize/3)
	}
	if !hasWarning(small, "budget") {
		t.Errorf("no budget warning: %q", small.Warnings)
	}
}

func TestDeterministic(t *testing.T) {
	schema := `{"properties":{"b":{"type":["string","object"]},"a":{"anyOf":[{"type":"object","properties":{"z":{"type":"string"},"y":{"type":"integer"}}},{"type":"object","properties":{"x":{"type":"boolean"}}}]},"c":{"$ref":"https://example.com/x.json"}}}`
	var first []byte
	for i := 0; i < 10; i++ {
		res, err := Convert([]byte(schema), []byte("b: x\na: {z: q}\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		if i == 0 {
			first = b
		} else if string(b) != string(first) {
			t.Fatalf("run %d differs:\n%s\n%s", i, first, b)
		}
	}
}
