package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/corpus"
	"github.com/chartkind/chartkind/internal/crd"
)

var update = flag.Bool("update", false, "rewrite golden files")

const examples = "../../examples/charts"

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// decodeCRDs splits a multi-document stream and returns every CRD in it.
func decodeCRDs(t *testing.T, stream string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, doc := range strings.Split(stream, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("output is not YAML: %v", err)
		}
		if meta.Kind != "CustomResourceDefinition" {
			continue
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict([]byte(doc), c); err != nil {
			t.Fatalf("output is not a CRD: %v", err)
		}
		out = append(out, c)
	}
	return out
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/cli -update` to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (run with -update if the change is intended)", path)
	}
}

func TestGenerateChartWithoutDefinition(t *testing.T) {
	code, out, errOut := run(t, "generate", filepath.Join(examples, "postgres"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	crds := decodeCRDs(t, out)
	if len(crds) != 1 || crds[0].Name != "postgreses.apps.chartkind.io" || crds[0].Spec.Names.Kind != "Postgres" {
		t.Fatalf("unexpected CRDs: %d", len(crds))
	}
	if err := crd.Validate(crds[0]); err != nil {
		t.Fatalf("written CRD does not validate: %v", err)
	}
	golden(t, "postgres-derived.golden.yaml", out)

	// Same input, same bytes.
	_, again, _ := run(t, "generate", filepath.Join(examples, "postgres"))
	if again != out {
		t.Fatal("generate is not deterministic")
	}
}

func TestGenerateDefinitionWithChart(t *testing.T) {
	def := "../../config/samples/chartkind_v1alpha1_applicationdefinition_postgres.yaml"
	code, out, errOut := run(t, "generate", "--definitions", def, filepath.Join(examples, "postgres"), filepath.Join(examples, "redis"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	crds := decodeCRDs(t, out)
	if len(crds) != 2 {
		t.Fatalf("want 2 CRDs (postgres from its definition, redis derived), got %d", len(crds))
	}
	pg := crds[0]
	if strings.Join(pg.Spec.Names.ShortNames, ",") != "pg" || strings.Join(pg.Spec.Names.Categories, ",") != "apps,databases" {
		t.Fatalf("definition's names not used: %+v", pg.Spec.Names)
	}
	var cols []string
	for _, c := range pg.Spec.Versions[0].AdditionalPrinterColumns {
		cols = append(cols, c.Name)
	}
	if !strings.Contains(strings.Join(cols, " "), "Replicas PG") {
		t.Fatalf("definition's printer columns missing: %v", cols)
	}
	if crds[1].Name != "redises.apps.chartkind.io" {
		t.Fatalf("second CRD = %s", crds[1].Name)
	}
	if strings.Count(out, "kind: ApplicationDefinition") != 2 {
		t.Fatalf("--definitions should write both definitions:\n%s", out)
	}
}

func TestGenerateOutputDir(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, "generate", "--output-dir", dir, filepath.Join(examples, "postgres"), filepath.Join(examples, "redis"))
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	for _, name := range []string{"postgreses.apps.chartkind.io.yaml", "redises.apps.chartkind.io.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(decodeCRDs(t, string(data))) != 1 {
			t.Fatalf("%s holds no CRD", name)
		}
	}
}

func TestGenerateErrorsNameTheInputAndWriteNothing(t *testing.T) {
	dir := t.TempDir()
	brokenChart := filepath.Join(dir, "broken")
	must(t, os.MkdirAll(brokenChart, 0o755))
	must(t, os.WriteFile(filepath.Join(brokenChart, "Chart.yaml"), []byte("apiVersion: v2\nname: broken\nversion: 0.1.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(brokenChart, "values.schema.json"), []byte(`{"type": "object", "properties": {"replicas": {"type": "integer", "minimum": "one"}}}`), 0o644))

	noChartDef := filepath.Join(dir, "def.yaml")
	must(t, os.WriteFile(noChartDef, []byte(`apiVersion: chartkind.io/v1alpha1
kind: ApplicationDefinition
metadata: {name: lonely}
spec:
  application: {kind: Lonely}
  release:
    chart: {name: lonely, sourceRef: {kind: HelmRepository, name: charts}}
`), 0o644))
	typoDef := filepath.Join(dir, "typo.yaml")
	must(t, os.WriteFile(typoDef, []byte(`apiVersion: chartkind.io/v1alpha1
kind: ApplicationDefinition
metadata: {name: typo}
spec:
  application: {kind: Typo, plurall: typos}
  release: {chart: {name: typo, sourceRef: {kind: HelmRepository, name: charts}}}
`), 0o644))

	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"missing path":     {[]string{filepath.Join(dir, "nope.tgz")}, []string{"nope.tgz"}},
		"schema invalid":   {[]string{brokenChart}, []string{"values.schema.json", "minimum"}},
		"no chart for def": {[]string{noChartDef}, []string{"def.yaml", `"lonely"`, "no chart given"}},
		"unknown field":    {[]string{typoDef}, []string{"typo.yaml", "plurall"}},
		"not a definition": {[]string{filepath.Join(examples, "postgres", "values.yaml")}, []string{"values.yaml", "no chartkind.io/v1alpha1 ApplicationDefinition"}},
		"one bad of two":   {[]string{filepath.Join(examples, "redis"), brokenChart}, []string{"broken"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"generate"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit 0 for bad input; stderr: %s", errOut)
			}
			if out != "" {
				t.Fatalf("something was written despite the error:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestGenerateUsage(t *testing.T) {
	if code, _, errOut := run(t, "generate"); code != 2 || !strings.Contains(errOut, "PATH") {
		t.Fatalf("no PATH: exit %d, %s", code, errOut)
	}
	if code, _, _ := run(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// TestGenerateCorpus runs `chartkind generate` on every chart of the shared
// corpus of real charts: each must produce a CRD the API server accepts.
func TestGenerateCorpus(t *testing.T) {
	charts := corpus.Load(t)
	for _, c := range charts {
		t.Run(c.Name, func(t *testing.T) {
			code, out, errOut := run(t, "generate", "--quiet", c.Dir)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			crds := decodeCRDs(t, out)
			if len(crds) != 1 {
				t.Fatalf("want one CRD, got %d", len(crds))
			}
			if err := crd.Validate(crds[0]); err != nil {
				t.Fatal(err)
			}
		})
	}
	if len(charts) < 60 {
		t.Fatalf("the corpus has %d charts, expected 60", len(charts))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
