package operator

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	t.Setenv("GOMEMLIMIT", "")
	for _, c := range []struct {
		in   string
		want int64
	}{{"", 0}, {"512Mi", 512 << 20 * 9 / 10}, {"1000000000", 900000000}} {
		debug.SetMemoryLimit(math.MaxInt64)
		got, err := SetMemoryLimit(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %d, %v; want %d", c.in, got, err, c.want)
		}
		want := c.want
		if want == 0 {
			want = math.MaxInt64
		}
		if cur := debug.SetMemoryLimit(-1); cur != want {
			t.Errorf("%q: the runtime's limit is %d, want %d", c.in, cur, want)
		}
	}
	for _, bad := range []string{"lots", "0", "-1Gi"} {
		if _, err := SetMemoryLimit(bad); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("%q: %v, want an error naming --memory-limit", bad, err)
		}
	}
	// GOMEMLIMIT set by hand wins.
	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(math.MaxInt64)
	if got, err := SetMemoryLimit("512Mi"); err != nil || got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT: %d, %v, runtime limit %d", got, err, debug.SetMemoryLimit(-1))
	}
}

func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	t.Setenv("GOGC", "")
	if got := SetGCPercent(DefaultGCPercent); got != DefaultGCPercent || debug.SetGCPercent(100) != DefaultGCPercent {
		t.Errorf("SetGCPercent(%d) = %d, want the runtime set to it", DefaultGCPercent, got)
	}
	debug.SetGCPercent(100)
	if got := SetGCPercent(0); got != 100 || debug.SetGCPercent(100) != 100 {
		t.Errorf("SetGCPercent(0) = %d, want the runtime's setting left alone", got)
	}
	// GOGC set by hand wins (the runtime read it at start; here it is 80).
	t.Setenv("GOGC", "80")
	debug.SetGCPercent(80)
	if got := SetGCPercent(DefaultGCPercent); got != 80 || debug.SetGCPercent(80) != 80 {
		t.Errorf("with GOGC=80: %d, want 80 left in force", got)
	}
}
