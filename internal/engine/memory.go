package engine

import (
	"runtime"
	"runtime/debug"
	"time"

	"github.com/go-logr/logr"
)

// bulkEnd tells, from the work queue's length sampled once a second, when a
// bulk phase has ended: the queue held at least min keys since the last end,
// and has now been empty for quiet samples in a row.
//
// Why: a bulk phase (thousands of objects created or changed at once, or an
// operator start on a large cluster) grows the heap, and Go gives the pages
// it no longer uses back to the operating system only slowly (its
// scavenger aims at the heap goal, which with --gc-percent 50 is half as
// much again as the live heap). Measured at 100,000 objects, right after
// the bulk: 233 MB of the heap's 602 MB was idle and 39 MB of it released,
// so some 195 MB of the RSS was memory the operator no longer used. Once the
// queue is empty again, a forced collection and release (debug.FreeOSMemory)
// gives it back at once, when there is enough of it (minRelease), for the
// cost of one collection per bulk (at 100,000 objects: 418 MiB of RSS at
// rest instead of 635).
//
// Under constant churn the queue can fill and drain every few seconds: a
// release comes at most once per every, so that a busy operator does not
// spend its CPU collecting and faulting pages back in.
type bulkEnd struct {
	min, quiet int
	every      time.Duration
	peak, idle int
	last       time.Time
}

// sample records the queue's length at now and reports whether a bulk
// phase just ended, and the most keys the queue held since the last end.
func (b *bulkEnd) sample(n int, now time.Time) (peak int, ended bool) {
	if n > 0 {
		b.peak, b.idle = max(b.peak, n), 0
		return 0, false
	}
	if b.peak < b.min {
		return 0, false
	}
	b.idle++
	if b.idle < b.quiet || (!b.last.IsZero() && now.Sub(b.last) < b.every) {
		return 0, false
	}
	peak, b.peak, b.idle, b.last = b.peak, 0, 0, now
	return peak, true
}

// bulkMinKeys is the queue length from which a phase counts as bulk: below
// it, the heap the phase grew is too small to be worth a forced collection.
// releaseEvery bounds how often memory is released.
const (
	bulkMinKeys  = 1000
	releaseEvery = time.Minute
)

// minRelease is the least idle heap, not yet returned to the operating
// system, worth a forced collection and release: below it the RSS gained is
// small (at 10 × 1,000 objects a release changed it by 1 MiB), and the
// collection is paid by the changes that follow the bulk (measured at
// 10 × 500: one change's Ready at 1.84× and 1.89× the ideal's latency with a
// release after every bulk, 1.29× before releases existed and 1.37× with
// this threshold; docs/benchmarks.md, session 9). At 100,000 objects 230 MB
// was idle after the bulk.
const minRelease = 64 << 20

// worthReleasing says whether a heap with idle bytes, released of them
// already returned, has enough left to return.
func worthReleasing(idle, released uint64) bool {
	return idle > released && idle-released >= minRelease
}

// releaseMemory returns the heap's unused pages to the operating system, if
// there are enough of them (worthReleasing), and logs how much.
func releaseMemory(log logr.Logger, peak int) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if !worthReleasing(before.HeapIdle, before.HeapReleased) {
		log.V(1).Info("bulk phase over: too little unused heap to return", "peakQueue", peak,
			"idleMiB", before.HeapIdle>>20, "releasedMiB", before.HeapReleased>>20)
		return
	}
	start := time.Now()
	debug.FreeOSMemory()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	log.Info("bulk phase over: returned unused heap to the operating system",
		"peakQueue", peak, "heapInUseMiB", after.HeapInuse>>20,
		"releasedMiB", (int64(after.HeapReleased)-int64(before.HeapReleased))>>20, "took", took.Round(time.Millisecond))
}
