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

// A reconcile reads chartkind's own last write while the cache still holds
// a version that write replaced, and the cache once it moved on.
func TestRecentWrites(t *testing.T) {
	w := &recentWrites{byKey: map[string]recentWrite{}}
	now := time.Now()
	w.record("k", "1", version("u", "2"), now)
	if got := w.newest("k", version("u", "1")); got.GetResourceVersion() != "2" {
		t.Errorf("cache behind the own write: got %s, want the write's 2", got.GetResourceVersion())
	}
	// A second write before the cache caught up: it replaced 2, and 1 still.
	w.record("k", "2", version("u", "3"), now)
	for _, cached := range []string{"1", "2"} {
		if got := w.newest("k", version("u", cached)); got.GetResourceVersion() != "3" {
			t.Errorf("cache at %s: got %s, want 3", cached, got.GetResourceVersion())
		}
	}
	// The cache shows something the writes did not replace (ours, or
	// someone else's later write): the cache is the truth, and the entry goes.
	if got := w.newest("k", version("u", "5")); got.GetResourceVersion() != "5" {
		t.Errorf("cache moved on: got %s, want 5", got.GetResourceVersion())
	}
	if got := w.newest("k", version("u", "1")); got.GetResourceVersion() != "1" {
		t.Error("an entry outlived the cache catching up")
	}
	// A recreated object (another UID) at a replaced version is not ours.
	w.record("k", "1", version("u", "2"), now)
	if got := w.newest("k", version("other", "1")); got.GetUID() != "other" {
		t.Error("the write of a deleted object answered for its successor")
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
	if got := none.newest("k", version("u", "1")); got.GetResourceVersion() != "1" {
		t.Error("a nil recentWrites changed the answer")
	}
}
