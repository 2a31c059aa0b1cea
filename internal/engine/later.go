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
// a copy of the engine's 96-byte Key (300–600 B per key in heap profiles
// at 10,000 objects, docs/benchmarks.md). later keeps a 40-byte key in a
// map and in the slice of its tick.
//
// As with AddAfter, a key already waiting keeps the earlier of its two
// times, and a key added to the queue meanwhile (an event) still comes
// back when its time is due.
type later struct {
	add func(Key) // adds a due key to the work queue
	// base is when later was made, with the monotonic clock's reading:
	// ticks count from it, so a step of the wall clock (NTP, a restored VM)
	// moves no key's time, as with the work queue's AddAfter.
	base time.Time

	mu    sync.Mutex
	due   map[laterKey]int64   // the tick each key is due at
	ticks map[int64][]laterKey // the keys due at each tick (some since moved earlier)
	order tickHeap             // the ticks of ticks, earliest first
	kinds map[kindName]*laterKind
	wake  chan struct{} // a tick earlier than the one the loop waits for was added
}

// laterTick is later's resolution: a key is added to the queue up to this
// long after its time.
const laterTick = 100 * time.Millisecond

// tickOf returns the tick at or after t (t later than l.base).
func (l *later) tickOf(t time.Time) int64 {
	d := t.Sub(l.base)
	tick := int64(d / laterTick)
	if d%laterTick > 0 {
		tick++
	}
	return tick
}

// timeOf returns the time tick starts at.
func (l *later) timeOf(tick int64) time.Time { return l.base.Add(time.Duration(tick) * laterTick) }

// laterKind is a Key's kind, kept once for all its waiting keys, and
// forgotten with the last of them.
type laterKind struct {
	definition string
	gvr        schema.GroupVersionResource
	waiting    int
}

// kindName is what names a laterKind.
type kindName struct {
	definition string
	gvr        schema.GroupVersionResource
}

type laterKey struct {
	kind            *laterKind
	namespace, name string
}

func newLater(add func(Key)) *later {
	return &later{
		add: add, base: time.Now(), due: map[laterKey]int64{}, ticks: map[int64][]laterKey{},
		kinds: map[kindName]*laterKind{}, wake: make(chan struct{}, 1),
	}
}

// After adds key to the queue once after has passed (rounded up to the
// tick), unless it is already waiting for an earlier tick.
func (l *later) After(key Key, after time.Duration) {
	tick := l.tickOf(time.Now().Add(after))
	l.mu.Lock()
	defer l.mu.Unlock()
	name := kindName{definition: key.Definition, gvr: key.GVR}
	k := l.kinds[name]
	if k == nil {
		k = &laterKind{definition: key.Definition, gvr: key.GVR}
		l.kinds[name] = k
	}
	lk := laterKey{kind: k, namespace: key.Namespace, name: key.Name}
	cur, waiting := l.due[lk]
	if waiting && cur <= tick {
		return
	}
	if !waiting {
		k.waiting++
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
			wait = time.Until(l.timeOf(next))
		}
		// Since Go 1.23 (go.mod), Reset leaves no stale tick in timer.C to
		// drain; an old one would only cost a release with nothing due.
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
	for len(l.order) > 0 && !l.timeOf(l.order[0]).After(now) {
		tick := heap.Pop(&l.order).(int64)
		for _, k := range l.ticks[tick] {
			if due, ok := l.due[k]; ok && due == tick { // not moved to an earlier tick since
				delete(l.due, k)
				ready = append(ready, k)
				if k.kind.waiting--; k.kind.waiting == 0 {
					delete(l.kinds, kindName{definition: k.kind.definition, gvr: k.kind.gvr})
				}
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
