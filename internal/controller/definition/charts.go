package definition

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/chartkind/chartkind/api/v1alpha1"
	"github.com/chartkind/chartkind/internal/chart"
	"github.com/chartkind/chartkind/internal/generate"
)

// resolveSchema finds what the CRD is generated from: the definition's inline
// schema, or the chart named by spec.release.chart in the charts directory.
// It returns the chart version the schema came from ("" for an inline schema
// without a chart).
func (r *Reconciler) resolveSchema(def *v1alpha1.ApplicationDefinition) (generate.Input, string, *stepError) {
	in := generate.Input{Definition: def}
	inline := def.Spec.Schema != nil && len(def.Spec.Schema.Raw) > 0
	rel := def.Spec.Release
	if rel.Chart == nil {
		if inline {
			return in, "", nil
		}
		return in, "", fail(ReasonChartNotFound, "spec.release.chartRef is set: reading charts from Flux sources is not supported yet, so spec.schema is required")
	}
	c, err := FindChart(r.ChartsDir, rel.Chart.Name, rel.Chart.Version)
	if err != nil {
		if inline {
			return in, "", nil
		}
		return in, "", fail(ReasonChartNotFound, "%v", err)
	}
	in.Chart = c
	return in, c.Version, nil
}

// FindChart looks in dir for the chart called name whose version satisfies
// constraint (any version when empty or "*"): a directory <name>/ or an archive
// <name>-<version>.tgz. The highest matching version wins.
func FindChart(dir, name, constraint string) (*chart.Chart, error) {
	if dir == "" {
		return nil, fmt.Errorf("chart %s: no charts directory is configured (--charts-dir), and the definition has no spec.schema", name)
	}
	var cons *semver.Constraints
	if constraint != "" && constraint != "*" {
		c, err := semver.NewConstraint(constraint)
		if err != nil {
			return nil, fmt.Errorf("chart %s: version %q is not a SemVer range: %w", name, constraint, err)
		}
		cons = c
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("chart %s: reading charts directory: %w", name, err)
	}
	var best *chart.Chart
	var bestVer *semver.Version
	for _, e := range entries {
		n := e.Name()
		var candidate bool
		switch {
		case e.IsDir():
			candidate = n == name
		case strings.HasSuffix(n, ".tgz"):
			base := strings.TrimSuffix(n, ".tgz")
			candidate = strings.HasPrefix(base, name+"-") && looksLikeVersion(strings.TrimPrefix(base, name+"-"))
		}
		if !candidate {
			continue
		}
		c, err := chart.Load(filepath.Join(dir, n))
		if err != nil || c.Name != name {
			continue
		}
		v, err := semver.NewVersion(c.Version)
		if err != nil {
			continue
		}
		if cons != nil && !cons.Check(v) {
			continue
		}
		if bestVer == nil || v.GreaterThan(bestVer) {
			best, bestVer = c, v
		}
	}
	if best == nil {
		want := ""
		if cons != nil {
			want = " matching " + constraint
		}
		return nil, fmt.Errorf("chart %s%s not found in %s", name, want, dir)
	}
	return best, nil
}

func looksLikeVersion(s string) bool {
	_, err := semver.NewVersion(s)
	return err == nil
}
