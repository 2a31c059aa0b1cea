package lock_test

import (
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/lock"
)

const schema = `{
  "type": "object",
  "required": ["size"],
  "properties": {
    "replicas": {"type": "integer", "minimum": 1},
    "size": {"type": "string"},
    "extra": {"type": "string"},
    "image": {"type": "object", "properties": {"registry": {"type": "string"}, "tag": {"type": "string"}}},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    "closed": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "string"}}},
    "open": {"type": "object", "additionalProperties": true, "properties": {"a": {"type": "string"}}},
    "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
    "extraDeploy": {"type": "array", "items": {}}
  }
}`

func definition(set string, locked ...string) *v1alpha1.ApplicationDefinition {
	d := &v1alpha1.ApplicationDefinition{Spec: v1alpha1.ApplicationDefinitionSpec{
		Application: v1alpha1.ApplicationNames{Kind: "Widget"},
		Schema:      &apiextensionsv1.JSON{Raw: []byte(schema)},
		Values:      &v1alpha1.AdministratorValues{Locked: locked},
	}}
	if set != "" {
		d.Spec.Values.Set = &apiextensionsv1.JSON{Raw: []byte(set)}
	}
	d.Name = "widgets"
	return d
}

func TestPaths(t *testing.T) {
	got, err := lock.Paths(definition(`{"extra":"admin","image":{"registry":"r.example","tag":"1"},"tags":{}}`, "size", "image.registry", "image", "extra"))
	if err != nil {
		t.Fatal(err)
	}
	// image covers image.registry and image.tag; an empty map is a leaf.
	if want := []string{"extra", "image", "size", "tags"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
	if _, err := lock.Paths(definition(`[1]`)); err == nil {
		t.Fatal("a set that is not an object must be an error")
	}
}

func TestGeneratedCRDRefusesLockedPaths(t *testing.T) {
	def := definition(`{"extra":"admin","image":{"registry":"r.example"}}`, "size", "tags.team", "extraDeploy", "open.b")
	res, err := generate.CRD(generate.Input{Definition: def})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := generate.CRD(generate.Input{Definition: definition("")})
	if err != nil {
		t.Fatal(err)
	}
	if res.SchemaDigest == plain.SchemaDigest {
		t.Fatal("locks must change the schema digest")
	}
	spec := res.CRD.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	if got := spec.Properties["size"].Description; got != lock.LockedDescription("widgets") {
		t.Fatalf("size description = %q", got)
	}
	if len(spec.Required) != 0 {
		t.Fatalf("a locked property must not stay required: %v", spec.Required)
	}
	c, err := crd.NewChecker(res.CRD, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec map[string]any
		path string
	}{
		{map[string]any{"size": "L"}, "spec.size"},
		{map[string]any{"extra": "mine"}, "spec.extra"},
		{map[string]any{"image": map[string]any{"registry": "evil"}}, "spec.image.registry"},
		{map[string]any{"tags": map[string]any{"team": "x"}}, "spec.tags.[team]"},
		{map[string]any{"extraDeploy": []any{map[string]any{"kind": "ClusterRoleBinding"}}}, "spec.extraDeploy"},
		{map[string]any{"open": map[string]any{"b": map[string]any{"x": "y"}}}, "spec.open.b"},
	} {
		r := c.Check(map[string]any{"spec": tc.spec})
		if len(r.Invalid) != 1 || r.Invalid[0].Field != tc.path || !strings.Contains(r.Invalid[0].Error(), "is locked: it is set by the administrator (ApplicationDefinition widgets)") {
			t.Errorf("%v: got %v, want one error at %s", tc.spec, r.Invalid, tc.path)
		}
	}
	ok := c.Check(map[string]any{"spec": map[string]any{"replicas": int64(2), "image": map[string]any{"tag": "2"}, "tags": map[string]any{"other": "y"}, "open": map[string]any{"a": "x", "c": "y"}}})
	if !ok.Clean() {
		t.Fatalf("unlocked values refused: %+v", ok)
	}
}

func TestLockErrors(t *testing.T) {
	for path, want := range map[string]string{
		"list.x":      "spec.list is a list",
		"tags.team.x": "spec.tags is a map",
		"nope.x":      "spec.nope is not declared",
		"closed.b":    "spec.closed.b is not declared in the schema and spec.closed keeps no unknown fields",
		"size.x":      "spec.size is a string",
	} {
		_, err := generate.CRD(generate.Input{Definition: definition("", path)})
		if err == nil || !strings.Contains(err.Error(), "cannot lock spec."+path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", path, err, want)
		}
	}
}

func TestOpenSpec(t *testing.T) {
	spec := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTrue()}
	if err := lock.Schema(spec, "d", []string{"extraDeploy"}, nil); err != nil {
		t.Fatal(err)
	}
	if spec.XValidations[0].Rule != "!has(self.extraDeploy)" {
		t.Fatalf("rules: %v", spec.XValidations)
	}
	if p := spec.Properties["extraDeploy"]; p.Type != "object" {
		t.Fatalf("without a default the locked property is an object: %+v", p)
	}
}

// An undeclared locked property takes the type of its default in
// values.yaml (bitnami nginx declares no extraDeploy in its schema, and
// defaults it to []), so a list reaches the lock's rule instead of failing
// a type check first; list items take the type of the default's items.
func TestLockedTypeFromDefaults(t *testing.T) {
	spec := &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTrue()}
	defaults := map[string]any{"extraDeploy": []any{}, "args": []any{"a"}, "name": "x", "n": 1.0, "on": true, "m": map[string]any{}}
	if err := lock.Schema(spec, "d", []string{"extraDeploy", "args", "name", "n", "on", "m", "none"}, defaults); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"extraDeploy": "array/object", "args": "array/string", "name": "string", "n": "number", "on": "boolean", "m": "object", "none": "object"} {
		p := spec.Properties[name]
		got := p.Type
		if p.Items != nil {
			got += "/" + p.Items.Schema.Type
		}
		if got != want {
			t.Errorf("%s: type %s, want %s", name, got, want)
		}
	}
}

func ptrTrue() *bool { b := true; return &b }

func TestMergeStripChanged(t *testing.T) {
	user := map[string]any{"a": map[string]any{"x": 1.0, "y": 2.0}, "l": []any{1.0}, "s": "u"}
	set := map[string]any{"a": map[string]any{"y": 3.0}, "l": []any{2.0}, "n": map[string]any{"k": "v"}}
	got := lock.Merge(user, set)
	want := map[string]any{"a": map[string]any{"x": 1.0, "y": 3.0}, "l": []any{2.0}, "s": "u", "n": map[string]any{"k": "v"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merge = %v", got)
	}
	if user["a"].(map[string]any)["y"] != 2.0 {
		t.Fatal("merge changed its input")
	}
	stripped := lock.Strip(got, []string{"a.y", "l", "n.k", "missing.x"})
	if want := map[string]any{"a": map[string]any{"x": 1.0}, "s": "u", "n": map[string]any{}}; !reflect.DeepEqual(stripped, want) {
		t.Fatalf("strip = %v", stripped)
	}
	if c := lock.Changed(got, user, []string{"a.y", "a.x", "n.k", "s"}); !reflect.DeepEqual(c, []string{"a.y", "n.k"}) {
		t.Fatalf("changed = %v", c)
	}
}
