package engine

import "testing"

func TestBulkEnd(t *testing.T) {
	b := bulkEnd{min: 1000, quiet: 3}
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
		{1500, false, 0}, {0, false, 0}, {0, false, 0}, {0, true, 1500}, // the next bulk
	}
	for i, s := range steps {
		peak, ended := b.sample(s.n)
		if ended != s.ended || peak != s.peak {
			t.Fatalf("sample %d (queue %d) = %d, %v; want %d, %v", i, s.n, peak, ended, s.peak, s.ended)
		}
	}
}
