package operator

import (
	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chartkind/chartkind/internal/engine"
)

// cacheOptions configure the manager's cache: what it keeps of each object
// is trimmed to what chartkind reads (internal/engine/trim.go), and a
// shard's cache holds only the HelmReleases of its shard.
func cacheOptions(shard labels.Selector) cache.Options {
	releases := cache.ByObject{Transform: engine.TrimRelease}
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
