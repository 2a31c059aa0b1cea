package schemachange

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/testenv"
)

// The chart's schema before and after a release that narrows it, written as a
// chart author would (JSON Schema) and converted by chartkind's converter.
const (
	schemaV1 = `{"type":"object","additionalProperties":false,"properties":{
		"legacy":{"type":"string"},
		"size":{"type":"string"},
		"tier":{"type":["string","null"],"enum":["small","medium","large",null]},
		"mode":{"type":"string","enum":["a","b","c"]},
		"version":{"type":"string"},
		"replicas":{"type":"integer","maximum":10},
		"note":{"type":["string","null"]},
		"extra":{"type":"object","properties":{"known":{"type":"string"}}},
		"servers":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"host":{"type":"string"},"port":{"type":"integer"}}}}}}`
	schemaV2 = `{"type":"object","additionalProperties":false,"properties":{
		"size":{"type":"integer"},
		"tier":{"type":["string","null"],"enum":["small","medium",null]},
		"mode":{"type":"string","enum":["a","b"]},
		"version":{"type":"string","pattern":"^v[0-9]+$"},
		"replicas":{"type":"integer","maximum":5},
		"note":{"type":"string"},
		"extra":{"type":"object","additionalProperties":false,"properties":{"known":{"type":"string"}}},
		"servers":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["port"],"properties":{"host":{"type":"string"},"port":{"type":"integer"}}}},
		"color":{"type":"string","default":"blue"}}}`
)

// TestCheckMatchesAPIServer creates objects under a CRD, replaces the CRD with
// a narrowed one, and compares Check's verdict for every object with what a
// real kube-apiserver does: the spec it serves (pruned, nulls dropped,
// defaulted) and whether it refuses the object, with the same field errors.
// It also records how the API server treats the existing objects on update
// (validation ratcheting) and that pruned data survives only until a write.
func TestCheckMatchesAPIServer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	v1 := generatedCRD(t, schemaV1, v1alpha1.DefaultsDescribe)
	v2 := generatedCRD(t, schemaV2, v1alpha1.DefaultsApply)

	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: v1.Spec.Group, Version: crd.Version, Resource: v1.Spec.Names.Plural}
	res := dyn.Resource(gvr).Namespace("default")

	if err := env.Client.Create(ctx, v1.DeepCopy()); err != nil {
		t.Fatalf("creating CRD v1: %v", err)
	}
	waitEstablished(t, env, v1.Name)

	// The definition controller compares the CRD read from the cluster with a
	// freshly generated one: the round trip through the API server must not
	// look like a change.
	var fromCluster apiextensionsv1.CustomResourceDefinition
	if err := env.Client.Get(ctx, client.ObjectKey{Name: v1.Name}, &fromCluster); err != nil {
		t.Fatal(err)
	}
	clusterSpec, err := SpecSchema(&fromCluster, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	generatedSpec, _ := SpecSchema(v1, crd.Version)
	if cs := Classify(clusterSpec, generatedSpec); len(cs) != 0 {
		t.Errorf("the CRD read back from the API server differs from the generated one: %v", cs)
	}

	specs := map[string]string{
		"clean":     `{"mode":"a","replicas":3,"version":"v1","tier":"small","size":null}`,
		"legacy":    `{"legacy":"old","mode":"b"}`,
		"size":      `{"size":"10Gi"}`,
		"tier":      `{"tier":"large"}`,
		"tier-null": `{"tier":null}`,
		"mode":      `{"mode":"c"}`,
		"version":   `{"version":"latest"}`,
		"replicas":  `{"replicas":7}`,
		"note":      `{"note":null}`,
		"extra":     `{"extra":{"known":"k","custom":{"x":[1,2]}}}`,
		"servers":   `{"servers":[{"host":"a","port":1},{"host":"b"}]}`,
		"mixed":     `{"legacy":"x","size":"1","mode":"c","extra":{"other":true}}`,
	}
	for name, spec := range specs {
		if _, err := res.Create(ctx, inDefault(object(t, name, spec)), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s under v1: %v", name, err)
		}
	}
	// Optional fields are nullable (the converter keeps nulls for the
	// webhook): "size": null is stored. What is listed is what Check must be
	// given.
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]*unstructured.Unstructured{}
	var objects []*unstructured.Unstructured
	for i := range list.Items {
		stored[list.Items[i].GetName()] = &list.Items[i]
		objects = append(objects, &list.Items[i])
	}

	// The classification names every narrowing of this release.
	oldSpec, _ := SpecSchema(v1, crd.Version)
	newSpec, _ := SpecSchema(v2, crd.Version)
	changes := Classify(oldSpec, newSpec)
	for _, c := range changes {
		t.Logf("change: %-18s %s", c.Kind, c)
	}
	var breaking []string
	for _, c := range Breaking(changes) {
		breaking = append(breaking, c.Kind.String()+" "+c.Path)
	}
	for _, want := range []string{"PropertyRemoved spec.legacy", "TypeChanged spec.size", "EnumNarrowed spec.tier", "EnumNarrowed spec.mode",
		"PatternAdded spec.version", "BoundsTightened spec.replicas", "NullableRemoved spec.servers[*].port", "ObjectClosed spec.extra", "RequiredAdded spec.servers[*].port"} {
		if !slices.Contains(breaking, want) {
			t.Errorf("breaking changes lack %s: %v", want, breaking)
		}
	}

	checker, err := NewChecker(v2, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := Check(v2, crd.Version, objects)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]ObjectProblem{}
	for _, p := range problems {
		byName[p.Name] = p
		t.Logf("verdict: %s", p)
	}
	t.Logf("summary: %s", Summarize(problems, 3))

	// What Check says, in short, so that a wrong verdict that the API server
	// happens to share still fails here. The schema has a CEL rule (tier), so a
	// schema error adds the API server's pathless "rules were not checked".
	wantVerdicts := map[string]string{
		"clean":     "ok",
		"legacy":    "pruned spec.legacy",
		"size":      "invalid spec.size (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)",
		"tier":      "invalid spec.tier (FieldValueInvalid)",
		"tier-null": "ok",
		"mode":      "invalid spec.mode (FieldValueInvalid)", // optional, so nullable: the enum is a CEL rule
		"version":   "invalid spec.version (FieldValueInvalid)",
		"replicas":  "invalid spec.replicas (FieldValueInvalid)",
		"note":      "ok", // optional, so nullable in v2 too: the null reaches the webhook
		"extra":     "pruned spec.extra.custom",
		"servers":   "invalid spec.servers[1].port (FieldValueRequired), invalid <nil> (FieldValueInvalid)",
		"mixed":     "pruned spec.extra.other, pruned spec.legacy, invalid spec.size (FieldValueTypeInvalid), invalid <nil> (FieldValueInvalid)",
	}
	for name := range specs {
		var p *ObjectProblem
		if q, ok := byName[name]; ok {
			p = &q
		}
		if got := verdict(p); got != wantVerdicts[name] {
			t.Errorf("%s: Check says %s, want %s", name, got, wantVerdicts[name])
		}
	}

	// Serve v2.
	applyCRDSpec(t, env, v1.Name, v2)
	waitServing(t, res, true)

	written := map[string]bool{}
	for name := range specs {
		obj := stored[name]
		predicted := checker.check(obj)
		p := byName[name]

		// 1. A read: pruned fields and dropped nulls are gone, defaults applied,
		// exactly as Check predicts; and the reported paths are exactly what
		// went missing.
		got, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		served := got.Object["spec"]
		if !reflect.DeepEqual(served, predicted.Spec) {
			t.Errorf("%s: the API server serves spec %v, Check predicted %v", name, served, predicted.Spec)
		}
		expected := removePaths(t, obj.Object["spec"], append(append([]string{}, p.Pruned...), p.NullsDropped...))
		if m, ok := expected.(map[string]any); ok {
			if _, set := m["color"]; !set {
				m["color"] = "blue"
			}
		}
		if !reflect.DeepEqual(served, expected) {
			t.Errorf("%s: stored spec minus the reported paths (%v, %v) is %v, the API server serves %v", name, p.Pruned, p.NullsDropped, expected, served)
		}

		// 2. Would the API server accept this object? A server-side dry-run
		// create of the same spec answers without ratcheting, field by field.
		probe := inDefault(object(t, name+"-probe", "{}"))
		probe.Object["spec"] = obj.Object["spec"]
		_, err = res.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		gotCauses, wantCauses := causes(t, err), errorFields(p)
		t.Logf("%s: API server serves %v; dry-run create: %v", name, served, err)
		if gotCauses != wantCauses {
			t.Errorf("%s: the API server refuses with [%s], Check says [%s] (error: %v)", name, gotCauses, wantCauses, err)
		}

		// 3. An update that leaves the invalid fields alone is accepted
		// (CRD validation ratcheting), and is a write: pruned data is gone for good.
		if len(p.Invalid) > 0 || name == "extra" {
			got.SetLabels(map[string]string{"touched": "true"})
			if _, err := res.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
				t.Errorf("%s: a metadata-only update of an existing object was refused: %v", name, err)
			}
			written[name] = true
		}
	}

	// 4. Changing an invalid field is validated: only a valid value is accepted.
	sizeObj, err := res.Get(ctx, "size", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(sizeObj.Object, "20Gi", "spec", "size")
	if _, err := res.Update(ctx, sizeObj, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("changing spec.size to another string: %v, want Invalid", err)
	}
	_ = unstructured.SetNestedField(sizeObj.Object, int64(20), "spec", "size")
	if _, err := res.Update(ctx, sizeObj, metav1.UpdateOptions{}); err != nil {
		t.Errorf("changing spec.size to an integer: %v", err)
	}

	// 5. Roll back to v1: pruned data of an object never written since comes
	// back; that of a written object does not.
	applyCRDSpec(t, env, v1.Name, v1)
	waitServing(t, res, false)
	for name, field := range map[string][]string{"legacy": {"spec", "legacy"}, "extra": {"spec", "extra", "custom"}, "mixed": {"spec", "legacy"}} {
		got, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, found, _ := unstructured.NestedFieldNoCopy(got.Object, field...)
		if found == written[name] {
			t.Errorf("%s after rollback: %s present=%v, but written under v2=%v", name, strings.Join(field, "."), found, written[name])
		}
	}
	got, err := res.Get(ctx, "note", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, found, _ := unstructured.NestedFieldNoCopy(got.Object, "spec", "note"); !found || v != nil {
		t.Errorf("note after rollback: the null dropped on read under v2 should be back: %v", got.Object["spec"])
	}
}

func inDefault(u *unstructured.Unstructured) *unstructured.Unstructured {
	u.SetNamespace("default")
	return u
}

func waitEstablished(t *testing.T, env *testenv.Env, name string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "CRD "+name+" Established", func(ctx context.Context) error {
		var c apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
			return err
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Established")
	})
}

// applyCRDSpec replaces the spec of the CRD in the cluster with want's.
func applyCRDSpec(t *testing.T, env *testenv.Env, name string, want *apiextensionsv1.CustomResourceDefinition) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "CRD "+name+" update", func(ctx context.Context) error {
		var c apiextensionsv1.CustomResourceDefinition
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &c); err != nil {
			return err
		}
		c.Spec = *want.Spec.DeepCopy()
		return env.Client.Update(ctx, &c)
	})
}

// waitServing waits until the API server serves v2 (which does not know
// spec.legacy) or, with v2 false, v1 again: a strict dry-run create with
// spec.legacy fails only under v2.
func waitServing(t *testing.T, res dynamic.ResourceInterface, v2 bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("the API server to serve the new schema (v2=%v)", v2), func(ctx context.Context) error {
		probe := inDefault(object(t, "serving-probe", `{"legacy":"x"}`))
		_, err := res.Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		unknown := err != nil && strings.Contains(err.Error(), `unknown field "spec.legacy"`)
		if unknown != v2 {
			return fmt.Errorf("dry-run create with spec.legacy: %v", err)
		}
		return nil
	})
}

// causes renders the field errors of an API error like errorFields does.
func causes(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) || status.Status().Details == nil {
		t.Fatalf("not a validation error: %v", err)
	}
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field+" "+string(c.Type))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func errorFields(p ObjectProblem) string {
	var out []string
	for _, e := range p.Invalid {
		out = append(out, e.Field+" "+string(e.Type))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// removePaths deep-copies spec without the fields at paths (spec.a.b[0].c),
// an implementation independent of the API server's to check the reported paths.
func removePaths(t *testing.T, spec any, paths []string) any {
	t.Helper()
	cp := runtime.DeepCopyJSONValue(spec)
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, "spec")
		if !ok {
			t.Fatalf("path %s is not under spec", p)
		}
		var tokens []string // keys, or [n] for indexes
		for rest != "" {
			switch {
			case strings.HasPrefix(rest, "."):
				rest = rest[1:]
				end := strings.IndexAny(rest, ".[")
				if end < 0 {
					end = len(rest)
				}
				tokens, rest = append(tokens, rest[:end]), rest[end:]
			case strings.HasPrefix(rest, "["):
				end := strings.Index(rest, "]")
				tokens, rest = append(tokens, rest[:end+1]), rest[end+1:]
			default:
				t.Fatalf("cannot parse path %s", p)
			}
		}
		node := cp
		for i, tok := range tokens {
			last := i == len(tokens)-1
			if strings.HasPrefix(tok, "[") {
				idx, _ := strconv.Atoi(strings.Trim(tok, "[]"))
				node = node.([]any)[idx]
				continue
			}
			m := node.(map[string]any)
			if last {
				if _, ok := m[tok]; !ok {
					t.Errorf("reported path %s does not exist in the stored object", p)
				}
				delete(m, tok)
				break
			}
			node = m[tok]
		}
	}
	return cp
}
