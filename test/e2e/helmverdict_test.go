package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/testenv"
	"github.com/chartkind/chartkind/internal/valuescheck"
)

// verdictChart is a chart whose schema holds the rules where the Helm inside
// helm-controller v1.6.2 (Helm v4.2, jsonschema v6.0.2) differs from Helm v3
// or from jsonschema v6.0.3, next to plain ones.
var verdictChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: verdict\nversion: 0.1.0\n",
	"values.yaml": "port: 80\nlabel: null\n",
	"values.schema.json": `{"type": "object", "properties": {
		"port":  {"type": "integer", "minimum": 1},
		"code":  {"const": "5"},
		"label": {"type": "string"},
		"count": {"type": "integer"}
	}}`,
	"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  port: {{ .Values.port | quote }}\n",
}

// TestHelmControllerVerdict installs a sample of specs through the real
// helm-controller (HelmReleases, no chartkind in between) and checks that
// each is installed exactly when internal/valuescheck accepts it, and refused
// by Helm's schema check exactly when valuescheck refuses it:
//
//   - {} with `label: null` in values.yaml: Helm v4 drops the chart's own
//     nulls (accepted); Helm v3 checked the null against type string.
//   - code: 5 against `const: "5"`: jsonschema v6.0.2 compares a number with a
//     string by its text (accepted); v6.0.3 refuses.
//   - count: null without a default: refused (a null Helm checks).
//   - port: null: removes the default (accepted); port: 0: below minimum.
func TestHelmControllerVerdict(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	chartDir := filepath.Join(dir, "verdict")
	for name, body := range verdictChart {
		p := filepath.Join(chartDir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	c, err := chart.Load(chartDir)
	must(t, err)
	v, err := valuescheck.New(c, nil)
	must(t, err)

	cases := []struct {
		name string
		spec string
		want bool // valuescheck's verdict, asserted so the sample stays two-sided
	}{
		{"defaults", `{}`, true},
		{"const-number", `{"code": 5}`, true},
		{"const-string", `{"code": "5"}`, true},
		{"null-no-default", `{"count": null}`, false},
		{"null-removes-default", `{"port": null}`, true},
		{"below-minimum", `{"port": 0}`, false},
	}

	env := testenv.Start(t, testenv.Options{Flux: true})
	charts := testenv.ServeChartRepo(t, dir)
	const ns = "e2e-verdict"
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	repo := &sourcev1.HelmRepository{
		ObjectMeta: metav1.ObjectMeta{Name: "charts", Namespace: ns},
		Spec:       sourcev1.HelmRepositorySpec{URL: charts.URL, Interval: metav1.Duration{Duration: time.Hour}},
	}
	must(t, env.Client.Create(ctx, repo))

	for _, tc := range cases {
		var spec map[string]any
		must(t, utiljson.Unmarshal([]byte(tc.spec), &spec))
		if errs := v.Validate(spec); (len(errs) == 0) != tc.want {
			t.Fatalf("%s: valuescheck says %v, want accepted=%v", tc.name, errs, tc.want)
		}
		hr := &helmv2.HelmRelease{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns},
			Spec: helmv2.HelmReleaseSpec{
				Interval: metav1.Duration{Duration: time.Hour},
				Chart: &helmv2.HelmChartTemplate{Spec: helmv2.HelmChartTemplateSpec{
					Chart: "verdict", Version: "0.1.0",
					SourceRef: helmv2.CrossNamespaceObjectReference{Kind: sourcev1.HelmRepositoryKind, Name: repo.Name},
					Interval:  &metav1.Duration{Duration: time.Hour},
				}},
				Values: values(t, spec),
			},
		}
		must(t, env.Client.Create(ctx, hr))
	}

	for _, tc := range cases {
		hr := &helmv2.HelmRelease{}
		var ready *metav1.Condition
		testenv.WaitFor(t, stepTimeout, "helm-controller's verdict on HelmRelease "+tc.name, func(ctx context.Context) error {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: tc.name}, hr); err != nil {
				return err
			}
			ready = apimeta.FindStatusCondition(hr.Status.Conditions, meta.ReadyCondition)
			switch {
			case ready == nil:
				return fmt.Errorf("no Ready condition yet")
			case ready.Status == metav1.ConditionTrue:
				return nil
			case ready.Status == metav1.ConditionFalse && ready.Reason == helmv2.InstallFailedReason:
				return nil
			}
			return fmt.Errorf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
		})
		installed := ready.Status == metav1.ConditionTrue
		if installed != tc.want {
			b, _ := json.Marshal(hr.Status.Conditions)
			t.Errorf("%s %s: helm-controller installed=%v, valuescheck accepted=%v: %s", tc.name, tc.spec, installed, tc.want, b)
			continue
		}
		if !installed && !strings.Contains(ready.Message, "values don't meet the specifications of the schema") {
			t.Errorf("%s: refused for another reason than the schema: %s", tc.name, ready.Message)
		}
		t.Logf("%s %s: helm-controller and valuescheck: accepted=%v", tc.name, tc.spec, installed)
	}
}
