package policy

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/topdown"
)

// evalClock is the cancellation OPA polls.
var _ topdown.Cancel = (*evalClock)(nil)

// Evaluation timeout.
//
// A wall-clock timer counts every moment an evaluation is not running: a
// goroutine waiting for a CPU on a starved machine, the kernel running
// another tenant, a stop-the-world pause. On a busy machine a 40 µs
// evaluation then "exceeds" 50 ms now and then, and an allowed call is
// denied. The timeout is meant to stop a policy that runs long, so the
// engine measures what the evaluation itself uses: the CPU time of the
// thread it runs on, which it keeps for the evaluation's duration
// (runtime.LockOSThread), so that the thread's clock is the evaluation's.
//
// The wall-clock timer still fires at the budget, but only marks the budget
// as possibly spent; the evaluation, at its next step (OPA polls its cancel
// at every expression), reads its CPU time and stops if it used the budget,
// or else looks again when the rest could be used. Waiting is not free for
// ever: once the evaluation has been under way for waitCeiling it stops
// whatever it used, so a deadlocked or endlessly starved evaluation is still
// denied.
//
// A query that may call a builtin that waits on the network (http.send) is
// timed on the wall clock, as the network wait is the evaluation's own; so
// is every query where the thread's CPU clock cannot be read (not Linux).

// waitCeiling is how long an evaluation may be under way, waiting included,
// in multiples of its budget and at least minWaitCeiling.
const (
	waitCeilingFactor = 20
	minWaitCeiling    = time.Second
)

const (
	clockRunning   int32 = iota
	clockCheck           // the budget may be spent: the evaluation checks at its next step
	clockExpired         // the budget is spent: the evaluation stops
	clockCancelled       // the caller went away
)

// evalClock is the topdown.Cancel of one evaluation. Start it, and stop it,
// on the goroutine that evaluates.
type evalClock struct {
	budget, ceiling time.Duration
	start           time.Time
	// onCPU: the budget is CPU time of this thread, which cpu0 is at start.
	onCPU bool
	cpu0  time.Duration
	state atomic.Int32
	timer *time.Timer
	// why the evaluation was stopped, when it was.
	why string
}

// startClock starts timing an evaluation; wall times it on the wall clock.
func startClock(budget time.Duration, wall bool) *evalClock {
	c := &evalClock{budget: budget, ceiling: max(waitCeilingFactor*budget, minWaitCeiling), start: time.Now()}
	if !wall {
		runtime.LockOSThread()
		if c.cpu0, c.onCPU = threadCPUTime(); !c.onCPU {
			runtime.UnlockOSThread()
		}
	}
	c.timer = time.AfterFunc(budget, c.fire)
	return c
}

// fire runs when the budget has passed on the wall clock.
func (c *evalClock) fire() {
	if c.onCPU {
		c.state.CompareAndSwap(clockRunning, clockCheck)
		return
	}
	c.state.CompareAndSwap(clockRunning, clockExpired)
}

// Cancel stops the evaluation: the caller's context is done.
func (c *evalClock) Cancel() {
	c.state.CompareAndSwap(clockRunning, clockCancelled)
	c.state.CompareAndSwap(clockCheck, clockCancelled)
}

// Cancelled is polled by OPA at every step of the evaluation, on the
// evaluating goroutine: the common case is one atomic load.
func (c *evalClock) Cancelled() bool {
	switch c.state.Load() {
	case clockRunning:
		return false
	case clockCheck:
		return c.check()
	}
	return true
}

// check runs on the evaluating goroutine once the budget has passed on the
// wall clock, and stops the evaluation only if it used the budget itself.
func (c *evalClock) check() bool {
	for {
		cpu, ok := threadCPUTime()
		used, underway := cpu-c.cpu0, time.Since(c.start)
		switch {
		case !ok || used >= c.budget:
			c.why = fmt.Sprintf("evaluation exceeded %s", c.budget)
		case underway >= c.ceiling:
			c.why = fmt.Sprintf("evaluation exceeded %s: unfinished after %s (it used %s of CPU)", c.budget, c.ceiling.Round(time.Millisecond), used.Round(time.Microsecond))
		default:
			// The evaluation waited: look again when the rest could be used.
			if c.state.CompareAndSwap(clockCheck, clockRunning) {
				c.timer.Reset(min(c.budget-used, c.ceiling-underway))
			}
			switch c.state.Load() {
			case clockRunning:
				return false
			case clockCheck:
				// The reset timer fired already (a loaded machine): look
				// again. Stopping here, with the state not expired, once
				// reported a timed-out evaluation as "caller cancelled".
				continue
			default:
				return true // the caller went away
			}
		}
		c.state.CompareAndSwap(clockCheck, clockExpired)
		return true
	}
}

// stop ends the timing and says why the evaluation was stopped for its
// time, or "" if it was not. (A deadline that passes after the evaluation's
// last step stops nothing.)
func (c *evalClock) stop() string {
	c.timer.Stop()
	if c.onCPU {
		runtime.UnlockOSThread()
	}
	if c.state.Load() != clockExpired {
		return ""
	}
	if c.why == "" {
		return fmt.Sprintf("evaluation exceeded %s", c.budget)
	}
	return c.why
}
