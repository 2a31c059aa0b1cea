package operator

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandlers are Go's runtime profiles (net/http/pprof), served on the
// metrics address when Options.Pprof is set: /debug/pprof/heap to see what
// the caches hold, /debug/pprof/profile for CPU. They are off by default.
// Profiles show object names and values held in memory, and a CPU profile
// costs CPU while it runs, so they belong only on a metrics address that is
// private (docs/benchmarks.md).
func pprofHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		// Index also serves every named profile: /debug/pprof/heap, goroutine, allocs...
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}
