package registry

import (
	"math/rand/v2"
	"time"
)

// jitter returns a random duration in [lo, hi].
func jitter(lo, hi time.Duration) time.Duration {
	return lo + rand.N(hi-lo+1)
}
