// Package chart tests the Helm chart in charts/chartkind.
//
// Values are checked against the chart's values.schema.json with Helm's own
// Go library (helm.sh/helm/v3/pkg/chartutil), with no cluster. Rendering and
// applying are done by real Helm too: Flux's helm-controller (Helm v4)
// installs the chart from a chart repository onto a real kube-apiserver
// (internal/testenv), once per variation of the values, and the test reads
// the rendered manifest back from the release and the objects from the API
// server. Helm's template engine (helm.sh/helm/v3/pkg/engine) is not used
// directly: it needs modules (sprig, toml, glob) that are not in go.mod.
package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	helmchart "helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"

	"github.com/chartkind/chartkind/internal/cli"
	"github.com/chartkind/chartkind/internal/testenv"
)

// chartDir is the chart under test, relative to the module root.
const chartDir = "charts/chartkind"

func rootDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func loadChart(t *testing.T) *helmchart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(filepath.Join(rootDir(t), chartDir))
	if err != nil {
		t.Fatalf("loading chart: %v", err)
	}
	return ch
}

// validate merges user values over the chart's defaults and checks the
// result against values.schema.json, as `helm install` does.
func validate(ch *helmchart.Chart, user map[string]any) error {
	vals, err := chartutil.CoalesceValues(ch, user)
	if err != nil {
		return err
	}
	return chartutil.ValidateAgainstSchema(ch, vals)
}

// parseValues reads values written as YAML.
func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("values %q: %v", s, err)
	}
	return m
}

// The chart's metadata is valid and its values.yaml passes its own schema.
func TestChartMetadataAndDefaults(t *testing.T) {
	ch := loadChart(t)
	if err := ch.Validate(); err != nil {
		t.Fatalf("Chart.yaml: %v", err)
	}
	if ch.Metadata.APIVersion != helmchart.APIVersionV2 || ch.Metadata.AppVersion == "" || ch.Metadata.KubeVersion == "" {
		t.Errorf("metadata %+v", ch.Metadata)
	}
	if len(ch.Schema) == 0 {
		t.Fatal("the chart has no values.schema.json")
	}
	if err := validate(ch, nil); err != nil {
		t.Errorf("values.yaml does not pass values.schema.json: %v", err)
	}
}

// The schema accepts every variation the install test uses and refuses
// misspelt keys, wrong types and out-of-range values, naming the field.
func TestValuesSchema(t *testing.T) {
	ch := loadChart(t)
	for _, v := range variations {
		if v.wantInstallError != "" {
			continue
		}
		if err := validate(ch, parseValues(t, v.values)); err != nil {
			t.Errorf("variation %s refused: %v", v.name, err)
		}
	}
	for _, ok := range []string{
		`log: {level: "3"}`,
		`log: {level: 2}`,
		`image: {digest: "sha256:` + strings.Repeat("a", 64) + `"}`,
		`leaderElection: {enabled: false}`,
		`webhook: {certManager: {enabled: true, issuerRef: {kind: ClusterIssuer, name: corp-ca}}}`,
		`charts: {volume: {configMap: {name: charts}}}`,
		`rbac: {extraGroups: [db.example.com, cache.example.org]}`,
	} {
		if err := validate(ch, parseValues(t, ok)); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []struct{ values, mention string }{
		{`replica: 2`, "replica"},
		{`replicas: 0`, "replicas"},
		{`replicas: "2"`, "replicas"},
		{`leaderElection: {enabled: false}` + "\nreplicas: 2", "replicas"},
		{`webhook: {failurePolicy: Sometimes}`, "failurePolicy"},
		{`webhook: {port: 70000}`, "port"},
		{`webhook: {certManager: {enable: true}}`, "enable"},
		{`webhook: {certManager: {issuerRef: {kind: Issuer}}}`, "name"},
		{`metrics: {serviceMonitor: {interval: soon}}`, "interval"},
		{`metrics: {port: http}`, "port"},
		{`image: {digest: latest}`, "digest"},
		{`image: {pullPolicy: Sometimes}`, "pullPolicy"},
		{`log: {level: verbose}`, "level"},
		{`log: {format: xml}`, "format"},
		{`rbac: {extraGroups: [Not_A_Group]}`, "extraGroups"},
		{`rbac: {extraGroups: [example]}`, "extraGroups"},
		{`extraArgs: [leader-elect]`, "extraArgs"},
		{`kubeAPI: {qps: 0}`, "qps"},
		{`crds: {delete: true}`, "delete"},
	} {
		err := validate(ch, parseValues(t, bad.values))
		if err == nil {
			t.Errorf("%s accepted", bad.values)
			continue
		}
		if !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%s refused without naming %q: %v", bad.values, bad.mention, err)
		}
	}
}

// The chart's copies of the CRD and of the operator's RBAC are those in
// config/, which `make manifests` generates; `make manifests` refreshes the
// copies and `make verify-generated` fails when they are stale.
func TestChartFilesMatchConfig(t *testing.T) {
	root := rootDir(t)
	pairs := map[string]string{
		"config/rbac/role.yaml":                 "files/rbac/role.yaml",
		"config/rbac/leader_election_role.yaml": "files/rbac/leader_election_role.yaml",
	}
	crds, _ := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if len(crds) == 0 {
		t.Fatal("no CRDs in config/crd/bases")
	}
	for _, p := range crds {
		pairs["config/crd/bases/"+filepath.Base(p)] = "files/crds/" + filepath.Base(p)
	}
	copies, _ := filepath.Glob(filepath.Join(root, chartDir, "files/crds/*.yaml"))
	if len(copies) != len(crds) {
		t.Errorf("%d CRDs in the chart, %d in config/crd/bases", len(copies), len(crds))
	}
	for src, dst := range pairs {
		a, errA := os.ReadFile(filepath.Join(root, src))
		b, errB := os.ReadFile(filepath.Join(root, chartDir, dst))
		if errA != nil || errB != nil {
			t.Errorf("%s / %s: %v %v", src, dst, errA, errB)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s/%s differs from %s: run `make manifests`", chartDir, dst, src)
		}
	}
}

var flagName = regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)

// operatorFlags returns the flags `chartkind operator` accepts, from its help.
func operatorFlags(t *testing.T) map[string]bool {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"operator", "-h"}, &out, &errOut); code != 0 {
		t.Fatalf("chartkind operator -h: exit %d: %s", code, errOut.String())
	}
	flags := map[string]bool{}
	for _, m := range flagName.FindAllStringSubmatch(out.String()+errOut.String(), -1) {
		flags[m[1]] = true
	}
	if !flags["leader-elect"] || !flags["metrics-bind-address"] {
		t.Fatalf("could not read the flags from the help:\n%s%s", out.String(), errOut.String())
	}
	return flags
}
