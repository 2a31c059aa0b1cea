package engine

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timePattern = regexp.MustCompile(`20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z`)
	hexPattern  = regexp.MustCompile(`[0-9a-f]{64}`)
)

// sibling returns the JSON s as another object of the same family would
// have it: each UID, digest and time replaced by one of its own (UIDs and
// digests are as random as real ones, which no dictionary can compress),
// and each of names replaced by the name with i appended. A dictionary
// measured on copies of one object would measure nothing.
func sibling(s string, i int, names ...string) string {
	random := func(seed string, n int) string {
		var b strings.Builder
		for j := 0; b.Len() < n; j++ {
			h := fnv.New64a()
			fmt.Fprintf(h, "%s/%d/%d", seed, i, j)
			fmt.Fprintf(&b, "%016x", h.Sum64())
		}
		return b.String()[:n]
	}
	s = uuidPattern.ReplaceAllStringFunc(s, func(u string) string {
		r := random(u, 32)
		return r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:]
	})
	s = hexPattern.ReplaceAllStringFunc(s, func(d string) string { return random(d, 64) })
	s = timePattern.ReplaceAllStringFunc(s, func(t string) string {
		at, _ := time.Parse(time.RFC3339, t)
		return at.Add(time.Duration(i) * 37 * time.Second).Format(time.RFC3339)
	})
	var pairs []string
	for _, n := range names {
		pairs = append(pairs, n, fmt.Sprintf("%s-%d", n, i))
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// Every object of a family comes back as it was, whichever was its
// sample; the first becomes the sample, and a JSON too small to be one is
// compressed on its own.
func TestDictionaryRoundTrip(t *testing.T) {
	var d dictionary
	if got, dict := d.encode([]byte("{}")); dict != nil {
		t.Errorf("a 2-byte sample made a dictionary")
	} else if back, err := decode(nil, got); err != nil || string(back) != "{}" {
		t.Errorf("decoded %q, %v", back, err)
	}
	var first []byte
	for i := range 50 {
		raw := []byte(sibling(benchObject, i, "o123", "bench"))
		got, dict := d.encode(raw)
		if dict == nil {
			t.Fatalf("object %d: no dictionary", i)
		}
		if i == 0 {
			first = dict.Bytes()
		} else if !bytes.Equal(dict.Bytes(), first) {
			t.Fatalf("object %d: the sample changed", i)
		}
		back, err := decode(dict, got)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("object %d: decoded %q, %v", i, back, err)
		}
		// Against its sibling an object keeps far less than on its own.
		if i > 0 && 3*len(got) > len(encodeAlone(raw)) {
			t.Errorf("object %d: %d bytes against the sample, %d alone", i, len(got), len(encodeAlone(raw)))
		}
	}
	// Raw passed to encode may be reused by the caller: the sample is a copy
	// (raw has room for MakeDict's padding, so MakeDict would keep it).
	want := sibling(benchObject, 99, "o123", "bench")
	raw := append(make([]byte, 0, len(want)+64), want...)
	var d2 dictionary
	got, dict := d2.encode(raw)
	clear(raw)
	if back, err := decode(dict, got); err != nil || string(back) != want {
		t.Errorf("the sample shares the caller's bytes: %v", err)
	}
	// A large object's sample keeps maxSample bytes of it, not all of it.
	big := strings.Replace(benchObject, `"mode":"a"`, `"mode":"a","more":"`+strings.Repeat("x0y1z2", 20000)+`"`, 1)
	var d3 dictionary
	got, dict = d3.encode([]byte(big))
	if n := len(dict.Bytes()); n > maxSample+8 {
		t.Errorf("the sample of a %d-byte object is %d bytes", len(big), n)
	}
	if back, err := decode(dict, got); err != nil || string(back) != big {
		t.Errorf("decoding a large object: %v", err)
	}
}

// The first objects of a kind are seen as they are created, before they
// have a status: an object a quarter larger than the sample becomes the
// sample, a few times at most, and what was compressed against the old one
// still decodes.
func TestDictionaryResample(t *testing.T) {
	created := regexp.MustCompile(`(?s),\s*"status":\{.*\}\}$`).ReplaceAllString(benchObject, "}")
	if len(created) >= len(benchObject)/2 {
		t.Fatalf("the created object (%d bytes) is not much smaller than the object with its status (%d)", len(created), len(benchObject))
	}
	var d dictionary
	first, firstDict := d.encode([]byte(created))
	full := []byte(sibling(benchObject, 1, "o123"))
	got, dict := d.encode(full)
	if dict == firstDict {
		t.Fatal("the object with its status did not replace the sample")
	}
	if 3*len(got) > len(encodeAlone(full)) {
		t.Errorf("%d bytes against the new sample, %d alone", len(got), len(encodeAlone(full)))
	}
	if back, err := decode(firstDict, first); err != nil || string(back) != created {
		t.Errorf("the object compressed against the old sample: %q, %v", back, err)
	}
	if _, again := d.encode([]byte(sibling(benchObject, 2, "o123"))); again != dict {
		t.Error("an object of the sample's size replaced it")
	}
	// Ever larger objects replace it maxResamples times in all.
	grown := benchObject
	samples := map[any]bool{}
	for range 10 {
		grown = strings.Replace(grown, `"mode":"a"`, `"mode":"a","more":"`+strings.Repeat("x", len(grown))+`"`, 1)
		raw := []byte(grown)
		got, dict := d.encode(raw)
		samples[dict] = true
		if back, err := decode(dict, got); err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("decoded %d bytes, %v", len(back), err)
		}
	}
	if n := d.current.Load().resampled; n != maxResamples {
		t.Errorf("%d samples replaced, want %d", n, maxResamples)
	}
}

// A set keeps one dictionary per family up to maxFamilies, then
// compresses on their own the objects of families it has no room for.
func TestFamilies(t *testing.T) {
	var f families
	a, b := f.get("a"), f.get("b")
	if a == nil || b == nil || a == b || f.get("a") != a {
		t.Fatal("families share or lose their dictionaries")
	}
	for i := len(f.all); i < maxFamilies; i++ {
		f.get(fmt.Sprint(i))
	}
	if f.get("one too many") != nil {
		t.Error("the set grew past maxFamilies")
	}
	if f.get("a") != a {
		t.Error("a full set lost a family it had")
	}
	raw := []byte(benchObject)
	got, dict := f.encode("one too many", raw)
	if dict != nil {
		t.Error("an object of a family beyond the bound got a dictionary")
	}
	if back, err := decode(nil, got); err != nil || !bytes.Equal(back, raw) {
		t.Errorf("decoded %q, %v", back, err)
	}
}

// Informers transform one object at a time, but the release transform's
// set is shared by whatever calls it: concurrent first objects of one
// family agree on one sample.
func TestFamiliesConcurrent(t *testing.T) {
	var f families
	var wg sync.WaitGroup
	out := make([][]byte, 16)
	dicts := make([][]byte, 16)
	for i := range out {
		wg.Go(func() {
			got, dict := f.encode("kind", []byte(sibling(benchObject, i, "o123")))
			out[i], dicts[i] = got, dict.Bytes()
			if back, err := decode(dict, got); err != nil || string(back) != sibling(benchObject, i, "o123") {
				t.Errorf("object %d: decoded %q, %v", i, back, err)
			}
		})
	}
	wg.Wait()
	for i := range dicts {
		if !bytes.Equal(dicts[i], dicts[0]) {
			t.Fatalf("objects 0 and %d have different samples", i)
		}
	}
}

// Releases are compressed against a release of the same kind of object:
// their controller's kind, or no controller at all.
func TestReleaseFamilies(t *testing.T) {
	transform := ReleaseTransform()
	cached := func(kind string) *CachedRelease {
		hr := decodedRelease(t)
		hr.OwnerReferences = nil
		if kind != "" {
			yes := true
			hr.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps.test/v1", Kind: kind, Name: hr.Name, UID: "u", Controller: &yes}}
		}
		out, err := transform(hr)
		if err != nil {
			t.Fatal(err)
		}
		c := out.(*CachedRelease)
		if got, err := DecodeRelease(c); err != nil || got.Name != hr.Name {
			t.Fatalf("%s: decoded %v, %v", kind, got, err)
		}
		return c
	}
	a1, a2, b, none1, none2 := cached("A"), cached("A"), cached("B"), cached(""), cached("")
	if a1.dict == nil || a1.dict != a2.dict {
		t.Error("releases of one kind have different dictionaries")
	}
	if b.dict == a1.dict || none1.dict == a1.dict || none1.dict == b.dict {
		t.Error("releases of different kinds share a dictionary")
	}
	if none1.dict == nil || none1.dict != none2.dict {
		t.Error("releases nothing controls have different dictionaries")
	}
	if other := ReleaseTransform(); other == nil {
		t.Fatal("no transform")
	} else if out, _ := other(decodedRelease(t)); out.(*CachedRelease).dict == a1.dict {
		t.Error("two transforms share their dictionaries")
	}
}
