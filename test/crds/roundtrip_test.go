package crds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/crd"
	"github.com/chartkind/chartkind/internal/definition"
	gen "github.com/chartkind/chartkind/internal/generate"
	"github.com/chartkind/chartkind/internal/testenv"
)

// TestPrintedCRDChecksWhatIsApplied: for every corpus chart, the CRD that
// `chartkind generate` prints (YAML, read back as kubectl reads it) and the
// CRD the operator applies (generate.CRD in memory, serialized as the
// definition controller serializes it for its server-side apply) are both
// created on one real API server, under two groups; every case of a mutation
// suite derived from the CRD's own schema (nulls, wrong types, enum members
// and neighbours such as -2.5 next to -2, bounds and their neighbours,
// lengths, patterns, item types) is then sent to both with a server-side dry
// run. Both must give the same verdict and store the same spec, and that
// verdict must be the one of chartkind's offline check of the in-memory CRD
// (internal/crd.Checker, used by `chartkind validate`).
func TestPrintedCRDChecksWhatIsApplied(t *testing.T) {
	charts := append(corpus.Load(t), constChart(t))
	env := testenv.Start(t, testenv.Options{})
	var (
		mu                       sync.Mutex
		cases, accepted, refused int
	)
	t.Run("charts", func(t *testing.T) {
		for _, c := range charts {
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				a, r := roundTrip(t, env, c)
				mu.Lock()
				cases, accepted, refused = cases+a+r, accepted+a, refused+r
				mu.Unlock()
			})
		}
	})
	t.Logf("%d charts, %d cases sent to the printed and the applied CRD: %d accepted, %d refused by both", len(charts), cases, accepted, refused)
	if refused == 0 || accepted == 0 {
		t.Fatalf("the mutation suite is one-sided: %d accepted, %d refused", accepted, refused)
	}
}

// constChart is the case that was found: `const: -2.0` on a number printed
// as `enum: [-2]`, which the API server then compares as an int64 (so -2.5
// passes), while chartkind's in-memory CRD held the float64 -2.0.
func constChart(t *testing.T) corpus.Chart {
	dir := filepath.Join(t.TempDir(), "const-number")
	files := map[string]string{
		"Chart.yaml":         "apiVersion: v2\nname: const-number\nversion: 0.1.0\n",
		"values.yaml":        "",
		"values.schema.json": `{"properties": {"o": {"type": "object", "required": ["n"], "properties": {"n": {"type": "number", "const": -2.0}, "m": {"type": "number", "enum": [1e3, 2.5]}}}}}`,
	}
	for name, body := range files {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return corpus.Chart{Name: "const-number", Dir: dir}
}

func roundTrip(t *testing.T, env *testenv.Env, cc corpus.Chart) (accepted, refused int) {
	ctx := context.Background()
	c, err := chart.Load(cc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	def, err := definition.ForChart(c.Name, c.Version, v1alpha1.ChartTemplate{Name: c.Name, SourceRef: helmv2.CrossNamespaceObjectReference{Kind: "HelmRepository", Name: "charts"}})
	if err != nil {
		t.Fatal(err)
	}
	// A prefix every object name fits (a long chart name's derived prefix
	// would make the name rules refuse every object, and every verdict).
	def.Spec.Release.Prefix = "x-"

	// What the operator applies.
	res, err := gen.CRD(gen.Input{Definition: def, Chart: c})
	if err != nil {
		t.Fatal(err)
	}
	checker, err := crd.NewChecker(res.CRD, crd.Version)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(res.CRD.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	applied := &unstructured.Unstructured{Object: raw}
	applied.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	unstructured.RemoveNestedField(applied.Object, "status")
	unstructured.RemoveNestedField(applied.Object, "metadata", "creationTimestamp")

	// What `chartkind generate` prints for the same definition and chart.
	defFile := filepath.Join(t.TempDir(), "definition.yaml")
	defYAML, err := yaml.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(defFile, defYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	printedJSON, err := yaml.YAMLToJSON([]byte(generate(t, defFile, cc.Dir)))
	if err != nil {
		t.Fatal(err)
	}
	printed := &unstructured.Unstructured{}
	if err := printed.UnmarshalJSON(printedJSON); err != nil {
		t.Fatal(err)
	}

	group := res.CRD.Spec.Group
	plural := res.CRD.Spec.Names.Plural
	kind := res.CRD.Spec.Names.Kind
	groups := map[string]*unstructured.Unstructured{"applied." + group: applied, "printed." + group: printed}
	for g, u := range groups {
		if err := unstructured.SetNestedField(u.Object, g, "spec", "group"); err != nil {
			t.Fatal(err)
		}
		u.SetName(plural + "." + g)
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("API server refused the CRD %s: %v", u.GetName(), err)
		}
		waitEstablished(t, env, u.GetName())
	}
	t.Cleanup(func() {
		for _, u := range groups {
			_ = env.Client.Delete(context.Background(), u)
		}
	})

	specs := crdMutations(res.CRD.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"], 30)
	for i, spec := range specs {
		specJSON, _ := json.Marshal(spec)
		var decoded map[string]any
		if err := utiljson.Unmarshal(specJSON, &decoded); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("x-%d", i)
		offline := checker.Check(map[string]any{
			"apiVersion": group + "/" + crd.Version, "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": "default"}, "spec": decoded,
		})
		offlineOK := len(offline.Pruned) == 0 && len(offline.Invalid) == 0
		var (
			verdicts []string
			oks      []bool
			stored   []any
		)
		for _, g := range []string{"applied." + group, "printed." + group} {
			ok, got, msg := dryRunCreate(t, env, g+"/"+crd.Version, kind, name, decoded)
			verdicts = append(verdicts, fmt.Sprintf("%s: accepted=%v %s", g, ok, msg))
			oks = append(oks, ok)
			if ok != offlineOK {
				t.Errorf("spec %s: %s, chartkind's offline check of the applied CRD: accepted=%v (pruned %v, %v)",
					trunc(specJSON), verdicts[len(verdicts)-1], offlineOK, offline.Pruned, offline.Invalid)
			}
			stored = append(stored, got)
		}
		if oks[0] != oks[1] {
			t.Errorf("spec %s: the printed and the applied CRD disagree:\n  %s\n  %s", trunc(specJSON), verdicts[0], verdicts[1])
		}
		if !reflect.DeepEqual(stored[0], stored[1]) {
			a, _ := json.Marshal(stored[0])
			b, _ := json.Marshal(stored[1])
			t.Errorf("spec %s: stored differently:\n  applied: %s\n  printed: %s", trunc(specJSON), trunc(a), trunc(b))
		}
		if offlineOK {
			accepted++
		} else {
			refused++
		}
	}
	return accepted, refused
}

// dryRunCreate creates an object with a server-side dry run and returns
// whether the API server accepted it, the spec it would store, and its error.
// Pruned fields count as refused, as with kubectl's default
// --validate=strict (the API server's field validation reports them).
func dryRunCreate(t *testing.T, env *testenv.Env, apiVersion, kind, name string, spec map[string]any) (bool, any, string) {
	t.Helper()
	var (
		ok     bool
		stored any
		msg    string
	)
	// The discovery of a new kind can lag its Established condition.
	testenv.WaitFor(t, 30*time.Second, "dry-run create on "+apiVersion, func(ctx context.Context) error {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": "default"},
			"spec":     runtime.DeepCopyJSONValue(spec),
		}}
		err := env.Client.Create(ctx, obj, client.DryRunAll, client.FieldValidation("Strict"))
		var status apierrors.APIStatus
		switch {
		case err == nil:
			ok, stored, msg = true, obj.Object["spec"], ""
			return nil
		case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
			ok, stored, msg = false, nil, err.Error()
			return nil
		case errors.As(err, &status) && apierrors.IsNotFound(err):
			return err
		}
		return err
	})
	return ok, stored, msg
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// crdMutations derives at most n specs from a CRD's spec schema, each setting
// one field (at any depth, through array items and map values) to a value
// chosen to sit on an edge of the field's schema: null, a wrong type, each
// enum member and a neighbour of it (-2.5 beside -2, a string beside the
// strings), each bound and the value just past it, lengths around min/max,
// a string the pattern may refuse, a fractional number for an integer. The
// cases are spread over the whole schema.
func crdMutations(spec apiextensionsv1.JSONSchemaProps, n int) []map[string]any {
	type edit struct {
		path []string
		v    any
	}
	var all []edit
	var walk func(p *apiextensionsv1.JSONSchemaProps, path []string, depth int)
	walk = func(p *apiextensionsv1.JSONSchemaProps, path []string, depth int) {
		if depth > 6 {
			return
		}
		add := func(v any) { all = append(all, edit{append([]string(nil), path...), v}) }
		if len(path) > 0 {
			add(nil)
			switch {
			case p.XIntOrString:
				add(true)
				add(1.5)
			case p.Type == "string":
				add(int64(7))
			case p.Type == "integer":
				add("7")
				add(1.5)
			case p.Type == "number":
				add("7")
				add(true)
			case p.Type == "boolean":
				add("true")
			case p.Type == "object":
				add("x")
			case p.Type == "array":
				add(map[string]any{})
			}
			for _, e := range p.Enum {
				var v any
				if err := utiljson.Unmarshal(e.Raw, &v); err != nil {
					continue
				}
				add(v)
				switch x := v.(type) {
				case int64:
					add(float64(x) - 0.5)
					add(float64(x) + 0.5)
				case float64:
					add(x - 0.5)
					add(x + 0.25)
					add(math.Trunc(x))
				case string:
					add(x + "-not")
				}
			}
			num := func(f float64) any {
				if p.Type == "integer" && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
					return int64(f)
				}
				return f
			}
			step := 0.5
			if p.Type == "integer" {
				step = 1
			}
			if p.Minimum != nil {
				add(num(*p.Minimum))
				add(num(*p.Minimum - step))
			}
			if p.Maximum != nil {
				add(num(*p.Maximum))
				add(num(*p.Maximum + step))
			}
			if p.MultipleOf != nil {
				add(num(*p.MultipleOf * 1.5))
			}
			if p.MinLength != nil && *p.MinLength > 0 {
				add(strings.Repeat("a", int(*p.MinLength)-1))
			}
			if p.MaxLength != nil && *p.MaxLength < 1000 {
				add(strings.Repeat("a", int(*p.MaxLength)+1))
			}
			if p.Pattern != "" {
				add("chartkind !@#")
			}
			if p.Format != "" {
				add("not-a-" + p.Format)
			}
		}
		keys := make([]string, 0, len(p.Properties))
		for k := range p.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := p.Properties[k]
			walk(&child, append(path, k), depth+1)
		}
		if p.AdditionalProperties != nil && p.AdditionalProperties.Schema != nil {
			walk(p.AdditionalProperties.Schema, append(path, "chartkind-entry"), depth+1)
		}
		if p.Items != nil && p.Items.Schema != nil {
			walk(p.Items.Schema, append(path, "[]"), depth+1)
		}
	}
	walk(&spec, nil, 0)
	out := []map[string]any{{}}
	for i := 0; i < n-1 && i < len(all); i++ {
		e := all[i*len(all)/min(n-1, len(all))]
		out = append(out, build(e.path, e.v))
	}
	return out
}

// build returns a spec that holds v at path ("[]" is an array's one item).
func build(path []string, v any) map[string]any {
	var at func(i int) any
	at = func(i int) any {
		if i == len(path) {
			return v
		}
		if path[i] == "[]" {
			return []any{at(i + 1)}
		}
		return map[string]any{path[i]: at(i + 1)}
	}
	m, _ := at(0).(map[string]any)
	return m
}
