package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory is a Limiter in this process's memory: each replica has its own
// budget, so N replicas behind a load balancer let a caller through up to
// N times the limit. Configure ratelimit.redis_url for one shared budget.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex
	counters map[string]*memCounter
	// swept is when entries were last pruned; entries whose windows have
	// both passed hold nothing and are dropped, so the map holds only the
	// callers of the last two windows.
	swept time.Time
}

type memCounter struct {
	idx       int64 // the current fixed window's index
	prev, cur int
	window    time.Duration
}

// NewMemory returns an in-memory limiter. now is the clock (nil:
// time.Now); tests pass their own so nothing depends on the wall clock.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, counters: map[string]*memCounter{}}
}

// Allow implements Limiter; it never fails for a valid limit.
func (m *Memory) Allow(_ context.Context, key string, l Limit, cost int) (Decision, error) {
	if err := l.check(); err != nil {
		return Decision{}, err
	}
	now := m.now()
	ms := now.UnixMilli()
	size := l.Window.Milliseconds()
	idx := ms / size
	k := counterKey("", l, key)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	c := m.counters[k]
	if c == nil {
		c = &memCounter{idx: idx, window: l.Window}
		m.counters[k] = c
	}
	c.advance(idx)
	w := window{prev: float64(c.prev), cur: float64(c.cur), elapsed: float64(ms - idx*size), size: float64(size)}
	if !w.fits(float64(cost), float64(l.Max)) {
		return Decision{RetryAfter: w.retryAfter(float64(cost), float64(l.Max))}, nil
	}
	c.cur += cost
	return Decision{Allowed: true}, nil
}

// advance moves the counter to window idx: the current window becomes the
// previous one, or both are empty when more than a window passed.
func (c *memCounter) advance(idx int64) {
	switch {
	case idx == c.idx:
	case idx == c.idx+1:
		c.prev, c.cur = c.cur, 0
	case idx > c.idx+1:
		c.prev, c.cur = 0, 0
	default:
		// The clock went back: keep counting in the window already held
		// rather than forgetting what was counted.
		return
	}
	c.idx = idx
}

func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.swept) < time.Minute {
		return
	}
	m.swept = now
	ms := now.UnixMilli()
	for k, c := range m.counters {
		size := c.window.Milliseconds()
		if ms/size > c.idx+1 {
			delete(m.counters, k)
		}
	}
}

// Close implements Limiter.
func (m *Memory) Close() error { return nil }
