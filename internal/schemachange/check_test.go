package schemachange

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/generate"
)

func testDefinition() *v1alpha1.ApplicationDefinition {
	d := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{
		Application: v1alpha1.ApplicationNames{Kind: "Shop"},
	}}
	d.Name = "shop"
	return d
}

// testCRD builds the CRD chartkind would apply for a spec schema.
func testCRD(t testing.TB, spec *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	c, err := crd.Build(crd.Input{Definition: testDefinition(), Spec: spec})
	if err != nil {
		t.Fatalf("crd.Build: %v", err)
	}
	return c
}

// generatedCRD runs a JSON Schema through the converter, as the operator does
// for a definition with an inline spec.schema.
func generatedCRD(t testing.TB, jsonSchema string, defaults v1alpha1.DefaultsPolicy) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	d := testDefinition()
	d.Spec.Schema = &apiextensionsv1.JSON{Raw: []byte(jsonSchema)}
	d.Spec.Defaults = defaults
	res, err := generate.CRD(generate.Input{Definition: d})
	if err != nil {
		t.Fatalf("generate.CRD: %v", err)
	}
	return res.CRD
}

// object is an application object as a List returns it: JSON decoded with
// integers as int64.
func object(t testing.TB, name, spec string) *unstructured.Unstructured {
	t.Helper()
	var s any
	if err := utiljson.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatalf("spec %s: %v", spec, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.chartkind.io/v1alpha1",
		"kind":       "Shop",
		"metadata":   map[string]any{"name": name, "namespace": "ns"},
		"spec":       s,
	}}
	return u
}

// verdict renders a problem compactly for tables: pruned fields, dropped
// nulls and the paths and types of validation errors.
func verdict(p *ObjectProblem) string {
	if p == nil {
		return "ok"
	}
	var parts []string
	for _, f := range p.Pruned {
		parts = append(parts, "pruned "+f)
	}
	for _, f := range p.NullsDropped {
		parts = append(parts, "null dropped "+f)
	}
	for _, e := range p.Invalid {
		parts = append(parts, fmt.Sprintf("invalid %s (%s)", e.Field, string(e.Type)))
	}
	return strings.Join(parts, ", ")
}

type checkCase struct {
	name, spec string
	want       string
}

func runChecks(t *testing.T, newCRD *apiextensionsv1.CustomResourceDefinition, cases []checkCase) {
	t.Helper()
	c, err := NewChecker(newCRD, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		if got := verdict(c.Check(object(t, tc.name, tc.spec))); got != tc.want {
			t.Errorf("%s %s:\n got  %s\n want %s", tc.name, tc.spec, got, tc.want)
		}
	}
}

func TestCheckPropertyRemovedIsPruned(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"a":{"type":"string"},"nested":{"type":"object","properties":{"keep":{"type":"string"}}}}}`))
	runChecks(t, v2, []checkCase{
		{"uses-removed", `{"a":"x","legacy":"y"}`, "pruned spec.legacy"},
		{"nested", `{"nested":{"keep":"k","gone":1,"also":{"x":1}}}`, "pruned spec.nested.also, pruned spec.nested.gone"},
		{"unaffected", `{"a":"x","nested":{"keep":"k"}}`, "ok"},
		{"empty", `{}`, "ok"},
	})
}

func TestCheckTypeChangedIsInvalid(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"size":{"type":"integer"},"opts":{"type":"string"}}}`))
	runChecks(t, v2, []checkCase{
		{"string-size", `{"size":"10Gi"}`, "invalid spec.size (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)"},
		{"int-size", `{"size":10}`, "ok"},
		// kube-openapi adds a second, pathless error for a fraction; so does the API server.
		{"fraction", `{"size":1.5}`, "invalid spec.size (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid), invalid <nil> (FieldValueInvalid)"},
		// An object where a string is now expected: its fields are pruned (the
		// new schema knows none) and the remaining {} has the wrong type.
		{"object-opts", `{"opts":{"a":1}}`, "pruned spec.opts.a, invalid spec.opts (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)"},
		{"absent", `{}`, "ok"},
	})
}

func TestCheckEnumNarrowedOnlyForRemovedValues(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"mode":{"type":"string","enum":["a","b"]}}}`))
	runChecks(t, v2, []checkCase{
		{"removed-value", `{"mode":"c"}`, "invalid spec.mode (FieldValueNotSupported), invalid <nil> (FieldValueInvalid)"},
		{"kept-value", `{"mode":"a"}`, "ok"},
		{"absent", `{}`, "ok"},
	})
}

func TestCheckRequiredAddedOnlyForObjectsMissingIt(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","required":["name"],"properties":{"name":{"type":"string"},
		"servers":{"type":"array","items":{"type":"object","required":["port"],"properties":{"host":{"type":"string"},"port":{"type":"integer"}}}}}}`))
	runChecks(t, v2, []checkCase{
		{"missing", `{}`, "invalid spec.name (FieldValueRequired), invalid <nil> (FieldValueInvalid)"},
		{"present", `{"name":"n"}`, "ok"},
		{"item-missing", `{"name":"n","servers":[{"host":"a","port":1},{"host":"b"}]}`, "invalid spec.servers[1].port (FieldValueRequired), invalid <nil> (FieldValueInvalid)"},
	})
}

func TestCheckRequiredWithDefaultIsDefaultedBeforeValidation(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","required":["name"],"properties":{"name":{"type":"string","default":"shop"}}}`))
	runChecks(t, v2, []checkCase{
		{"missing", `{}`, "ok"},
		{"present", `{"name":"n"}`, "ok"},
	})
}

func TestCheckClosedObjectIsPruned(t *testing.T) {
	// The old schema kept unknown fields of extra (the converter's default for
	// JSON Schema objects); the new one closes it.
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"extra":{"type":"object","properties":{"known":{"type":"string"}}}}}`))
	runChecks(t, v2, []checkCase{
		{"unknown-keys", `{"extra":{"known":"k","custom":{"deep":true},"other":[1]}}`, "pruned spec.extra.custom, pruned spec.extra.other"},
		{"known-only", `{"extra":{"known":"k"}}`, "ok"},
	})
}

func TestCheckPatternAndBoundsTightened(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{
		"version":{"type":"string","pattern":"^v[0-9]+$"},
		"replicas":{"type":"integer","minimum":1,"maximum":5},
		"ratio":{"type":"number","maximum":1,"exclusiveMaximum":true},
		"name":{"type":"string","minLength":2,"maxLength":4},
		"zones":{"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2},
		"labels":{"type":"object","additionalProperties":{"type":"string"},"maxProperties":1},
		"step":{"type":"integer","multipleOf":5}}}`))
	runChecks(t, v2, []checkCase{
		{"pattern", `{"version":"latest"}`, "invalid spec.version (FieldValueInvalid)"},
		{"pattern-ok", `{"version":"v2"}`, "ok"},
		{"maximum", `{"replicas":7}`, "invalid spec.replicas (FieldValueInvalid)"},
		{"minimum", `{"replicas":0}`, "invalid spec.replicas (FieldValueInvalid)"},
		{"exclusive", `{"ratio":1}`, "invalid spec.ratio (FieldValueInvalid)"},
		{"exclusive-ok", `{"ratio":0.99}`, "ok"},
		{"too-long", `{"name":"toolong"}`, "invalid spec.name (FieldValueTooLong), invalid <nil> (FieldValueInvalid)"},
		{"too-short", `{"name":"a"}`, "invalid spec.name (FieldValueInvalid)"},
		{"too-many-items", `{"zones":["a","b","c"]}`, "invalid spec.zones (FieldValueTooMany), invalid <nil> (FieldValueInvalid)"},
		{"too-few-items", `{"zones":[]}`, "invalid spec.zones (FieldValueInvalid)"},
		{"too-many-properties", `{"labels":{"a":"1","b":"2"}}`, "invalid spec.labels (FieldValueTooMany), invalid <nil> (FieldValueInvalid)"},
		{"multiple", `{"step":7}`, "invalid spec.step (FieldValueInvalid)"},
		{"all-ok", `{"version":"v1","replicas":3,"name":"abc","zones":["a"],"labels":{"a":"1"},"step":10}`, "ok"},
	})
}

// TestCheckNullableEnumCELRule uses the converter's own output: an enum on a
// nullable field becomes the CEL rule `self in [...]`, checked with the API
// server's CEL validator.
func TestCheckNullableEnumCELRule(t *testing.T) {
	v2 := generatedCRD(t, `{"type":"object","additionalProperties":false,"properties":{
		"tier":{"type":["string","null"],"enum":["small","medium",null]}}}`, "")
	spec, _ := SpecSchema(v2, crd.Version)
	if rules := spec.Properties["tier"].XValidations; len(rules) != 1 || !strings.HasPrefix(rules[0].Rule, "self in [") {
		t.Fatalf("the converter no longer emits an enum rule for a nullable enum: %+v", spec.Properties["tier"])
	}
	runChecks(t, v2, []checkCase{
		{"removed-value", `{"tier":"large"}`, "invalid spec.tier (FieldValueInvalid)"},
		{"kept-value", `{"tier":"small"}`, "ok"},
		{"null", `{"tier":null}`, "ok"},
		// Too long for the maxLength the converter adds to bound the rule's cost:
		// a schema error, after which the API server skips CEL and says so.
		{"long-value", `{"tier":"extra-large"}`, "invalid spec.tier (FieldValueTooLong), invalid <nil> (FieldValueInvalid)"},
	})
}

func TestCheckCELRuleAddedIsInvalid(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"min":{"type":"integer"},"max":{"type":"integer"}},
		"x-kubernetes-validations":[{"rule":"!has(self.min) || !has(self.max) || self.min <= self.max","message":"min must not exceed max"}]}`))
	c, err := NewChecker(v2, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Check(object(t, "inverted", `{"min":5,"max":1}`))
	if verdict(p) != "invalid spec (FieldValueInvalid)" || !strings.Contains(p.Invalid[0].Error(), "min must not exceed max") {
		t.Fatalf("got %s: %v", verdict(p), p)
	}
	if p := c.Check(object(t, "ordered", `{"min":1,"max":5}`)); p != nil {
		t.Fatalf("valid object: %v", p)
	}
}

func TestCheckNullableRemoved(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{
		"note":{"type":"string"},
		"size":{"type":"string","default":"1Gi"},
		"tags":{"type":"array","items":{"type":"string"}}}}`))
	runChecks(t, v2, []checkCase{
		{"null-note", `{"note":null}`, "null dropped spec.note"},
		{"null-size", `{"size":null}`, "null dropped spec.size"},
		// Nulls in lists are not dropped: they fail validation.
		{"null-item", `{"tags":["a",null]}`, "invalid spec.tags[1] (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)"},
		{"values", `{"note":"n","size":"2Gi"}`, "ok"},
	})
	c, _ := NewChecker(v2, crd.Version)
	r := c.check(object(t, "null-size", `{"size":null}`))
	if !reflect.DeepEqual(r.Spec, map[string]any{"size": "1Gi"}) {
		t.Fatalf("a null with a default is replaced by it: %v", r.Spec)
	}
}

func TestCheckCompatibleChangeHasNoProblems(t *testing.T) {
	v1 := props(t, `{"type":"object","required":["name"],"properties":{
		"name":{"type":"string","maxLength":5},
		"mode":{"type":"string","enum":["a","b"]},
		"replicas":{"type":"integer","minimum":1,"maximum":3},
		"extra":{"type":"object","properties":{"known":{"type":"string"}}},
		"note":{"type":"string"}}}`)
	v2 := props(t, `{"type":"object","properties":{
		"name":{"type":"string","maxLength":10,"description":"The name."},
		"mode":{"type":"string","enum":["a","b","c"]},
		"replicas":{"type":"number","minimum":0},
		"extra":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"known":{"type":"string"}}},
		"note":{"type":"string","nullable":true},
		"added":{"type":"boolean"}}}`)
	for _, ch := range Classify(v1, v2) {
		if ch.Breaking() {
			t.Errorf("compatible change classified as breaking: %s", ch)
		}
	}
	newCRD := testCRD(t, v2)
	var objs []*unstructured.Unstructured
	for i, spec := range []string{
		`{"name":"a"}`,
		`{"name":"abcde","mode":"b","replicas":3,"extra":{"known":"k"},"note":"n"}`,
		`{"name":"x","mode":"a","replicas":1}`,
	} {
		objs = append(objs, object(t, fmt.Sprintf("o%d", i), spec))
	}
	problems, err := Check(newCRD, crd.Version, objs)
	if err != nil || len(problems) != 0 {
		t.Fatalf("compatible change: %v, %v", problems, err)
	}
}

func TestCheckIgnoresMetadataAndStatus(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"a":{"type":"string"}}}`))
	obj := object(t, "x", `{"a":"ok"}`)
	obj.Object["status"] = map[string]any{"unknownStatusField": int64(1), "conditions": "not a list"}
	obj.Object["metadata"].(map[string]any)["labels"] = map[string]any{"app": "shop"}
	obj.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "kubectl"}}
	c, err := NewChecker(v2, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Check(obj); p != nil {
		t.Fatalf("status or metadata produced a problem: %v", p)
	}
	// The same status with a spec problem: only the spec is reported.
	bad := obj.DeepCopy()
	bad.Object["spec"] = map[string]any{"a": int64(1), "b": int64(2)}
	if got := verdict(c.Check(bad)); got != "pruned spec.b, invalid spec.a (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)" {
		t.Fatalf("got %s", got)
	}
}

func TestCheckDoesNotModifyTheObject(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"a":{"type":"string"},"d":{"type":"string","default":"x"}}}`))
	obj := object(t, "x", `{"a":null,"gone":{"deep":[1,{"b":2}]}}`)
	before := obj.DeepCopy()
	c, _ := NewChecker(v2, crd.Version)
	if got := verdict(c.Check(obj)); got != "pruned spec.gone, null dropped spec.a" {
		t.Fatalf("got %s", got)
	}
	if !reflect.DeepEqual(obj.Object, before.Object) {
		t.Fatalf("object modified:\n%v\nwas\n%v", obj.Object, before.Object)
	}
}

func TestCheckSortsAndSkipsValidObjects(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object","properties":{"a":{"type":"string"}}}`))
	objs := []*unstructured.Unstructured{
		object(t, "b", `{"x":1}`), object(t, "ok", `{"a":"a"}`), object(t, "a", `{"x":1}`),
	}
	objs[0].SetNamespace("z")
	problems, err := Check(v2, crd.Version, objs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range problems {
		names = append(names, p.Object())
	}
	if got := strings.Join(names, " "); got != "ns/a z/b" {
		t.Fatalf("problems for %s, want ns/a z/b", got)
	}
}

func TestNewCheckerErrors(t *testing.T) {
	v2 := testCRD(t, props(t, `{"type":"object"}`))
	if _, err := NewChecker(v2, "v9"); err == nil || !strings.Contains(err.Error(), "shops.apps.chartkind.io has no version v9") {
		t.Fatalf("unknown version: %v", err)
	}
	if _, err := Check(v2, "v9", nil); err == nil {
		t.Fatal("Check with an unknown version did not fail")
	}
	broken := v2.DeepCopy()
	broken.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"a": {Type: "string", Items: &apiextensionsv1.JSONSchemaPropsOrArray{JSONSchemas: []apiextensionsv1.JSONSchemaProps{{}, {}}}}}}
	if _, err := NewChecker(broken, crd.Version); err == nil || !strings.Contains(err.Error(), "not structural") {
		t.Fatalf("non-structural schema: %v", err)
	}
}

func TestObjectProblemString(t *testing.T) {
	p := ObjectProblem{Namespace: "ns", Name: "db1", Pruned: []string{"spec.foo"}, NullsDropped: []string{"spec.note"},
		Invalid: field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), int64(7), "must be <= 5")}}
	want := `ns/db1: spec.foo: would be pruned; spec.note: null would be dropped; spec.replicas: Invalid value: 7: must be <= 5`
	if got := p.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := (ObjectProblem{Name: "cluster-wide", Pruned: []string{"spec.x"}}).String(); got != "cluster-wide: spec.x: would be pruned" {
		t.Fatalf("cluster-scoped: %s", got)
	}
	// A pathless error reads as its detail, not as "<nil>: Invalid value: null: …".
	const notChecked = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
	p = ObjectProblem{Namespace: "ns", Name: "db", Invalid: field.ErrorList{field.Invalid(nil, nil, notChecked)}}
	if got := p.String(); got != "ns/db: "+notChecked {
		t.Fatalf("pathless error: %s", got)
	}
}

// TestCheckerIsSafeForConcurrentUse lets the race detector (go test -race)
// see one Checker used from several goroutines, as a controller may.
func TestCheckerIsSafeForConcurrentUse(t *testing.T) {
	c, err := NewChecker(generatedCRD(t, benchSchema, v1alpha1.DefaultsDescribe), crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := object(t, "good", benchSpec(1)), object(t, "bad", `{"tier":"huge","replicas":"x","unknown":1}`)
	want := verdict(c.Check(bad))
	errs := make(chan string, 8)
	for range 8 {
		go func() {
			for range 50 {
				if p := c.Check(good); p != nil {
					errs <- "valid object: " + p.String()
					return
				}
				if got := verdict(c.Check(bad)); got != want {
					errs <- "invalid object: " + got
					return
				}
			}
			errs <- ""
		}()
	}
	for range 8 {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
}

func TestSummarize(t *testing.T) {
	pruned := func(name string, fields ...string) ObjectProblem {
		return ObjectProblem{Namespace: "ns", Name: name, Pruned: fields}
	}
	invalid := ObjectProblem{Namespace: "ns", Name: "db2", Invalid: field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), "3", "must be an integer")}}

	if got := Summarize(nil, 3); got != "" {
		t.Fatalf("no problems: %q", got)
	}
	for _, tc := range []struct {
		problems []ObjectProblem
		max      int
		want     string
	}{
		{[]ObjectProblem{pruned("db1", "spec.foo")}, 3,
			`1 object would lose data: ns/db1 (spec.foo: would be pruned)`},
		{[]ObjectProblem{invalid}, 3,
			`1 object would become invalid: ns/db2 (spec.replicas: Invalid value: "3": must be an integer)`},
		{[]ObjectProblem{pruned("db1", "spec.foo"), invalid, pruned("db3", "spec.a", "spec.b", "spec.c")}, 2,
			`3 objects would lose data or become invalid: ns/db1 (spec.foo: would be pruned), ns/db2 (spec.replicas: Invalid value: "3": must be an integer), and 1 more`},
		{[]ObjectProblem{pruned("db3", "spec.a", "spec.b", "spec.c")}, 1,
			`1 object would lose data: ns/db3 (spec.a: would be pruned; spec.b: would be pruned; 1 more)`},
		{[]ObjectProblem{pruned("db1", "spec.foo"), pruned("db2", "spec.foo")}, 0,
			`2 objects would lose data: 2 more`},
	} {
		if got := Summarize(tc.problems, tc.max); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestSummarizeStaysShort(t *testing.T) {
	long := strings.Repeat("é", 2000)
	var problems []ObjectProblem
	for i := range 500 {
		problems = append(problems, ObjectProblem{Namespace: "namespace-" + strings.Repeat("n", 50), Name: fmt.Sprintf("object-%d", i),
			Pruned:  []string{"spec." + long},
			Invalid: field.ErrorList{field.Invalid(field.NewPath("spec", "x"), long, long)}})
	}
	for _, max := range []int{1, 5, 1000} {
		got := Summarize(problems, max)
		if len(got) > 1024 {
			t.Errorf("max %d: %d bytes", max, len(got))
		}
		if !strings.HasPrefix(got, "500 objects would lose data or become invalid: namespace-") || !strings.HasSuffix(got, " more") {
			t.Errorf("max %d: %s", max, got)
		}
		if !strings.Contains(got, "object-0 (") {
			t.Errorf("max %d: the first object is not named: %s", max, got)
		}
		if !utf8.ValidString(got) {
			t.Errorf("max %d: cut inside a rune", max)
		}
	}
	// One object whose name alone nearly fills the budget is still named, cut.
	huge := []ObjectProblem{{Name: strings.Repeat("x", 2000), Pruned: []string{"spec.a"}}}
	if got := Summarize(huge, 3); len(got) > 1024 || !strings.Contains(got, "xxx") {
		t.Errorf("huge name: %d bytes: %.80s…", len(got), got)
	}
}
