package engine

import "golang.org/x/time/rate"

// newBucket is the overall rate limit of the queue: 50 reconciles a second
// with bursts of 300, as controller-runtime's default.
func newBucket() *rate.Limiter { return rate.NewLimiter(rate.Limit(50), 300) }
