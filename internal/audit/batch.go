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
	// Buffer is how many records wait in memory before Write starts
	// dropping (default 8192).
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// flushFunc delivers one batch. It must not keep batch after returning. An
// error wrapped with backoff.Permanent is not retried.
type flushFunc func(ctx context.Context, batch []Record) error

// BatchSink queues records in a bounded channel and delivers them in batches
// from one goroutine, so the request path never waits on a disk or network.
// When the queue is full, or a batch still fails after RetryFor, records are
// dropped, counted (Dropped) and reported in the log at most once per
// DropLogInterval: nothing is lost silently.
type BatchSink struct {
	name  string
	flush flushFunc
	opts  BatchOptions

	// mu orders Write against Close: once closed is set under the write
	// lock, no Write can enqueue, so the worker's final drain sees every
	// accepted record.
	mu     sync.RWMutex
	closed bool
	queue  chan Record

	stop  chan struct{} // closed by Close: drain and exit
	done  chan struct{} // closed by the worker on exit
	abort context.CancelFunc

	written        atomic.Uint64
	dropped        atomic.Uint64
	overflowUnseen atomic.Uint64 // dropped for a full queue, not yet logged
	invalidUnseen  atomic.Uint64 // dropped as invalid, not yet logged
	closedUnseen   atomic.Uint64 // written after Close, not yet logged
	failedUnseen   uint64        // worker-only: dropped after failed flushes
	lastErr        error         // worker-only
}

func newBatchSink(name string, flush flushFunc, opts BatchOptions) *BatchSink {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &BatchSink{
		name:  name,
		flush: flush,
		opts:  opts,
		queue: make(chan Record, opts.Buffer),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		abort: cancel,
	}
	go s.run(ctx)
	return s
}

// Write queues r without blocking. r is normalized (ID, Time) first; an
// invalid record is dropped and counted.
func (s *BatchSink) Write(_ context.Context, r Record) {
	r = r.Normalize()
	if r.Validate() != nil {
		s.dropped.Add(1)
		s.invalidUnseen.Add(1)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		if s.closedUnseen.Add(1) == 1 {
			s.opts.Logger.Warn("audit record written after sink closed; dropped", "sink", s.name, "record_id", r.ID)
		}
		return
	}
	select {
	case s.queue <- r:
	default:
		s.dropped.Add(1)
		s.overflowUnseen.Add(1)
	}
}

// Dropped counts records that were accepted by Write but never delivered:
// queue full, invalid, delivery failed after retries, or written after Close.
func (s *BatchSink) Dropped() uint64 { return s.dropped.Load() }

// Written counts records delivered.
func (s *BatchSink) Written() uint64 { return s.written.Load() }

// Close stops accepting records and delivers those queued. If ctx ends first,
// the delivery in progress is cancelled, the rest are counted as dropped, and
// the error says how many.
func (s *BatchSink) Close(ctx context.Context) error {
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
	var lastLog time.Time
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
			if time.Since(lastLog) >= s.opts.DropLogInterval && s.logDrops() {
				lastLog = time.Now()
			}
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
		s.dropped.Add(uint64(len(batch)))
		s.failedUnseen += uint64(len(batch))
		s.lastErr = err
		return
	}
	s.written.Add(uint64(len(batch)))
}

// logDrops reports drops since the last report, if any, and says whether it
// logged.
func (s *BatchSink) logDrops() bool {
	overflow := s.overflowUnseen.Swap(0)
	invalid := s.invalidUnseen.Swap(0)
	failed := s.failedUnseen
	s.failedUnseen = 0
	if overflow+invalid+failed == 0 {
		return false
	}
	attrs := []any{"sink", s.name, "queue_full", overflow, "invalid", invalid,
		"delivery_failed", failed, "dropped_total", s.dropped.Load()}
	if s.lastErr != nil {
		attrs = append(attrs, "last_error", s.lastErr.Error())
		s.lastErr = nil
	}
	s.opts.Logger.Error("audit records dropped", attrs...)
	return true
}
