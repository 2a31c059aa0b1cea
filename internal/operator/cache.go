package operator

import (
	"errors"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/engine"
)

// cacheOptions configure the manager's cache: what it keeps of each object
// is trimmed to what chartkind reads (internal/engine/trim.go), HelmReleases
// are kept compressed (engine.CachedRelease: the manager's client reads them
// through newClient), and a shard's cache holds only the HelmReleases of its
// shard.
func cacheOptions(shard labels.Selector) cache.Options {
	releases := cache.ByObject{Transform: engine.ReleaseTransform()}
	if shard != nil && !shard.Empty() {
		releases.Label = shard
	}
	return cache.Options{
		DefaultTransform: engine.StripManagedFields,
		ByObject: map[client.Object]cache.ByObject{
			&helmv2.HelmRelease{}:                       releases,
			&apiextensionsv1.CustomResourceDefinition{}: {Transform: engine.TrimCRD},
		},
	}
}

// newClient is the manager's client: controller-runtime's, with its reads
// of HelmReleases served from the cache's CachedReleases, decoded
// (engine.ReleaseClient). There is one HelmRelease informer: the cache's.
func newClient(cfg *rest.Config, opts client.Options) (client.Client, error) {
	c, err := client.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	var informers cache.Informers
	if opts.Cache != nil {
		informers, _ = opts.Cache.Reader.(cache.Informers)
	}
	if informers == nil {
		return nil, errors.New("the manager's client has no cache to read HelmReleases from")
	}
	return engine.ReleaseClient(c, engine.NewReleaseCache(informers)), nil
}
