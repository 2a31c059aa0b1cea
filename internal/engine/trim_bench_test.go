package engine

import (
	"os"
	"runtime"
	"testing"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// BenchmarkCachedRelease measures the heap one cached HelmRelease keeps
// (B/release, live heap after a GC, per object) when decoded as the
// informer decodes it (testdata/helmrelease.json: a release as
// helm-controller leaves it after an upgrade) and passed through a
// transform. "stripped" (managedFields dropped, nothing else) is the
// baseline of the same run; "trimmed" is TrimRelease (what the cache kept
// before CachedRelease); "compressed" is ReleaseTransform, what the cache
// keeps, and "compressed-alone" what it kept before dictionaries (each
// release's JSON compressed on its own). Each of the releases is a sibling
// of the file's (its own name, UIDs and times), as the releases of one kind
// are. "decode" is what a read of one release from the cache costs
// (DecodeRelease), against "deepcopy", what controller-runtime's cache
// reader did per read of a trimmed release.
func BenchmarkCachedRelease(b *testing.B) {
	raw, err := os.ReadFile("testdata/helmrelease.json")
	if err != nil {
		b.Fatal(err)
	}
	s := k8sruntime.NewScheme()
	if err := helmv2.AddToScheme(s); err != nil {
		b.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s).UniversalDeserializer()
	const n = 2000
	releases := make([][]byte, n)
	for i := range releases {
		releases[i] = []byte(sibling(string(raw), i, "orders"))
	}
	alone := func(obj any) (any, error) {
		out, err := ReleaseTransform()(obj)
		if err != nil {
			return nil, err
		}
		c := out.(*CachedRelease)
		json, err := decode(c.dict, c.Raw)
		if err != nil {
			return nil, err
		}
		c.Raw, c.dict = encodeAlone(json), nil
		return c, nil
	}
	for _, c := range []struct {
		name      string
		transform func(any) (any, error)
	}{{"stripped", StripManagedFields}, {"trimmed", TrimRelease}, {"compressed-alone", alone}, {"compressed", ReleaseTransform()}} {
		b.Run(c.name, func(b *testing.B) {
			kept := make([]any, n)
			var perObject float64
			for b.Loop() {
				clear(kept)
				before := liveHeap()
				for i := range kept {
					obj, _, err := dec.Decode(releases[i], nil, &helmv2.HelmRelease{})
					if err != nil {
						b.Fatal(err)
					}
					if kept[i], err = c.transform(obj); err != nil {
						b.Fatal(err)
					}
				}
				perObject = float64(liveHeap()-before) / n
			}
			runtime.KeepAlive(kept)
			b.ReportMetric(perObject, "B/release")
		})
	}
	obj, _, err := dec.Decode(raw, nil, &helmv2.HelmRelease{})
	if err != nil {
		b.Fatal(err)
	}
	trimmed, _ := TrimRelease(obj.(*helmv2.HelmRelease).DeepCopy())
	b.Run("deepcopy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = trimmed.(*helmv2.HelmRelease).DeepCopyObject()
		}
	})
	cached, err := compactRelease(&testFamilies, obj)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRelease(cached.(*CachedRelease)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
