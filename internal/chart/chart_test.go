package chart

import (
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// TestLoadKeepsHelmsChart: the chart Helm loaded is kept, subcharts included,
// beside the raw files chartkind reads.
func TestLoadKeepsHelmsChart(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Chart.yaml":                      "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n  - {name: child, version: 0.1.0}\n  - {name: child, alias: second, version: 0.1.0}\n",
		"values.yaml":                     "mode: a\n",
		"values.schema.json":              `{"type": "object"}`,
		"charts/child/Chart.yaml":         "apiVersion: v2\nname: child\nversion: 0.1.0\n",
		"charts/child/values.yaml":        "port: 80\n",
		"charts/child/values.schema.json": `{"required": ["port"]}`,
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "umbrella" || c.Version != "0.1.0" || len(c.Schema) == 0 || len(c.Values) == 0 {
		t.Fatalf("chart read wrongly: %+v", c)
	}
	if c.Helm == nil || c.Helm.Name() != "umbrella" {
		t.Fatal("Helm's chart not kept")
	}
	deps := c.Helm.Dependencies()
	if len(deps) != 1 || deps[0].Name() != "child" || len(deps[0].Schema) == 0 {
		t.Fatalf("subchart not loaded: %d dependencies", len(deps))
	}
	if len(c.Helm.Metadata.Dependencies) != 2 {
		t.Fatalf("Chart.yaml dependencies not loaded: %d", len(c.Helm.Metadata.Dependencies))
	}
	if got := c.Helm.Values["mode"]; got != "a" {
		t.Fatalf("values.yaml not decoded by Helm: mode = %v", got)
	}
}

// TestLoadArchive reads a packaged chart from memory, as the operator does
// with a downloaded artifact, and keeps Helm's chart too.
func TestLoadArchive(t *testing.T) {
	c, err := Load("../../examples/charts/redis")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tgz, err := chartutil.Save(c.Helm, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	a, err := LoadArchive(data, filepath.Base(tgz))
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "redis" || a.Helm == nil || string(a.Schema) != string(c.Schema) || string(a.Values) != string(c.Values) || a.Source != "redis-0.1.0.tgz" {
		t.Fatalf("archive read wrongly: name %q, source %q, helm %v", a.Name, a.Source, a.Helm != nil)
	}
	if _, err := LoadArchive(make([]byte, MaxArchiveSize+1), "big.tgz"); err == nil {
		t.Fatal("oversized archive accepted")
	}
}
