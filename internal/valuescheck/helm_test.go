package valuescheck

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"testing"

	helmchart "helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// helmVerdict is the oracle of every agreement test: what `helm install`
// (helm.sh/helm/v3/pkg/action.Install, as helm-controller runs it) does with
// the values before rendering anything. The spec reaches Helm as the
// HelmRelease's values (JSON), which helm-controller decodes with
// sigs.k8s.io/yaml; Install then resolves the chart's dependencies against the
// values and merges and validates them in ToRenderValuesWithSchemaValidation.
//
// ProcessDependenciesWithMerge changes the chart, so a chart with dependencies
// must be freshly loaded for each call, as each install loads it.
func helmVerdict(hc *helmchart.Chart, specJSON []byte) error {
	values := map[string]any{}
	if err := yaml.Unmarshal(specJSON, &values); err != nil {
		return fmt.Errorf("helm-controller cannot read the values: %w", err)
	}
	if values == nil {
		values = map[string]any{}
	}
	if err := chartutil.ProcessDependenciesWithMerge(hc, values); err != nil {
		return err
	}
	_, err := chartutil.ToRenderValuesWithSchemaValidation(hc, values,
		chartutil.ReleaseOptions{Name: "test", Namespace: "default", Revision: 1, IsInstall: true}, nil, false)
	return err
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

// quietHelm silences the standard logger for the test: Helm's merging logs a
// warning for every table overridden by a scalar, which the mutations do on
// purpose thousands of times.
func quietHelm(t testing.TB) {
	t.Helper()
	w := log.Writer()
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(w) })
}
