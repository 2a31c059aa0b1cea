// Package chart reads what chartkind needs from a Helm chart: its name and
// version, its values.schema.json and its values.yaml. Charts are loaded with
// Helm's own loader, so whatever Helm installs, chartkind reads the same way.
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
	return fromHelm(c, path), nil
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
	return fromHelm(c, source), nil
}

func fromHelm(c *helmchart.Chart, source string) *Chart {
	out := &Chart{Name: c.Name(), Version: c.Metadata.Version, Schema: c.Schema, Source: source}
	for _, f := range c.Raw {
		if f.Name == "values.yaml" {
			out.Values = f.Data
		}
	}
	return out
}
