package operator

import (
	"fmt"
	"os"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/api/resource"
)

// SoftMemoryRatio is the part of the container's memory limit given to the
// Go runtime as its soft memory limit: the rest is for what the runtime
// does not count (the binary's pages, memory outside the heap's
// accounting), so that the GC works harder before the kernel kills the
// process for exceeding the limit.
const SoftMemoryRatio = 0.9

// SetMemoryLimit gives the Go runtime a soft memory limit
// (runtime/debug.SetMemoryLimit) of SoftMemoryRatio of containerLimit, a
// quantity such as "512Mi" or a number of bytes (the chart passes the
// container's limits.memory through the downward API). Below the limit the
// GC runs as it would without it (GOGC), so this costs no CPU until the heap
// nears the limit. An empty containerLimit, or a GOMEMLIMIT environment
// variable (set by hand, it wins), leaves the runtime's default. It returns
// the limit set, 0 for none.
func SetMemoryLimit(containerLimit string) (int64, error) {
	if containerLimit == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(containerLimit)
	if err != nil {
		return 0, fmt.Errorf("--memory-limit %q: %w", containerLimit, err)
	}
	if q.Sign() <= 0 {
		return 0, fmt.Errorf("--memory-limit %q: must be positive", containerLimit)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit := int64(float64(q.Value()) * SoftMemoryRatio)
	debug.SetMemoryLimit(limit)
	return limit, nil
}
