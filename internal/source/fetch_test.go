package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
)

// archive packages a minimal chart the way `helm package` lays it out.
func archive(t *testing.T, name, version, schema string) []byte {
	t.Helper()
	files := map[string]string{
		name + "/Chart.yaml":  "apiVersion: v2\nname: " + name + "\nversion: " + version + "\n",
		name + "/values.yaml": "size: 1\n",
	}
	if schema != "" {
		files[name+"/values.schema.json"] = schema
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range []string{name + "/Chart.yaml", name + "/values.yaml", name + "/values.schema.json"} {
		data, ok := files[n]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type server struct {
	*httptest.Server
	files    map[string][]byte
	requests atomic.Int32
}

func serve(t *testing.T, files map[string][]byte) *server {
	s := &server{files: files}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		b, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFetch(t *testing.T) {
	good := archive(t, "pg", "1.2.0", `{"type":"object","properties":{"size":{"type":"integer"}}}`)
	srv := serve(t, map[string][]byte{
		"/good.tgz":    good,
		"/corrupt.tgz": []byte("this is not a gzip archive"),
		"/big.tgz":     bytes.Repeat([]byte{1}, 2048),
	})
	ctx := context.Background()

	f := &Fetcher{}
	c, err := f.Fetch(ctx, "HelmChart ns/pg", &meta.Artifact{URL: srv.URL + "/good.tgz", Digest: sha(good), Revision: "1.2.0"})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if c.Name != "pg" || c.Version != "1.2.0" || !strings.Contains(string(c.Schema), `"size"`) || string(c.Values) != "size: 1\n" {
		t.Errorf("chart = %s %s schema %q values %q", c.Name, c.Version, c.Schema, c.Values)
	}
	// The same digest again is served from memory.
	if _, err := f.Fetch(ctx, "HelmChart ns/pg", &meta.Artifact{URL: srv.URL + "/good.tgz", Digest: sha(good)}); err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("downloads = %d, want 1 (second fetch cached by digest)", n)
	}

	wrong := sha([]byte("something else"))
	cases := []struct {
		name      string
		fetcher   *Fetcher
		artifact  *meta.Artifact
		reason    string
		transient bool
		message   string
	}{
		{"digest mismatch", &Fetcher{}, &meta.Artifact{URL: srv.URL + "/good.tgz", Digest: wrong}, ReasonArtifactFailed, true, "digest mismatch: the source advertises " + wrong},
		{"corrupt archive", &Fetcher{}, &meta.Artifact{URL: srv.URL + "/corrupt.tgz", Digest: sha([]byte("this is not a gzip archive"))}, ReasonArtifactFailed, false, "loading chart"},
		{"oversized download", &Fetcher{MaxSize: 1024}, &meta.Artifact{URL: srv.URL + "/big.tgz", Digest: sha(bytes.Repeat([]byte{1}, 2048))}, ReasonArtifactFailed, false, "more than the 1024 bytes allowed"},
		{"oversized by status", &Fetcher{MaxSize: 1024}, &meta.Artifact{URL: srv.URL + "/big.tgz", Digest: sha(good), Size: ptr(int64(4096))}, ReasonArtifactFailed, false, "is 4096 bytes, more than the 1024 allowed"},
		{"gone", &Fetcher{}, &meta.Artifact{URL: srv.URL + "/missing.tgz", Digest: sha(good)}, ReasonArtifactFailed, true, "404 Not Found"},
		{"no digest", &Fetcher{}, &meta.Artifact{URL: srv.URL + "/good.tgz"}, ReasonArtifactFailed, false, "no digest"},
		{"unknown algorithm", &Fetcher{}, &meta.Artifact{URL: srv.URL + "/good.tgz", Digest: "md5:abcd"}, ReasonArtifactFailed, false, "md5 is not supported"},
		{"no URL", &Fetcher{}, &meta.Artifact{Digest: sha(good)}, ReasonArtifactNotReady, false, "no artifact URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.fetcher.Fetch(ctx, "HelmChart ns/pg", tc.artifact)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *source.Error", err)
			}
			if se.Reason != tc.reason || se.Transient != tc.transient || !strings.Contains(se.Error(), tc.message) || !strings.Contains(se.Error(), "HelmChart ns/pg") {
				t.Errorf("err = %s (reason %s, transient %v), want reason %s transient %v containing %q and the source",
					se.Error(), se.Reason, se.Transient, tc.reason, tc.transient, tc.message)
			}
		})
	}
}

func TestFetchCacheEvicts(t *testing.T) {
	a := archive(t, "a", "1.0.0", "")
	b := archive(t, "b", "1.0.0", "")
	srv := serve(t, map[string][]byte{"/a.tgz": a, "/b.tgz": b})
	f := &Fetcher{CacheSize: 1}
	ctx := context.Background()
	for _, p := range []struct {
		path string
		data []byte
	}{{"/a.tgz", a}, {"/b.tgz", b}, {"/a.tgz", a}} {
		if _, err := f.Fetch(ctx, "x", &meta.Artifact{URL: srv.URL + p.path, Digest: sha(p.data)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load(); n != 3 {
		t.Errorf("downloads = %d, want 3 (a evicted by b with a cache of one)", n)
	}
}

func ptr[T any](v T) *T { return &v }
