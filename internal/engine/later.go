package engine

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// later holds the keys whose reconcile asked to run again after a while
// (Handler.Reconcile's requeueAfter), and adds each to the work queue once
// it is due, to a tenth of a second (laterTick). It does what the work queue's AddAfter does,
// smaller: with release insight every healthy object waits for its next
// health check, so there is one waiting key per object of the cluster, and
// client-go's delaying queue keeps for each a heap entry, a map entry and
// a copy of the engine's 96-byte Key (about 500 B per key at 10,000
// objects, in session 8's heap profile). later keeps a 40-byte key in a
// map and in the slice of its tick.
//
// As with AddAfter, a key already waiting keeps the earlier of its two
// times, and a key added to the queue meanwhile (an event) still comes
// back when its time is due.
type later struct {
	add func(Key) // adds a due key to the work queue

	mu    sync.Mutex
	due   map[laterKey]int64   // the tick each key is due at
	ticks map[int64][]laterKey // the keys due at each tick (some since moved earlier)
	order tickHeap             // the ticks of ticks, earliest first
	kinds map[laterKind]*laterKind
	wake  chan struct{} // a tick earlier than the one the loop waits for was added
}

// laterTick is later's resolution: a key is added to the queue up to this
// long after its time.
const laterTick = 100 * time.Millisecond

// tickOf returns the tick at or after t.
func tickOf(t time.Time) int64 {
	n := t.UnixNano()
	tick := n / int64(laterTick)
	if n%int64(laterTick) > 0 {
		tick++
	}
	return tick
}

// timeOf returns the time tick starts at.
func timeOf(tick int64) time.Time { return time.Unix(0, tick*int64(laterTick)) }

// laterKind is a Key's kind, kept once for all its keys.
type laterKind struct {
	definition string
	gvr        schema.GroupVersionResource
}

type laterKey struct {
	kind            *laterKind
	namespace, name string
}

func newLater(add func(Key)) *later {
	return &later{
		add: add, due: map[laterKey]int64{}, ticks: map[int64][]laterKey{},
		kinds: map[laterKind]*laterKind{}, wake: make(chan struct{}, 1),
	}
}

// After adds key to the queue once after has passed (rounded up to the
// tick), unless it is already waiting for an earlier tick.
func (l *later) After(key Key, after time.Duration) {
	tick := tickOf(time.Now().Add(after))
	l.mu.Lock()
	defer l.mu.Unlock()
	kind := laterKind{definition: key.Definition, gvr: key.GVR}
	k := l.kinds[kind]
	if k == nil {
		k = &kind
		l.kinds[kind] = k
	}
	lk := laterKey{kind: k, namespace: key.Namespace, name: key.Name}
	if cur, ok := l.due[lk]; ok && cur <= tick {
		return
	}
	l.due[lk] = tick
	keys, ok := l.ticks[tick]
	l.ticks[tick] = append(keys, lk)
	if !ok {
		heap.Push(&l.order, tick)
		if l.order[0] == tick {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Waiting returns how many keys are waiting.
func (l *later) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.due)
}

// run adds keys to the queue as they fall due, until ctx is done.
func (l *later) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, ok := l.release(time.Now())
		wait := time.Hour
		if ok {
			wait = time.Until(timeOf(next))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.wake:
		}
	}
}

// release adds every key due by now to the queue, and returns the next
// tick a key is due at (ok false when none waits).
func (l *later) release(now time.Time) (next int64, ok bool) {
	l.mu.Lock()
	var ready []laterKey
	for len(l.order) > 0 && !timeOf(l.order[0]).After(now) {
		tick := heap.Pop(&l.order).(int64)
		for _, k := range l.ticks[tick] {
			if l.due[k] == tick { // not moved to an earlier tick since
				delete(l.due, k)
				ready = append(ready, k)
			}
		}
		delete(l.ticks, tick)
	}
	if len(l.order) > 0 {
		next, ok = l.order[0], true
	}
	l.mu.Unlock()
	for _, k := range ready {
		l.add(Key{Definition: k.kind.definition, GVR: k.kind.gvr, Namespace: k.namespace, Name: k.name})
	}
	return next, ok
}

// tickHeap is a min-heap of ticks (container/heap).
type tickHeap []int64

func (h tickHeap) Len() int           { return len(h) }
func (h tickHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h tickHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *tickHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *tickHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
