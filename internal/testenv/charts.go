package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"
)

// ChartRepo is a Helm chart repository served over HTTP on 127.0.0.1: packaged charts plus an
// index.yaml with relative URLs, which is all a Flux HelmRepository (type default) needs.
// Publishing more versions later is safe while it is being served.
type ChartRepo struct {
	// URL is the repository URL for HelmRepository.spec.url.
	URL string
	// Dir holds the .tgz packages and index.yaml.
	Dir string

	mu     sync.Mutex
	server *httptest.Server
}

// ServeCharts packages every chart directory directly under dir (each holding a Chart.yaml),
// serves them as a Helm repository until the test ends, and returns the repository URL. Use
// ServeChartRepo to publish new chart versions into the same repository later.
func (e *Env) ServeCharts(t testing.TB, dir string) string {
	t.Helper()
	return ServeChartRepo(t, dir).URL
}

// ServeChartRepo is ServeCharts returning the repository, for tests that later publish new chart
// versions with Publish. It does not need an Env. dir may be empty ("") for an empty repository.
func ServeChartRepo(t testing.TB, dir string) *ChartRepo {
	t.Helper()
	r, err := NewChartRepo(dir, t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// NewChartRepo packages every chart directory directly under dir into repoDir and serves
// repoDir until Close. It is ServeChartRepo for programs without a *testing.T, such as the demo.
func NewChartRepo(dir, repoDir string) (*ChartRepo, error) {
	r := &ChartRepo{Dir: repoDir}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("reading charts: %w", err)
		}
		for _, ent := range entries {
			chartDir := filepath.Join(dir, ent.Name())
			if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); ent.IsDir() && err == nil {
				if _, _, err := r.pkg(chartDir, ""); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := r.reindex(); err != nil {
		return nil, err
	}
	r.server = httptest.NewServer(http.FileServer(http.Dir(r.Dir)))
	r.URL = r.server.URL
	return r, nil
}

// Close stops serving the repository.
func (r *ChartRepo) Close() { r.server.Close() }

// Publish packages the chart in chartDir into the repository and re-indexes it. A non-empty
// version overrides the version in Chart.yaml, so a test can publish 0.2.0 of a chart without
// copying its directory. It returns the published chart's name and version.
//
// Flux only sees the new version at the HelmRepository's next reconciliation: annotate it with
// RequestReconcile (or wait for its interval) before expecting an upgrade.
func (r *ChartRepo) Publish(t testing.TB, chartDir, version string) (name, publishedVersion string) {
	t.Helper()
	name, publishedVersion, err := r.pkg(chartDir, version)
	if err == nil {
		err = r.reindex()
	}
	if err != nil {
		t.Fatalf("testenv: publishing %s: %v", chartDir, err)
	}
	return name, publishedVersion
}

func (r *ChartRepo) pkg(chartDir, version string) (string, string, error) {
	ch, err := loader.LoadDir(chartDir)
	if err != nil {
		return "", "", fmt.Errorf("loading chart %s: %w", chartDir, err)
	}
	if version != "" {
		ch.Metadata.Version = version
	}
	if err := ch.Validate(); err != nil {
		return "", "", fmt.Errorf("chart %s: %w", chartDir, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Save writes <name>-<version>.tgz; a republished version replaces the previous package.
	if _, err := chartutil.Save(ch, r.Dir); err != nil {
		return "", "", fmt.Errorf("packaging chart %s: %w", chartDir, err)
	}
	return ch.Metadata.Name, ch.Metadata.Version, nil
}

// reindex rewrites index.yaml from the packages in Dir, atomically so that a concurrent fetch
// sees either the old or the new index.
func (r *ChartRepo) reindex() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	// An empty base URL makes every entry's URL relative (just the file name), resolved
	// against the repository URL by the client.
	idx, err := repo.IndexDirectory(r.Dir, "")
	if err != nil {
		return fmt.Errorf("indexing charts: %w", err)
	}
	idx.SortEntries()
	tmp := filepath.Join(r.Dir, ".index.yaml.tmp")
	if err := idx.WriteFile(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(r.Dir, "index.yaml"))
}
