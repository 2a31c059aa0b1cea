package definition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

func TestFindChart(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "examples", "charts")
	c, err := FindChart(dir, "postgres", ">=0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "postgres" || c.Version == "" || len(c.Schema) == 0 {
		t.Errorf("chart: %s %s schema %d bytes", c.Name, c.Version, len(c.Schema))
	}
	if _, err := FindChart(dir, "postgres", ">=99.0.0"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("version constraint ignored: %v", err)
	}
	if _, err := FindChart(dir, "nope", ""); err == nil {
		t.Errorf("missing chart found")
	}
	if _, err := FindChart("", "postgres", ""); err == nil || !strings.Contains(err.Error(), "--charts-dir") {
		t.Errorf("no charts dir: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// Packaged charts <name>-<version>.tgz are found too; the highest version
// matching the constraint wins.
func TestFindChartArchives(t *testing.T) {
	src, err := loader.Load(filepath.Join("..", "..", "..", "examples", "charts", "redis"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, v := range []string{"1.0.0", "1.2.0", "2.0.0"} {
		src.Metadata.Version = v
		if _, err := chartutil.Save(src, dir); err != nil {
			t.Fatal(err)
		}
	}
	c, err := FindChart(dir, "redis", "<2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != "1.2.0" {
		t.Errorf("version %s, want 1.2.0", c.Version)
	}
	if c, err := FindChart(dir, "redis", "*"); err != nil || c.Version != "2.0.0" {
		t.Errorf("any version: %v %v", c, err)
	}
}
