// Package chart reads what chartkind needs from a Helm chart: its name and
// version, its values.schema.json and its values.yaml. Charts are loaded with
// Helm's own loader, so whatever Helm installs, chartkind reads the same way;
// the loaded chart is kept too, so that values can be merged and checked by
// Helm's own code (internal/valuescheck) rather than by an imitation of it.
package chart

import (
	"bytes"
	"fmt"
	"os"

	helmchart "helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// MaxArchiveSize bounds a chart archive read into memory. Helm's own limit for
// decompressed archives is larger, but a chart whose packaged size exceeds this
// is far more likely a mistake than a service offering.
const MaxArchiveSize = 20 << 20

// Chart is the part of a Helm chart that defines an application kind.
type Chart struct {
	Name    string
	Version string
	// Schema is values.schema.json verbatim; nil when the chart has none.
	Schema []byte
	// Values is values.yaml verbatim; nil when the chart has none.
	Values []byte
	// Source says where the chart was read from, for messages.
	Source string
	// Helm is the chart as Helm's loader returned it, subcharts included. It
	// is what Helm merges values with (values.yaml of the chart and of every
	// subchart, import-values, conditions) and validates against every
	// schema, so exact validation needs it rather than Schema and Values
	// alone. nil for a Chart built by hand. Shared: treat it as read-only.
	Helm *helmchart.Chart
}

// Load reads a chart directory or packaged chart (.tgz) from path.
func Load(path string) (*Chart, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading chart %s: %w", path, err)
	}
	if !st.IsDir() && st.Size() > MaxArchiveSize {
		return nil, fmt.Errorf("reading chart %s: archive is %d bytes, more than the %d allowed", path, st.Size(), MaxArchiveSize)
	}
	c, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", path, err)
	}
	return FromHelm(c, path), nil
}

// LoadArchive reads a packaged chart from memory, e.g. a downloaded artifact.
func LoadArchive(data []byte, source string) (*Chart, error) {
	if len(data) > MaxArchiveSize {
		return nil, fmt.Errorf("reading chart %s: archive is %d bytes, more than the %d allowed", source, len(data), MaxArchiveSize)
	}
	c, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", source, err)
	}
	return FromHelm(c, source), nil
}

// FromHelm wraps a chart Helm has already loaded (e.g. by a caller that read it
// from a Flux artifact); source says where it came from, for messages.
func FromHelm(c *helmchart.Chart, source string) *Chart {
	out := &Chart{Name: c.Name(), Version: c.Metadata.Version, Schema: c.Schema, Source: source, Helm: c}
	for _, f := range c.Raw {
		if f.Name == "values.yaml" {
			out.Values = f.Data
		}
	}
	return out
}
