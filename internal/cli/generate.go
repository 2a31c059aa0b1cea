package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	defcontroller "github.com/chartkind/chartkind/internal/controller/definition"
	"github.com/chartkind/chartkind/internal/definition"
	"github.com/chartkind/chartkind/internal/generate"
)

const generateUsage = `Usage: chartkind generate [flags] PATH...

Writes the CustomResourceDefinition for each chart or ApplicationDefinition,
exactly as the operator would apply it, so a GitOps repository can commit it.

Each PATH is a chart directory, a packaged chart (.tgz), or a YAML file of
ApplicationDefinitions. A definition is paired with the chart PATH whose name
matches spec.release.chart.name (or with the only chart given); a definition
with an inline spec.schema needs no chart. A chart with no definition gets one
derived from its name (chart my-db → kind MyDb).

Nothing is written unless every input converts; errors name the file and the
JSON pointer in the schema.

Flags:
`

type generateFlags struct {
	outDir          string
	group           string
	sourceKind      string
	sourceName      string
	sourceNamespace string
	definitions     bool
	quiet           bool
}

func runGenerate(args []string, stdout, stderr io.Writer) int {
	var f generateFlags
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, generateUsage); fs.PrintDefaults() }
	fs.StringVar(&f.outDir, "output-dir", "", "write one file per CRD (`DIR`/<crd-name>.yaml) instead of a multi-document stream on stdout")
	fs.StringVar(&f.group, "group", v1alpha1.DefaultGroup, "API group of kinds derived from charts without a definition")
	fs.StringVar(&f.sourceKind, "source-kind", "HelmRepository", "source kind for derived definitions")
	fs.StringVar(&f.sourceName, "source-name", "charts", "source name for derived definitions")
	fs.StringVar(&f.sourceNamespace, "source-namespace", "", "source namespace for derived definitions")
	fs.BoolVar(&f.definitions, "definitions", false, "also write the ApplicationDefinition of each CRD (useful for charts given without one)")
	fs.BoolVar(&f.quiet, "quiet", false, "do not print conversion warnings")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "chartkind generate: at least one PATH is required")
		fs.Usage()
		return 2
	}

	inputs, errs := collectInputs(fs.Args(), f)
	var docs []document
	for _, in := range inputs {
		res, err := generate.CRD(in)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !f.quiet {
			for _, w := range res.Warnings {
				fmt.Fprintf(stderr, "warning: %s: %s\n", res.SchemaSource, w)
			}
			warnServiceAccount(stderr, in.Definition)
		}
		if f.definitions {
			docs = append(docs, document{name: "applicationdefinition-" + in.Definition.Name, obj: in.Definition})
		}
		docs = append(docs, document{name: res.CRD.Name, obj: res.CRD})
	}
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintf(stderr, "error: %v\n", err)
		}
		fmt.Fprintf(stderr, "chartkind generate: %d error(s); nothing written\n", len(errs))
		return 1
	}
	if err := writeDocuments(docs, f.outDir, stdout); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// collectInputs reads every PATH and pairs definitions with charts.
func collectInputs(paths []string, f generateFlags) ([]generate.Input, []error) {
	var errs []error
	var charts []*chart.Chart
	type defAt struct {
		def  *v1alpha1.ApplicationDefinition
		file string
	}
	var defs []defAt
	for _, p := range paths {
		if isChartPath(p) {
			c, err := chart.Load(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			charts = append(charts, c)
			continue
		}
		ds, err := readDefinitions(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range ds {
			defs = append(defs, defAt{d, p})
		}
	}

	used := make([]bool, len(charts))
	var inputs []generate.Input
	for _, d := range defs {
		in := generate.Input{Definition: d.def}
		if idx := matchChart(d.def, charts, used); idx >= 0 {
			used[idx] = true
			in.Chart = charts[idx]
		} else if d.def.Spec.Schema == nil {
			errs = append(errs, fmt.Errorf("%s: ApplicationDefinition %q: no chart given for it (pass its chart directory or .tgz too, or set spec.schema)", d.file, d.def.Name))
			continue
		}
		inputs = append(inputs, in)
	}
	for i, c := range charts {
		if used[i] {
			continue
		}
		def, err := definition.ForChart(c.Name, c.Version, v1alpha1.ChartTemplate{
			SourceRef: helmv2.CrossNamespaceObjectReference{Kind: f.sourceKind, Name: f.sourceName, Namespace: f.sourceNamespace},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Source, err))
			continue
		}
		if f.group != v1alpha1.DefaultGroup {
			def.Spec.Application.Group = f.group
		}
		inputs = append(inputs, generate.Input{Definition: def, Chart: c})
	}
	return inputs, errs
}

// matchChart finds the unused chart whose name is the one def's spec.release.chart
// names; for a chartRef, the only chart given.
func matchChart(def *v1alpha1.ApplicationDefinition, charts []*chart.Chart, used []bool) int {
	want := ""
	if def.Spec.Release.Chart != nil {
		want = filepath.Base(def.Spec.Release.Chart.Name)
	}
	for i, c := range charts {
		if used[i] {
			continue
		}
		if want != "" && c.Name == want {
			return i
		}
	}
	// A chartRef names an OCIRepository or HelmChart, not a chart: pair it with a
	// chart only when that chart is the one and only chart given.
	if want == "" && len(charts) == 1 && !used[0] {
		return 0
	}
	return -1
}

func isChartPath(p string) bool {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return true
	}
	return strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz")
}

// readDefinitions reads every ApplicationDefinition in a YAML or JSON file.
// Documents of other kinds are skipped, so a GitOps directory's files can be
// passed as they are; unknown fields in a definition are errors.
func readDefinitions(path string) ([]*v1alpha1.ApplicationDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var defs []*v1alpha1.ApplicationDefinition
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if meta.Kind != "ApplicationDefinition" || meta.APIVersion != v1alpha1.GroupVersion.String() {
			continue
		}
		def := &v1alpha1.ApplicationDefinition{}
		if err := yaml.UnmarshalStrict(doc, def); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if err := definition.Validate(def); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		defs = append(defs, def)
	}
	if len(defs) == 0 {
		return nil, fmt.Errorf("%s: no chartkind.io/v1alpha1 ApplicationDefinition in the file, and it is not a chart directory or .tgz", path)
	}
	return defs, nil
}

type document struct {
	name string
	obj  any
}

func writeDocuments(docs []document, outDir string, stdout io.Writer) error {
	if outDir != "" {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", outDir, err)
		}
	}
	for i, d := range docs {
		out, err := manifestYAML(d.obj)
		if err != nil {
			return fmt.Errorf("encoding %s: %w", d.name, err)
		}
		if outDir != "" {
			file := filepath.Join(outDir, d.name+".yaml")
			if err := os.WriteFile(file, out, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", file, err)
			}
			continue
		}
		if i > 0 {
			if _, err := io.WriteString(stdout, "---\n"); err != nil {
				return err
			}
		}
		if _, err := stdout.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// manifestYAML renders an object as kubectl apply expects it: no status, no
// empty creationTimestamp.
func manifestYAML(obj any) ([]byte, error) {
	raw, err := yaml.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// warnServiceAccount says, as the definition's ReleasesIsolated condition
// does, that a definition without spec.release.serviceAccountName lets its
// users reach helm-controller's rights.
func warnServiceAccount(stderr io.Writer, def *v1alpha1.ApplicationDefinition) {
	if def != nil && def.Spec.Release.ServiceAccountName == "" {
		fmt.Fprintf(stderr, "warning: %s\n", defcontroller.NoServiceAccountWarning(def.Name))
	}
}
