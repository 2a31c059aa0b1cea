package engine

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
)

// dictionary compresses the JSON of one family of cached objects (the
// objects of one kind, or the HelmReleases of one kind) against a sample
// of the family. Objects of a family share their keys, most of their
// values and the messages of their conditions, but S2 alone has no entropy
// coding and no history beyond the one object, so it keeps about half of
// each JSON; against a sibling it keeps about an eighth
// (BenchmarkCachedObject, BenchmarkCachedRelease).
//
// The sample is the first object the family saw, until an object a quarter
// larger comes (the first objects of a kind are usually seen as they are
// created, before they have a status, and a HelmRelease's status is
// written in two steps; the status is most of an object later), at most
// maxResamples times. A sample is at most maxSample bytes of its object
// (the end, where the status is). Every object compressed against a sample
// keeps a pointer to it, so a sample lives as long as one of them does,
// and costs its size and S2's 32 KiB hash table.
type dictionary struct {
	current atomic.Pointer[sample]
}

type sample struct {
	dict *s2.Dict
	size int
	// resampled is how many samples of the family came before this one.
	resampled int
}

// maxResamples bounds how often a family's sample is replaced by a larger
// object, and so the samples its objects can keep alive.
const maxResamples = 4

// maxSample bounds a sample (S2 takes up to 64 KiB): objects of a kind are
// mostly far smaller, and what one family can keep alive is at most
// maxResamples+1 samples and their tables.
const maxSample = 16 << 10

// encode returns raw compressed against the family's sample (raw itself
// becomes the sample when the family has none, or when raw is a quarter
// larger than the sample) and the dictionary to decode it with: nil
// when raw is too small to be a sample, in which case raw is compressed on
// its own.
func (x *dictionary) encode(raw []byte) ([]byte, *s2.Dict) {
	cur := x.current.Load()
	if cur == nil || (4*len(raw) >= 5*cur.size && cur.size < maxSample && cur.resampled < maxResamples) {
		// MakeDict keeps the slice it is given when it has room for its
		// padding, so the sample is a copy of only what it keeps; an
		// object's first bytes are how every object's JSON starts.
		tail := raw[max(0, len(raw)-maxSample):]
		data := append(make([]byte, 0, len(tail)+16), tail...)
		if d := s2.MakeDict(data, raw[:min(len(raw), 32)]); d != nil {
			next := &sample{dict: d, size: len(tail)}
			if cur != nil {
				next.resampled = cur.resampled + 1
			}
			if x.current.CompareAndSwap(cur, next) {
				cur = next
			} else {
				cur = x.current.Load()
			}
		}
	}
	if cur == nil {
		return encodeAlone(raw), nil
	}
	// Encode's buffer is sized for the worst case: keep only what it used.
	return bytes.Clone(cur.dict.Encode(nil, raw)), cur.dict
}

// decode returns what encode compressed with d.
func decode(d *s2.Dict, compressed []byte) ([]byte, error) {
	if d == nil {
		return s2.Decode(nil, compressed)
	}
	return d.Decode(nil, compressed)
}

// maxFamilies bounds the dictionaries a set keeps: names of families no
// longer in use are not forgotten, and the release cache's families are
// named by whatever kind controls a HelmRelease, which whoever may create
// HelmReleases chooses. Each costs 35–48 KiB (its sample and S2's table;
// up to 5 of them while old objects still use older samples), so the
// bound caps what they can make the operator keep. Beyond it, objects are
// compressed on their own.
const maxFamilies = 256

// families is a set of dictionaries by family name.
type families struct {
	mu  sync.Mutex
	all map[string]*dictionary
}

// get returns the dictionary of the family name, or nil when the set is
// full and has none for it.
func (f *families) get(name string) *dictionary {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.all[name]; ok {
		return d
	}
	if len(f.all) >= maxFamilies {
		return nil
	}
	if f.all == nil {
		f.all = map[string]*dictionary{}
	}
	d := &dictionary{}
	f.all[name] = d
	return d
}

// encode compresses raw against the dictionary of the family name.
func (f *families) encode(name string, raw []byte) ([]byte, *s2.Dict) {
	if d := f.get(name); d != nil {
		return d.encode(raw)
	}
	return encodeAlone(raw), nil
}

// encodeAlone compresses raw with no dictionary.
func encodeAlone(raw []byte) []byte {
	// Encode's buffer is sized for the worst case: keep only what it used.
	return bytes.Clone(s2.Encode(nil, raw))
}
