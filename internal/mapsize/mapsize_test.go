package mapsize

import (
	"fmt"
	"runtime"
	"testing"
)

func TestShrink(t *testing.T) {
	var p Peak
	m := map[int]string{}
	for i := range 4 * Min {
		m[i] = "v"
		m = Shrink(m, &p)
	}
	if p.n != 4*Min {
		t.Fatalf("peak %d, want %d", p.n, 4*Min)
	}
	before := fmt.Sprintf("%p", m)
	for i := range 4*Min - Min/2 - 1 {
		delete(m, i)
		m = Shrink(m, &p)
	}
	if fmt.Sprintf("%p", m) != before {
		t.Fatal("rebuilt while holding more than an eighth of its peak")
	}
	delete(m, 4*Min-Min/2-1)
	m = Shrink(m, &p)
	if fmt.Sprintf("%p", m) == before {
		t.Fatal("not rebuilt at an eighth of its peak")
	}
	if len(m) != Min/2 || m[4*Min-1] != "v" || m[4*Min-Min/2] != "v" {
		t.Fatalf("rebuilt map lost entries: %d", len(m))
	}
	if p.n != Min/2 {
		t.Fatalf("peak after rebuild %d", p.n)
	}
	// Below Min, nothing is rebuilt.
	small := map[int]int{}
	var sp Peak
	for i := range Min - 1 {
		small[i] = i
		small = Shrink(small, &sp)
	}
	ptr := fmt.Sprintf("%p", small)
	for i := range Min - 1 {
		delete(small, i)
		small = Shrink(small, &sp)
	}
	if fmt.Sprintf("%p", small) != ptr {
		t.Error("a small map was rebuilt")
	}
}

// BenchmarkEmptiedMap reports the heap an emptied map of 10,000 keys of
// the engine's size (six strings) keeps: "kept" as Go keeps it (the
// baseline of the same run), "shrunk" with Shrink.
func BenchmarkEmptiedMap(b *testing.B) {
	type key struct{ a, b, c, d, e, f string }
	for _, shrink := range []bool{false, true} {
		name := "kept"
		if shrink {
			name = "shrunk"
		}
		b.Run(name, func(b *testing.B) {
			var retained float64
			for b.Loop() {
				before := live()
				var p Peak
				m := map[key]int64{}
				for i := range 10000 {
					m[key{f: fmt.Sprint(i)}] = 1
					if shrink {
						m = Shrink(m, &p)
					}
				}
				for k := range m {
					delete(m, k)
					if shrink {
						m = Shrink(m, &p)
					}
				}
				retained = float64(live() - before)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(retained, "B-retained")
		})
	}
}

func live() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
