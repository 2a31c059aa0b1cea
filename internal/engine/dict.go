package engine

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/s2"
)

// dictionary compresses the JSON of one family of cached objects (the
// objects of one kind, or the HelmReleases of one kind) against the first
// one it was given. Objects of a family share their keys, most of their
// values and the messages of their conditions, but S2 alone has no entropy
// coding and no history beyond the one object, so it keeps about half of
// each JSON; against a sibling it keeps about an eighth
// (BenchmarkCachedObject, BenchmarkCachedRelease). The sample is never
// replaced: every object compressed against it keeps a pointer to it, so
// it lives as long as one of them does, and costs its size and S2's 32 KiB
// hash table once per family.
type dictionary struct {
	dict atomic.Pointer[s2.Dict]
}

// encode returns raw compressed against the family's sample (the first
// raw of the family, which then becomes that sample) and the dictionary
// to decode it with: nil when raw is too small to be a sample, in which
// case raw is compressed on its own.
func (x *dictionary) encode(raw []byte) ([]byte, *s2.Dict) {
	d := x.dict.Load()
	if d == nil {
		// MakeDict keeps the slice it is given when it has room for its
		// padding, so it gets its own copy; a sample's first bytes are how
		// every object's JSON starts.
		sample := append(make([]byte, 0, len(raw)+16), raw...)
		if d = s2.MakeDict(sample, raw[:min(len(raw), 32)]); d == nil {
			return bytes.Clone(s2.Encode(nil, raw)), nil
		}
		if !x.dict.CompareAndSwap(nil, d) {
			d = x.dict.Load()
		}
	}
	// Encode's buffer is sized for the worst case: keep only what it used.
	return bytes.Clone(d.Encode(nil, raw)), d
}

// decode returns what encode compressed with d.
func decode(d *s2.Dict, compressed []byte) ([]byte, error) {
	if d == nil {
		return s2.Decode(nil, compressed)
	}
	return d.Decode(nil, compressed)
}

// maxFamilies bounds the dictionaries a set keeps (about 36 KiB each for
// small objects): names of families no longer in use are not forgotten,
// so a cluster that creates and deletes kinds for ever must not grow the
// set for ever. Beyond it, objects are compressed on their own.
const maxFamilies = 1024

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
	return bytes.Clone(s2.Encode(nil, raw)), nil
}
