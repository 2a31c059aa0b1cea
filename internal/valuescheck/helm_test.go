package valuescheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	helmchart3 "helm.sh/helm/v3/pkg/chart"
	chartutil3 "helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v4/pkg/chart/common"
	helmutil "helm.sh/helm/v4/pkg/chart/common/util"
	helmchart "helm.sh/helm/v4/pkg/chart/v2"
	loader4 "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil4 "helm.sh/helm/v4/pkg/chart/v2/util"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/chart"
)

// helmVerdict is the oracle of every agreement test: what `helm install` does
// with the values before rendering anything, in the Helm that installs:
// helm-controller v1.6.2 runs Helm v4 (helm.sh/helm/v4/pkg/action.Install).
// The spec reaches Helm as the HelmRelease's values (JSON), which
// helm-controller decodes with sigs.k8s.io/yaml; Install then resolves the
// chart's dependencies against the values (chartutil.ProcessDependencies) and
// merges and validates them in util.ToRenderValuesWithSchemaValidation.
//
// ProcessDependencies changes the chart, so a chart with dependencies must be
// freshly loaded for each call, as each install loads it (loadV4).
func helmVerdict(hc *helmchart.Chart, specJSON []byte) error {
	values, err := helmControllerReads(specJSON)
	if err != nil {
		return err
	}
	if err := chartutil4.ProcessDependencies(hc, values); err != nil {
		return err
	}
	_, err = helmutil.ToRenderValuesWithSchemaValidation(hc, values,
		common.ReleaseOptions{Name: "test", Namespace: "default", Revision: 1, IsInstall: true}, nil, false)
	return err
}

// helmV3Verdict is the same with Helm v3.22 (helm.sh/helm/v3/pkg/action.Install),
// which helm-controller ran before v1.5: the agreement tests run it next to
// helmVerdict to show where the two Helms differ and that Validate follows v4.
func helmV3Verdict(hc *helmchart3.Chart, specJSON []byte) error {
	values, err := helmControllerReads(specJSON)
	if err != nil {
		return err
	}
	if err := chartutil3.ProcessDependenciesWithMerge(hc, values); err != nil {
		return err
	}
	_, err = chartutil3.ToRenderValuesWithSchemaValidation(hc, values,
		chartutil3.ReleaseOptions{Name: "test", Namespace: "default", Revision: 1, IsInstall: true}, nil, false)
	return err
}

func helmControllerReads(specJSON []byte) (map[string]any, error) {
	values := map[string]any{}
	if err := yaml.Unmarshal(specJSON, &values); err != nil {
		return nil, fmt.Errorf("helm-controller cannot read the values: %w", err)
	}
	if values == nil {
		values = map[string]any{}
	}
	return values, nil
}

// loadV4 loads a chart directory with Helm v4's loader, as helm-controller
// loads the chart's archive: independently of internal/chart (Helm v3's
// loader) and of helmChart, so the oracle shares no code with the validator.
func loadV4(t testing.TB, dir string) *helmchart.Chart {
	t.Helper()
	hc, err := loader4.Load(dir)
	if err != nil {
		t.Fatalf("Helm v4 loading %s: %v", dir, err)
	}
	return hc
}

// asAPIServerDecodes decodes a spec the way the API server decodes a request
// body (integers as int64), which is what the webhook receives.
func asAPIServerDecodes(t testing.TB, specJSON []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := utiljson.Unmarshal(specJSON, &m); err != nil {
		t.Fatalf("decoding %s: %v", specJSON, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quietHelm silences the standard logger and slog for the test: Helm's
// merging logs a warning for every table overridden by a scalar, which the
// mutations do on purpose thousands of times.
func quietHelm(t testing.TB) {
	t.Helper()
	w := log.Writer()
	log.SetOutput(io.Discard)
	d := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { log.SetOutput(w); slog.SetDefault(d) })
}

// standInSchema returns schema with every reference to an external document
// replaced by a reference to a local schema that accepts anything: what the
// validator stands in for such documents with. Helm itself would fetch them,
// which a test must not do (and the corpus does not hold them).
func standInSchema(t testing.TB, schema []byte) []byte {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		t.Fatal("schema is not an object")
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok && !strings.HasPrefix(r, "#") {
				x["$ref"] = "#/$defs/chartkindStandIn"
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(root)
	defs, _ := root["$defs"].(map[string]any)
	if defs == nil {
		defs = map[string]any{}
		root["$defs"] = defs
	}
	defs["chartkindStandIn"] = map[string]any{}
	return mustJSON(t, root)
}

// loadV3Values is the Helm v3 chart of a hand-built chart.Chart, its
// values.yaml read as Helm v3's loader reads it.
func loadV3Values(t testing.TB, c *chart.Chart) *helmchart3.Chart {
	t.Helper()
	hc := &helmchart3.Chart{Metadata: &helmchart3.Metadata{APIVersion: helmchart3.APIVersionV2, Name: c.Name, Version: c.Version}, Schema: c.Schema}
	if c.Values != nil {
		vals, err := chartutil3.ReadValues(c.Values)
		if err != nil {
			t.Fatal(err)
		}
		hc.Values = vals
	}
	return hc
}
