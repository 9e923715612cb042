// Package ratelimit bounds how often one caller may use the gateway: a
// sliding-window counter per key (an issuer+subject and a limit), kept in
// this process's memory (Memory, one budget per replica) or in Redis
// (Redis, one budget shared by every replica that uses the same server and
// key prefix).
//
// The window is the "sliding window counter" approximation: counts are
// kept per fixed window (aligned to multiples of the window since the Unix
// epoch), and the estimate at a moment is the current window's count plus
// the previous window's count weighted by the part of it that still lies
// within one window of now. Unlike a plain fixed window it does not let a
// caller spend two budgets across a window boundary, and unlike a log of
// timestamps it costs two counters per key.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limit is one budget: at most Max units per Window. Name is the
// configuration key it comes from, shown in refusals and logs and part of
// every counter's key, so two limits never share counters.
type Limit struct {
	Name   string
	Max    int
	Window time.Duration
}

// Decision is the outcome of one Allow.
type Decision struct {
	Allowed bool
	// RetryAfter is, for a refusal, how long until the same request would
	// fit in the budget, assuming no other use meanwhile. It is the
	// window when the request can never fit (cost above Max).
	RetryAfter time.Duration
}

// Limiter counts uses against limits. Allow charges cost units to key
// under l when they fit (est + cost <= l.Max) and refuses them otherwise;
// a refused request is not counted, so a client that keeps retrying
// gets through again once its earlier use has aged out. An error means
// the limiter could not decide (Redis unreachable): the caller chooses to
// fail open or closed.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit, cost int) (Decision, error)
	Close() error
}

// ErrUnavailable wraps every failure to reach the shared counter store.
var ErrUnavailable = errors.New("rate limiter unavailable")

// SubjectKey names one caller for counting: the issuer and subject, hashed
// so that keys have a fixed length and no character of a token's claims
// reaches Redis's key space or a log line verbatim.
func SubjectKey(issuer, subject string) string {
	// The issuer's length first: claims may hold any character, so no
	// separator alone keeps ("a", "b:c") apart from ("a:b", "c").
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s", len(issuer), issuer)
	h.Write([]byte(subject))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// counterKey is the key of one subject's counters under one limit.
func counterKey(prefix string, l Limit, key string) string {
	return prefix + l.Name + ":" + key
}

func (l Limit) check() error {
	if l.Name == "" || l.Max <= 0 || l.Window < time.Millisecond {
		return fmt.Errorf("ratelimit: invalid limit %+v", l)
	}
	return nil
}

// window is the arithmetic of one sliding-window estimate, in
// milliseconds, shared by the memory limiter and the Redis script's
// answer so both decide and advise alike.
type window struct {
	prev, cur float64 // counts of the previous and current fixed window
	elapsed   float64 // ms since the current fixed window began
	size      float64 // window length, ms
}

func (w window) estimate() float64 {
	return w.prev*(w.size-w.elapsed)/w.size + w.cur
}

func (w window) fits(cost, max float64) bool { return w.estimate()+cost <= max }

// retryAfter is the least wait after which cost fits again if nothing else
// is counted meanwhile. The previous window's weight falls linearly over
// the current window; after that, the current window's count falls the
// same way over the next one.
func (w window) retryAfter(cost, max float64) time.Duration {
	room := max - cost
	var ms float64
	switch {
	case room < 0:
		// Never fits: advise a whole window rather than "never".
		ms = w.size
	case w.cur <= room:
		// Fits in this window once enough of prev has aged out
		// (prev > 0 here, or it would fit now).
		at := w.size * (1 - (room-w.cur)/w.prev)
		ms = at - w.elapsed
	default:
		// Needs the next window, once enough of cur has aged out.
		at := w.size * (1 - room/w.cur)
		ms = (w.size - w.elapsed) + at
	}
	// Whole milliseconds, rounded up, but not past float noise (18000.000000000004
	// is 18000).
	ms = math.Ceil(ms - 1e-6)
	if ms < 1 {
		ms = 1
	}
	return time.Duration(ms) * time.Millisecond
}
