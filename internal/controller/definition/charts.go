package definition

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/chartkind/chartkind/internal/chart"
)

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
