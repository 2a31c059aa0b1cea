// Package corpus gives tests the shared corpus of real charts'
// values.schema.json and values.yaml (../shared/chart-corpus beside the
// repository, or $CHARTKIND_CORPUS). The corpus is test input kept outside the
// repository; it is never copied in.
package corpus

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Chart is one corpus entry.
type Chart struct {
	Name   string
	Dir    string
	Schema []byte
	Values []byte
}

// Dir is where the corpus is expected: $CHARTKIND_CORPUS, else
// ../shared/chart-corpus relative to the module root.
func Dir() string {
	if d := os.Getenv("CHARTKIND_CORPUS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "chart-corpus")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Load reads every chart of the corpus, sorted by name. When the corpus is
// absent the test says so and skips — except under CI (CI=true), where the
// corpus is always provided, so its absence fails the test rather than
// letting a skip pass for a run.
func Load(t testing.TB) []Chart {
	t.Helper()
	dir := Dir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chart corpus not found at %s under CI: %v", dir, err)
		}
		t.Skipf("chart corpus not found at %s (set CHARTKIND_CORPUS): %v", dir, err)
	}
	var out []Chart
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := Chart{Name: e.Name(), Dir: filepath.Join(dir, e.Name())}
		if c.Schema, err = os.ReadFile(filepath.Join(c.Dir, "values.schema.json")); err != nil {
			t.Fatalf("corpus chart %s: %v", c.Name, err)
		}
		if c.Values, err = os.ReadFile(filepath.Join(c.Dir, "values.yaml")); err != nil {
			t.Fatalf("corpus chart %s: %v", c.Name, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("chart corpus at %s holds no chart", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
