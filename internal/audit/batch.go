package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// BatchOptions tunes a BatchSink. Zero values take the defaults.
type BatchOptions struct {
	// Buffer is how many records wait in memory before Write must wait for
	// room or drop (default 8192).
	Buffer int
	// MaxBatch is the most records handed to one flush (default 256).
	MaxBatch int
	// FlushInterval is the longest a record waits for a batch to fill
	// (default 250ms).
	FlushInterval time.Duration
	// RetryFor bounds the time spent retrying one failed batch before its
	// records are counted as dropped (default 30s).
	RetryFor time.Duration
	// AttemptTimeout bounds one flush attempt (default 10s).
	AttemptTimeout time.Duration
	// DropLogInterval is the least time between two "records dropped" log
	// lines (default 1m).
	DropLogInterval time.Duration
	// Logger receives drop and failure reports (default slog.Default()).
	Logger *slog.Logger
	// Overflow says what Write does when the queue is full (default
	// OverflowBlock).
	Overflow Overflow
	// BlockTimeout bounds one Write's wait for queue space (default 5s):
	// the request path must not hang on a sink that stopped. A record
	// still waiting then is dropped and counted.
	BlockTimeout time.Duration
	// OnDrop, when set, is told of every drop: how many records and why
	// (one of the Drop* reasons), for a metric. It must not block.
	OnDrop func(reason string, n int)
}

// Overflow is what a BatchSink does with a record that finds its queue full.
type Overflow int

const (
	// OverflowBlock makes every Write wait for queue space, up to
	// BlockTimeout and the caller's context: the request that produced the
	// record waits, so a caller who floods the gateway slows down instead
	// of erasing the trail.
	OverflowBlock Overflow = iota
	// OverflowDrop drops records of denials, refusals and shadow
	// disagreements when the queue is full. Records of allowed calls, and
	// configuration changes, still wait as under OverflowBlock: they
	// record what a backend was, or is about to be, asked to do.
	OverflowDrop
)

// Drop reasons, as OnDrop and the log name them.
const (
	DropQueueFull      = "queue_full"      // dropped at once (OverflowDrop)
	DropWaitTimeout    = "wait_timeout"    // waited for room until BlockTimeout or the caller's context ended
	DropInvalid        = "invalid"         // the record cannot be stored
	DropDeliveryFailed = "delivery_failed" // its batch still failed after RetryFor
	DropClosed         = "closed"          // written after (or while) Close
)

// DropReporter is a sink that counts what it loses; readiness reads it.
type DropReporter interface {
	// Dropped counts records lost since the sink was made.
	Dropped() uint64
	// LastDrop is when a record was last lost (zero: never).
	LastDrop() time.Time
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.Buffer <= 0 {
		o.Buffer = 8192
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 250 * time.Millisecond
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 30 * time.Second
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 10 * time.Second
	}
	if o.DropLogInterval <= 0 {
		o.DropLogInterval = time.Minute
	}
	if o.BlockTimeout <= 0 {
		o.BlockTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// flushFunc delivers one batch. It must not keep batch after returning. An
// error wrapped with backoff.Permanent is not retried.
type flushFunc func(ctx context.Context, batch []Record) error

// BatchSink queues records in a bounded channel and delivers them in batches
// from one goroutine, so the request path never waits on a disk or network
// while the queue has room. When it is full, Write waits for room or drops
// the record (Overflow). A record lost for any reason (queue full, a wait
// that timed out, a batch that still fails after RetryFor) is counted
// (Dropped, OnDrop), dated (LastDrop) and reported in the log at most once
// per DropLogInterval: nothing is lost silently.
type BatchSink struct {
	name  string
	flush flushFunc
	opts  BatchOptions

	// mu orders Write against Close: once closed is set under the write
	// lock, no Write can enqueue, so the worker's final drain sees every
	// accepted record. A Write waiting for room holds the read lock, so
	// Close first closes closing, which ends those waits.
	mu          sync.RWMutex
	closed      bool
	queue       chan Record
	closing     chan struct{}
	closingOnce sync.Once

	stop  chan struct{} // closed by Close: drain and exit
	done  chan struct{} // closed by the worker on exit
	abort context.CancelFunc

	written        atomic.Uint64
	dropped        atomic.Uint64
	lastDrop       atomic.Int64  // unix nanoseconds of the last drop; 0: never
	lastLog        atomic.Int64  // unix nanoseconds of the last drop report
	overflowUnseen atomic.Uint64 // dropped for a full queue, not yet logged
	timeoutUnseen  atomic.Uint64 // dropped after waiting for room, not yet logged
	invalidUnseen  atomic.Uint64 // dropped as invalid, not yet logged
	failedUnseen   atomic.Uint64 // dropped after failed flushes, not yet logged
	closedUnseen   atomic.Uint64 // written after Close, not yet logged
	lastErr        atomic.Pointer[string]
}

func newBatchSink(name string, flush flushFunc, opts BatchOptions) *BatchSink {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &BatchSink{
		name:    name,
		flush:   flush,
		opts:    opts,
		queue:   make(chan Record, opts.Buffer),
		closing: make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		abort:   cancel,
	}
	go s.run(ctx)
	return s
}

// Write queues r. r is normalized (ID, Time) first; an invalid record is
// dropped and counted. When the queue is full, Write waits for room (at
// most BlockTimeout, and not past ctx) unless the sink may drop r
// (OverflowDrop, and r records no allowed call and no change).
func (s *BatchSink) Write(ctx context.Context, r Record) {
	r = r.Normalize()
	if r.Validate() != nil {
		s.drop(DropInvalid, 1)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.drop(DropClosed, 1)
		if s.closedUnseen.Add(1) == 1 {
			s.opts.Logger.Warn("audit record written after sink closed; dropped", "sink", s.name, "record_id", r.ID)
		}
		return
	}
	select {
	case s.queue <- r:
		return
	default:
	}
	if s.opts.Overflow == OverflowDrop && !mustKeep(r) {
		s.drop(DropQueueFull, 1)
		return
	}
	wait := time.NewTimer(s.opts.BlockTimeout)
	defer wait.Stop()
	select {
	case s.queue <- r:
	case <-ctx.Done():
		s.drop(DropWaitTimeout, 1)
	case <-wait.C:
		s.drop(DropWaitTimeout, 1)
	case <-s.closing:
		s.drop(DropClosed, 1)
	}
}

// mustKeep reports the records no overflow mode drops without waiting: an
// allowed call (it reaches a backend), a configuration change, a tool
// change (a definition seen or approved) and what the OAuth server granted
// (a client registered, tokens issued or revoked). Its refusals are dropped
// at once like denials: anyone can provoke them without credentials.
func mustKeep(r Record) bool {
	return r.Kind == KindChange || r.Kind == KindToolChange || ((r.Kind == KindDecision || r.Kind == KindOAuth) && r.Allow)
}

// drop counts n lost records and reports them, at most once per
// DropLogInterval, from whichever goroutine lost them: the worker may be
// the one stuck on a sink that stopped answering.
func (s *BatchSink) drop(reason string, n int) {
	s.dropped.Add(uint64(n))
	s.lastDrop.Store(time.Now().UnixNano())
	switch reason {
	case DropQueueFull:
		s.overflowUnseen.Add(uint64(n))
	case DropWaitTimeout:
		s.timeoutUnseen.Add(uint64(n))
	case DropInvalid:
		s.invalidUnseen.Add(uint64(n))
	case DropDeliveryFailed:
		s.failedUnseen.Add(uint64(n))
	}
	if s.opts.OnDrop != nil {
		s.opts.OnDrop(reason, n)
	}
	s.maybeLogDrops()
}

// Dropped counts records that were accepted by Write but never delivered:
// queue full, a wait for room that timed out, invalid, delivery failed
// after retries, or written after Close.
func (s *BatchSink) Dropped() uint64 { return s.dropped.Load() }

// LastDrop is when a record was last dropped (zero: never).
func (s *BatchSink) LastDrop() time.Time {
	if ns := s.lastDrop.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Written counts records delivered.
func (s *BatchSink) Written() uint64 { return s.written.Load() }

// Close stops accepting records and delivers those queued. If ctx ends first,
// the delivery in progress is cancelled, the rest are counted as dropped, and
// the error says how many.
func (s *BatchSink) Close(ctx context.Context) error {
	// Writes waiting for room hold the read lock: end their waits first.
	s.closingOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	if first {
		close(s.stop)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		before := s.dropped.Load()
		s.abort()
		<-s.done
		return fmt.Errorf("audit %s sink: close: %w (%d records dropped)", s.name, ctx.Err(), s.dropped.Load()-before)
	}
}

func (s *BatchSink) run(ctx context.Context) {
	defer close(s.done)
	ticker := time.NewTicker(s.opts.FlushInterval)
	defer ticker.Stop()
	batch := make([]Record, 0, s.opts.MaxBatch)
	send := func() {
		if len(batch) > 0 {
			s.deliver(ctx, batch)
			batch = make([]Record, 0, s.opts.MaxBatch)
		}
	}
	for {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
			if len(batch) >= s.opts.MaxBatch {
				send()
			}
		case <-ticker.C:
			send()
			s.maybeLogDrops()
		case <-s.stop:
			for drained := false; !drained; {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
					if len(batch) >= s.opts.MaxBatch {
						send()
					}
				default:
					drained = true
				}
			}
			send()
			s.logDrops()
			return
		}
	}
}

// deliver flushes one batch with retries; on final failure its records are
// counted as dropped.
func (s *BatchSink) deliver(ctx context.Context, batch []Record) {
	op := func() (struct{}, error) {
		actx, cancel := context.WithTimeout(ctx, s.opts.AttemptTimeout)
		defer cancel()
		return struct{}{}, s.flush(actx, batch)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	_, err := backoff.Retry(ctx, op, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(s.opts.RetryFor))
	if err != nil {
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.drop(DropDeliveryFailed, len(batch))
		return
	}
	s.written.Add(uint64(len(batch)))
}

// maybeLogDrops reports unseen drops unless a report was made within
// DropLogInterval. The first drop after a quiet interval is reported at
// once; later ones wait for the next report (the worker's ticker, or the
// next drop after the interval).
func (s *BatchSink) maybeLogDrops() {
	if s.overflowUnseen.Load()+s.timeoutUnseen.Load()+s.invalidUnseen.Load()+s.failedUnseen.Load() == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if now-last < int64(s.opts.DropLogInterval) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	s.logDrops()
}

// logDrops reports drops since the last report, if any, and says whether it
// logged.
func (s *BatchSink) logDrops() bool {
	overflow := s.overflowUnseen.Swap(0)
	timeout := s.timeoutUnseen.Swap(0)
	invalid := s.invalidUnseen.Swap(0)
	failed := s.failedUnseen.Swap(0)
	if overflow+timeout+invalid+failed == 0 {
		return false
	}
	attrs := []any{"sink", s.name, "queue_full", overflow, "wait_timeout", timeout, "invalid", invalid,
		"delivery_failed", failed, "dropped_total", s.dropped.Load()}
	if msg := s.lastErr.Swap(nil); msg != nil {
		attrs = append(attrs, "last_error", *msg)
	}
	s.opts.Logger.Error("audit records dropped", attrs...)
	return true
}
