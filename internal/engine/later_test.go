package engine

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A key comes back once, at the earlier of the times it was asked for, as
// the engine's Key it was; keys of two kinds with the same name are two.
func TestLater(t *testing.T) {
	var mu sync.Mutex
	var got []Key
	l := newLater(func(k Key) { mu.Lock(); got = append(got, k); mu.Unlock() })
	taken := func() []Key { mu.Lock(); defer mu.Unlock(); out := got; got = nil; return out }
	gvr := schema.GroupVersionResource{Group: "apps.test", Version: "v1alpha1", Resource: "gadgets"}
	a := Key{Definition: "gadget", GVR: gvr, Namespace: "ns", Name: "a"}
	b := Key{Definition: "gadget", GVR: gvr, Namespace: "ns", Name: "b"}
	otherKind := Key{Definition: "widget", GVR: schema.GroupVersionResource{Group: "apps.test", Version: "v1alpha1", Resource: "widgets"}, Namespace: "ns", Name: "a"}
	start := time.Now()
	l.After(a, 10*time.Second)
	l.After(a, 30*time.Second) // later: a keeps 10 s
	l.After(b, 30*time.Second)
	l.After(b, 10*time.Second) // earlier: b moves to 10 s
	l.After(otherKind, 20*time.Second)
	if n := l.Waiting(); n != 3 {
		t.Fatalf("%d keys waiting, want 3", n)
	}
	if next, ok := l.release(start); !ok || l.timeOf(next).Before(start.Add(10*time.Second)) || l.timeOf(next).After(start.Add(10*time.Second+laterTick+time.Second)) {
		t.Errorf("next due at %v (%v), want 10 s after %v", l.timeOf(next), ok, start)
	}
	if out := taken(); len(out) != 0 {
		t.Fatalf("released before their time: %v", out)
	}
	l.release(start.Add(12 * time.Second))
	out := taken()
	slices.SortFunc(out, func(x, y Key) int { return cmp.Compare(x.Name, y.Name) })
	if !slices.Equal(out, []Key{a, b}) {
		t.Fatalf("after 12 s: %v, want %v and %v", out, a, b)
	}
	l.release(start.Add(22 * time.Second))
	if out := taken(); !slices.Equal(out, []Key{otherKind}) {
		t.Fatalf("after 22 s: %v, want %v", out, otherKind)
	}
	// b's first time (30 s) is gone with it: nothing comes back twice.
	if next, ok := l.release(start.Add(40 * time.Second)); ok {
		t.Errorf("a tick still waits: %v", l.timeOf(next))
	}
	if out := taken(); len(out) != 0 {
		t.Errorf("came back twice: %v", out)
	}
	if n := l.Waiting(); n != 0 {
		t.Errorf("%d keys still waiting", n)
	}
	if len(l.kinds) != 0 {
		t.Errorf("kinds of no waiting key kept: %v", l.kinds)
	}
	// A key that came back may wait again.
	l.After(a, time.Second)
	l.release(start.Add(3 * time.Second))
	if out := taken(); !slices.Equal(out, []Key{a}) {
		t.Errorf("waiting again: %v", out)
	}
}

// run releases a key once its time has come, including one earlier
// than the second it was sleeping towards, and stops with its context.
func TestLaterRun(t *testing.T) {
	got := make(chan Key, 2)
	l := newLater(func(k Key) { got <- k })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx); close(done) }()
	far := Key{Definition: "d", Name: "far"}
	near := Key{Definition: "d", Name: "near"}
	l.After(far, time.Hour)
	time.Sleep(50 * time.Millisecond) // run now sleeps towards an hour
	start := time.Now()
	l.After(near, 100*time.Millisecond)
	select {
	case k := <-got:
		if k != near {
			t.Fatalf("released %v", k)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("released after %v, before its time", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not released")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if n := l.Waiting(); n != 1 {
		t.Errorf("%d waiting, want the far key", n)
	}
}
