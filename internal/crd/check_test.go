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
)

func checkerFor(t *testing.T, spec apiextensionsv1.JSONSchemaProps) *Checker {
	t.Helper()
	def := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{Application: v1alpha1.ApplicationNames{Kind: "Cache"}}}
	def.Name = "cache"
	c, err := Build(Input{Definition: def, Spec: &spec})
	if err != nil {
		t.Fatal(err)
	}
	chk, err := NewChecker(c)
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

// TestCheckDoesWhatTheAPIServerDoes covers each step of the API server's
// handling of a created object: pruning, dropping nulls of non-nullable
// fields, defaulting, schema validation, list-type invariants and CEL.
func TestCheckDoesWhatTheAPIServerDoes(t *testing.T) {
	chk := checkerFor(t, apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"plain":    {Type: "string"},
			"nullable": {Type: "string", Nullable: true},
			"policy":   {Type: "string", Nullable: true, XValidations: apiextensionsv1.ValidationRules{{Rule: "self in ['lru', 'lfu']", Message: "must be lru or lfu"}}},
			"tags":     {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}, XListType: ptr.To("set")},
			"replicas": {Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte("3")}},
		},
	})
	for name, tc := range map[string]struct {
		spec       string
		wantPruned []string
		wantErrs   []string
		wantStored string
	}{
		"valid, default applied":               {`{"plain": "x"}`, nil, nil, `{"plain":"x","replicas":3}`},
		"unknown fields pruned":                {`{"plain": "x", "extra": {"a": 1}, "replicas": 1}`, []string{"spec.extra"}, nil, `{"plain":"x","replicas":1}`},
		"null of a non-nullable field dropped": {`{"plain": null, "nullable": null, "replicas": 1}`, nil, nil, `{"nullable":null,"replicas":1}`},
		"type error blocks CEL": {`{"plain": 5, "policy": "fifo", "replicas": 1}`, nil,
			[]string{`spec.plain: Invalid value: "integer": spec.plain in body must be of type string: "integer"`, "some validation rules were not checked"}, ""},
		"CEL rule":            {`{"policy": "fifo", "replicas": 1}`, nil, []string{`spec.policy: Invalid value: "fifo": must be lru or lfu`}, ""},
		"set with duplicates": {`{"tags": ["a", "a"], "replicas": 1}`, nil, []string{`spec.tags[1]: Duplicate value: "a"`}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			obj := object(t, tc.spec)
			pruned, errs := chk.Check(obj)
			if !reflect.DeepEqual(pruned, tc.wantPruned) {
				t.Errorf("pruned %v, want %v", pruned, tc.wantPruned)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.wantErrs) {
				t.Fatalf("errors %q, want %q", got, tc.wantErrs)
			}
			for i, w := range tc.wantErrs {
				if !strings.Contains(got[i], w) {
					t.Errorf("error %q does not contain %q", got[i], w)
				}
			}
			if tc.wantStored != "" {
				b, _ := json.Marshal(obj["spec"])
				if string(b) != tc.wantStored {
					t.Errorf("stored spec %s, want %s", b, tc.wantStored)
				}
			}
		})
	}
}
