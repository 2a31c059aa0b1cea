package engine

import (
	"testing"
	"time"
)

func TestBulkEnd(t *testing.T) {
	b := bulkEnd{min: 1000, quiet: 3, every: time.Minute}
	now := time.Unix(1_000_000, 0)
	steps := []struct {
		n     int
		ended bool
		peak  int
	}{
		{0, false, 0}, {0, false, 0}, {0, false, 0}, {0, false, 0}, // idle from the start: no bulk
		{400, false, 0}, {0, false, 0}, {0, false, 0}, {0, false, 0}, // below min: not a bulk
		{800, false, 0}, {2500, false, 0}, {10, false, 0}, // a bulk (the small phase before counts with it)
		{0, false, 0}, {0, false, 0}, {7, false, 0}, // empty for a moment within it
		{0, false, 0}, {0, false, 0}, {0, true, 2500}, // then empty for 3 samples: over, once
		{0, false, 0}, {0, false, 0}, {0, false, 0}, {0, false, 0},
		{1500, false, 0}, {0, false, 0}, {0, false, 0}, {0, false, 0}, // the next bulk, 8 s later: too soon
	}
	var released time.Time
	for i, s := range steps {
		now = now.Add(time.Second)
		peak, ended := b.sample(s.n, now)
		if ended != s.ended || peak != s.peak {
			t.Fatalf("sample %d (queue %d) = %d, %v; want %d, %v", i, s.n, peak, ended, s.peak, s.ended)
		}
		if ended {
			released = now
		}
	}
	// Once a minute has passed since the last release, the pending bulk's end counts.
	for now = now.Add(time.Second); ; now = now.Add(time.Second) {
		peak, ended := b.sample(0, now)
		if ended {
			if peak != 1500 || now.Sub(released) < time.Minute {
				t.Fatalf("released %s after the last release with peak %d, want 1500 a minute or more after it", now.Sub(released), peak)
			}
			break
		}
		if now.Sub(released) > 2*time.Minute {
			t.Fatal("the pending bulk's end never counted")
		}
	}
}

// A release is forced only when the idle heap not yet returned is worth it.
func TestWorthReleasing(t *testing.T) {
	for _, c := range []struct {
		idle, released uint64
		want           bool
	}{
		{0, 0, false},
		{minRelease - 1, 0, false},
		{minRelease, 0, true},
		{233 << 20, 39 << 20, true}, // 100,000 objects after the bulk (docs/benchmarks.md)
		{80 << 20, 40 << 20, false}, // idle, but most of it returned already
		{10 << 20, 20 << 20, false}, // more released than idle (stats read apart)
	} {
		if got := worthReleasing(c.idle, c.released); got != c.want {
			t.Errorf("worthReleasing(idle %d MiB, released %d MiB) = %t, want %t", c.idle>>20, c.released>>20, got, c.want)
		}
	}
}
