//go:build !linux

package policy

import "time"

// threadCPUTime is not available here: evaluations are timed on the wall
// clock.
func threadCPUTime() (time.Duration, bool) { return 0, false }
