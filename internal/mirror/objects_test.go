package mirror

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func version(uid, rv string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetUID(types.UID(uid))
	u.SetResourceVersion(rv)
	return u
}

// A cache still at a version chartkind's own write replaced is behind; once
// it moved on it is the truth again.
func TestRecentWrites(t *testing.T) {
	w := &recentWrites{byKey: map[string]recentWrite{}}
	now := time.Now()
	w.record("k", "1", version("u", "2"), now)
	if !w.behind("k", version("u", "1")) {
		t.Error("a cache at the version the own write replaced is not behind")
	}
	// A second write before the cache caught up: it replaced 2, and 1 still.
	w.record("k", "2", version("u", "3"), now)
	for _, cached := range []string{"1", "2"} {
		if !w.behind("k", version("u", cached)) {
			t.Errorf("cache at %s is not behind the write of 3", cached)
		}
	}
	// The cache shows something the writes did not replace (ours, or
	// someone else's later write): the cache is the truth, and the entry goes.
	if w.behind("k", version("u", "5")) {
		t.Error("a cache that moved on is behind")
	}
	if w.behind("k", version("u", "1")) {
		t.Error("an entry outlived the cache catching up")
	}
	// A recreated object (another UID) at a replaced version is not ours.
	w.record("k", "1", version("u", "2"), now)
	if w.behind("k", version("other", "1")) {
		t.Error("the write of a deleted object applied to its successor")
	}
	// Entries older than the window are swept on the next write.
	w.record("old", "1", version("u", "2"), now)
	w.record("new", "1", version("u", "2"), now.Add(2*recentWritesWindow))
	if _, ok := w.byKey["old"]; ok {
		t.Error("an entry older than the window was kept")
	}
	w.forget("new")
	if len(w.byKey) != 0 {
		t.Errorf("kept %v", w.byKey)
	}
	var none *recentWrites
	none.record("k", "1", version("u", "2"), now)
	if none.behind("k", version("u", "1")) {
		t.Error("a nil recentWrites says behind")
	}
}
