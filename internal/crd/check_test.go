package crd

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/utils/ptr"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/definition"
)

func buildFor(t *testing.T, spec apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Cache"}}}
	def.Name = "cache"
	c, err := Build(Input{Definition: def, Spec: &spec})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkerFor(t *testing.T, spec apiextensionsv1.JSONSchemaProps) *Checker {
	t.Helper()
	chk, err := NewChecker(buildFor(t, spec), "")
	if err != nil {
		t.Fatal(err)
	}
	return chk
}

func object(t *testing.T, spec string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := utiljson.Unmarshal([]byte(`{"apiVersion": "apps.chartkind.io/v1alpha1", "kind": "Cache", "metadata": {"name": "c", "namespace": "default"}, "spec": `+spec+`}`), &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// errorStrings renders the errors of a result for comparison.
func errorStrings(r Result) []string {
	var out []string
	for _, e := range r.Invalid {
		out = append(out, e.Error())
	}
	return out
}

func specJSON(r Result) string {
	if !r.HasSpec {
		return "<none>"
	}
	b, _ := json.Marshal(r.Spec)
	return string(b)
}

// TestCheckDoesWhatTheAPIServerDoes covers each step of the API server's
// handling of an object: pruning, dropping nulls of non-nullable fields,
// defaulting, schema validation, list-type invariants and CEL, which a schema
// error blocks.
func TestCheckDoesWhatTheAPIServerDoes(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"plain":    {Type: "string"},
			"nullable": {Type: "string", Nullable: true},
			"policy":   {Type: "string", Nullable: true, XValidations: apiextensionsv1.ValidationRules{{Rule: "self in ['lru', 'lfu']", Message: "must be lru or lfu"}}},
			"tags":     {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}, XListType: ptr.To("set")},
			"replicas": {Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte("3")}},
			"size":     {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"1Gi"`)}},
		},
	})
	for name, tc := range map[string]struct {
		spec       string
		wantPruned []string
		wantNulls  []string
		wantErrs   []string
		wantStored string
	}{
		"valid, defaults applied":              {`{"plain": "x"}`, nil, nil, nil, `{"plain":"x","replicas":3,"size":"1Gi"}`},
		"unknown fields pruned":                {`{"plain": "x", "extra": {"a": 1}, "replicas": 1}`, []string{"spec.extra"}, nil, nil, `{"plain":"x","replicas":1,"size":"1Gi"}`},
		"null of a non-nullable field dropped": {`{"plain": null, "nullable": null, "replicas": 1}`, nil, []string{"spec.plain"}, nil, `{"nullable":null,"replicas":1,"size":"1Gi"}`},
		"null replaced by the default":         {`{"size": null}`, nil, []string{"spec.size"}, nil, `{"replicas":3,"size":"1Gi"}`},
		"type error blocks CEL": {`{"plain": 5, "policy": "fifo", "replicas": 1}`, nil, nil,
			[]string{`spec.plain: Invalid value: "integer": spec.plain in body must be of type string: "integer"`, "<nil>: Invalid value: null: some validation rules were not checked"}, ""},
		"CEL rule":            {`{"policy": "fifo", "replicas": 1}`, nil, nil, []string{`spec.policy: Invalid value: "fifo": must be lru or lfu`}, ""},
		"set with duplicates": {`{"tags": ["a", "a"], "replicas": 1}`, nil, nil, []string{`spec.tags[1]: Duplicate value: "a"`}, ""},
		// Nulls in lists are not dropped: they fail validation.
		"null in a list": {`{"tags": ["a", null]}`, nil, nil, []string{`spec.tags[1]: Invalid value: "null": spec.tags[1] in body must be of type string: "null"`, "some validation rules were not checked"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := chk.Check(object(t, tc.spec))
			if !reflect.DeepEqual(r.Pruned, tc.wantPruned) {
				t.Errorf("pruned %v, want %v", r.Pruned, tc.wantPruned)
			}
			if !reflect.DeepEqual(r.NullsDropped, tc.wantNulls) {
				t.Errorf("nulls dropped %v, want %v", r.NullsDropped, tc.wantNulls)
			}
			got := errorStrings(r)
			if len(got) != len(tc.wantErrs) {
				t.Fatalf("errors %q, want %q", got, tc.wantErrs)
			}
			for i, w := range tc.wantErrs {
				if !strings.Contains(got[i], w) {
					t.Errorf("error %q does not contain %q", got[i], w)
				}
			}
			if tc.wantStored != "" {
				if s := specJSON(r); s != tc.wantStored {
					t.Errorf("stored spec %s, want %s", s, tc.wantStored)
				}
			}
			if r.Clean() != (len(tc.wantPruned)+len(tc.wantNulls)+len(tc.wantErrs) == 0) {
				t.Errorf("Clean() = %v", r.Clean())
			}
		})
	}
}

// TestCheckWithoutCELRules: without rules to run, a schema error is not
// followed by "some validation rules were not checked" (the API server only
// says so when it has a CEL validator).
func TestCheckWithoutCELRules(t *testing.T) {
	c := buildFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"plain": {Type: "string"}}})
	c.Spec.Versions[0].Schema.OpenAPIV3Schema.XValidations = nil // Build adds the name rules
	chk, err := NewChecker(c, "")
	if err != nil {
		t.Fatal(err)
	}
	got := errorStrings(chk.Check(object(t, `{"plain": 5}`)))
	if len(got) != 1 || !strings.HasPrefix(got[0], "spec.plain: Invalid value") {
		t.Fatalf("errors %q", got)
	}
}

// TestCheckTopLevel: unknown top-level fields are pruned like unknown spec
// fields (a schema error is followed by "some validation rules were not
// checked": Build's name rules are not run); status, which a create cannot set, and metadata beyond name and
// namespace are not looked at; a spec that is absent or a dropped null is
// reported as such.
func TestCheckTopLevel(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "string"}}})

	obj := object(t, `{"a": "x"}`)
	obj["spce"] = map[string]any{"a": "typo"}
	obj["status"] = map[string]any{"conditions": "not a list", "unknown": true}
	obj["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "kubectl"}}
	r := chk.Check(obj)
	if !reflect.DeepEqual(r.Pruned, []string{"spce"}) || len(r.Invalid) > 0 || len(r.NullsDropped) > 0 || specJSON(r) != `{"a":"x"}` {
		t.Fatalf("got %+v", r)
	}

	if r := chk.Check(map[string]any{"metadata": map[string]any{"name": "x"}}); !r.Clean() || r.HasSpec {
		t.Fatalf("no spec: %+v", r)
	}
	r = chk.Check(map[string]any{"spec": nil})
	if !reflect.DeepEqual(r.NullsDropped, []string{"spec"}) || r.HasSpec {
		t.Fatalf("null spec: %+v", r)
	}
	if got := errorStrings(chk.Check(map[string]any{"spec": "text"})); len(got) != 2 || !strings.Contains(got[0], "spec: Invalid value") || !strings.Contains(got[1], blockingCELMessage) {
		t.Fatalf("spec of the wrong type: %q", got)
	}
}

// TestCheckDoesNotModifyTheObject: obj is copied, and Go numbers that are not
// what JSON decoding produces are accepted as the API server would read them.
func TestCheckDoesNotModifyTheObject(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"a": {Type: "string"}, "d": {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"x"`)}},
		"n": {Type: "integer", Maximum: ptr.To[float64](5)}, "f": {Type: "number"},
	}})
	obj := object(t, `{"a": null, "gone": {"deep": [1, {"b": 2}]}}`)
	before, _ := json.Marshal(obj)
	r := chk.Check(obj)
	if !reflect.DeepEqual(r.Pruned, []string{"spec.gone"}) || !reflect.DeepEqual(r.NullsDropped, []string{"spec.a"}) || specJSON(r) != `{"d":"x"}` {
		t.Fatalf("got %+v", r)
	}
	if after, _ := json.Marshal(obj); string(after) != string(before) {
		t.Fatalf("object modified: %s, was %s", after, before)
	}

	if r := chk.Check(map[string]any{"spec": map[string]any{"n": 3, "f": float32(1.5)}}); !r.Clean() {
		t.Fatalf("Go int and float32: %+v", r)
	}
	if got := errorStrings(chk.Check(map[string]any{"spec": map[string]any{"n": int32(9)}})); len(got) != 1 || !strings.HasPrefix(got[0], "spec.n: Invalid value: 9") {
		t.Fatalf("int32 above the maximum: %q", got)
	}
	if got := errorStrings(chk.Check(map[string]any{"spec": map[string]any{"n": struct{}{}}})); len(got) != 1 || !strings.HasPrefix(got[0], "spec: Internal error") {
		t.Fatalf("a non-JSON value: %q", got)
	}
}

func TestNewCheckerVersions(t *testing.T) {
	c := buildFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "string"}}})
	// A second, served-only version whose spec is an integer.
	v2 := *c.Spec.Versions[0].DeepCopy()
	v2.Name, v2.Storage = "v2", false
	v2.Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "integer"}}}
	c.Spec.Versions = append([]apiextensionsv1.CustomResourceDefinitionVersion{v2}, c.Spec.Versions...)

	for version, wantValid := range map[string]bool{"": true, Version: true, "v2": false} {
		chk, err := NewChecker(c, version)
		if err != nil {
			t.Fatal(err)
		}
		if r := chk.Check(map[string]any{"spec": map[string]any{"a": "x"}}); r.Clean() != wantValid {
			t.Errorf("version %q: %+v", version, r)
		}
	}
	if _, err := NewChecker(c, "v9"); err == nil || !strings.Contains(err.Error(), "caches.apps.chartkind.io has no version v9") {
		t.Errorf("unknown version: %v", err)
	}
	broken := c.DeepCopy()
	broken.Spec.Versions[1].Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "string", Items: &apiextensionsv1.JSONSchemaPropsOrArray{JSONSchemas: []apiextensionsv1.JSONSchemaProps{{}, {}}}}}}
	if _, err := NewChecker(broken, ""); err == nil || !strings.Contains(err.Error(), "not structural") {
		t.Errorf("non-structural schema: %v", err)
	}
}

// TestCheckEmbeddedResource: the ObjectMeta of an embedded resource is coerced
// (unknown fields dropped) and validated, as the API server does.
func TestCheckEmbeddedResource(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"template": {Type: "object", XEmbeddedResource: true, XPreserveUnknownFields: ptr.To(true)},
	}})
	r := chk.Check(object(t, `{"template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "nmae": "typo"}, "data": {"a": "b"}}}`))
	if !reflect.DeepEqual(r.Pruned, []string{"spec.template.metadata.nmae"}) || len(r.Invalid) > 0 ||
		specJSON(r) != `{"template":{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"cm"}}}` {
		t.Fatalf("unknown metadata field: %+v, spec %s", r, specJSON(r))
	}
	got := errorStrings(chk.Check(object(t, `{"template": {"apiVersion": "v1", "metadata": {"name": "a/b"}}}`)))
	if len(got) != 3 || !strings.HasPrefix(got[0], "spec.template.kind: Required value") || !strings.HasPrefix(got[1], "spec.template.metadata.name: Invalid value") ||
		!strings.Contains(got[2], blockingCELMessage) {
		t.Fatalf("embedded resource without kind, with an invalid name: %q", got)
	}
}

// TestCheckErrorOrder: the validators walk maps, so the API server lists
// errors in a varying order; Check sorts them by field, pathless ones last.
func TestCheckErrorOrder(t *testing.T) {
	props := map[string]apiextensionsv1.JSONSchemaProps{}
	spec := map[string]any{}
	var want []string
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		props[k] = apiextensionsv1.JSONSchemaProps{Type: "integer"}
		spec[k] = 1.5 // a fraction: a typed error and a pathless one each
		want = append(want, "spec."+k)
	}
	for range 9 { // and "some validation rules were not checked" (Build's name rules)
		want = append(want, "<nil>")
	}
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props})
	for range 20 {
		var got []string
		for _, e := range chk.Check(map[string]any{"spec": spec}).Invalid {
			got = append(got, e.Field)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fields %q, want %q", got, want)
		}
	}
}

// TestNameRules: the CRD's root rules refuse, as the API server would on
// create, a name too long for the release name and a name with a dot, each
// with its own message naming the kind's limit; a name at the limit passes,
// and so does an update (names are immutable; optionalOldSelf).
func TestNameRules(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{Type: "object"})
	check := func(name string) []string {
		return errorStrings(chk.Check(map[string]any{"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": map[string]any{}}))
	}
	atLimit := strings.Repeat("a", 53-len("cache-"))
	if got := check(atLimit); len(got) != 0 {
		t.Fatalf("name of %d characters: %q", len(atLimit), got)
	}
	want := `metadata.name: Invalid value: Cache names may have at most 47 characters: the Helm release name is "cache-" + the name, at most 53`
	if got := check(atLimit + "a"); len(got) != 1 || got[0] != want {
		t.Fatalf("name of %d characters: %q, want %q", len(atLimit)+1, got, want)
	}
	if got := check("a.b"); len(got) != 1 || !strings.Contains(got[0], "metadata.name: Invalid value: Cache names may not contain dots") {
		t.Fatalf("dotted name: %q", got)
	}

	// A prefix that leaves no room says so.
	def := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: strings.Repeat("A", 53)}}}
	rules := NameRules(definition.Effective(def))
	if !strings.Contains(rules[0].Message, "no "+def.Spec.Application.Kind+" name fits") {
		t.Fatalf("message %q", rules[0].Message)
	}
}
