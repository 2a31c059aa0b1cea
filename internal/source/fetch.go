package source

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/chartkind/chartkind/internal/chart"
)

// Fetcher downloads chart artifacts from source-controller's artifact server,
// verifies them against the digest the source advertises and loads them with
// Helm's loader. Loaded charts are kept by digest, so an unchanged artifact is
// downloaded once per process however often definitions are reconciled.
type Fetcher struct {
	// Client downloads artifacts; defaults to a client with a 1 minute timeout.
	Client *http.Client
	// MaxSize bounds an artifact's size in bytes; defaults to chart.MaxArchiveSize.
	MaxSize int64
	// CacheSize is the number of loaded charts kept; defaults to 64.
	CacheSize int

	mu    sync.Mutex
	order *list.List // of string digests, most recent first
	cache map[string]*list.Element
	items map[string]*chart.Chart
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Timeout: time.Minute}
}

func (f *Fetcher) maxSize() int64 {
	if f.MaxSize > 0 {
		return f.MaxSize
	}
	return chart.MaxArchiveSize
}

// Fetch returns the chart in the artifact. object names the source the
// artifact belongs to, for messages.
func (f *Fetcher) Fetch(ctx context.Context, object string, a *meta.Artifact) (*chart.Chart, error) {
	if a == nil || a.URL == "" {
		return nil, errorf(ReasonArtifactNotReady, false, "%s has no artifact URL", object)
	}
	if a.Digest == "" {
		return nil, errorf(ReasonArtifactFailed, false, "%s: artifact %s has no digest to verify it against", object, a.Revision)
	}
	if c := f.cached(a.Digest); c != nil {
		// Another source may have the same artifact: name this one.
		cp := *c
		cp.Source = object + " artifact " + a.Revision
		return &cp, nil
	}
	h, want, err := newHash(a.Digest)
	if err != nil {
		return nil, errorf(ReasonArtifactFailed, false, "%s: artifact %s: %v", object, a.Revision, err)
	}
	if a.Size != nil && *a.Size > f.maxSize() {
		return nil, errorf(ReasonArtifactFailed, false, "%s: artifact %s is %d bytes, more than the %d allowed", object, a.Revision, *a.Size, f.maxSize())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return nil, errorf(ReasonArtifactFailed, false, "%s: artifact URL %q: %v", object, a.URL, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, errorf(ReasonArtifactFailed, true, "%s: downloading artifact %s: %v", object, a.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// A 404 usually means source-controller garbage-collected the file
		// and will advertise a new one: retry.
		return nil, errorf(ReasonArtifactFailed, true, "%s: downloading artifact %s: %s", object, a.URL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(io.TeeReader(resp.Body, h), f.maxSize()+1))
	if err != nil {
		return nil, errorf(ReasonArtifactFailed, true, "%s: downloading artifact %s: %v", object, a.URL, err)
	}
	if int64(len(data)) > f.maxSize() {
		return nil, errorf(ReasonArtifactFailed, false, "%s: artifact %s is more than the %d bytes allowed", object, a.Revision, f.maxSize())
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		// Transient: the file may have been replaced between the status
		// update and the download, and the next status names the new digest.
		return nil, errorf(ReasonArtifactFailed, true, "%s: artifact %s digest mismatch: the source advertises %s but the download has %s",
			object, a.URL, a.Digest, a.Digest[:strings.IndexByte(a.Digest, ':')+1]+got)
	}
	c, err := chart.LoadArchive(data, object+" artifact "+a.Revision)
	if err != nil {
		return nil, errorf(ReasonArtifactFailed, false, "%s: %v", object, err)
	}
	f.store(a.Digest, c)
	return c, nil
}

// newHash returns a hash for the digest's algorithm and the expected hex sum.
// source-controller's digests are "<algorithm>:<hex>", sha256 by default.
func newHash(digest string) (hash.Hash, string, error) {
	algo, sum, ok := strings.Cut(digest, ":")
	if !ok || sum == "" {
		return nil, "", fmt.Errorf("digest %q is not <algorithm>:<hex>", digest)
	}
	var h hash.Hash
	switch algo {
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return nil, "", errors.New("digest algorithm " + algo + " is not supported (use sha256, sha384 or sha512 in source-controller's --artifact-digest-algo)")
	}
	if len(sum) != hex.EncodedLen(h.Size()) {
		return nil, "", fmt.Errorf("digest %q has the wrong length for %s", digest, algo)
	}
	return h, strings.ToLower(sum), nil
}

func (f *Fetcher) cached(digest string) *chart.Chart {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.cache[digest]; ok {
		f.order.MoveToFront(e)
		return f.items[digest]
	}
	return nil
}

func (f *Fetcher) store(digest string, c *chart.Chart) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cache == nil {
		f.order, f.cache, f.items = list.New(), map[string]*list.Element{}, map[string]*chart.Chart{}
	}
	if e, ok := f.cache[digest]; ok {
		f.order.MoveToFront(e)
		return
	}
	f.cache[digest] = f.order.PushFront(digest)
	f.items[digest] = c
	size := f.CacheSize
	if size <= 0 {
		size = 64
	}
	for f.order.Len() > size {
		last := f.order.Back()
		d := last.Value.(string)
		f.order.Remove(last)
		delete(f.cache, d)
		delete(f.items, d)
	}
}
