package audit

import (
	"context"
	"errors"
	"time"
)

// Sink receives audit records. Write never fails the caller and never waits
// on I/O itself; a sink that cannot keep up either makes Write wait for
// room, bounded (BatchOptions.Overflow), or counts what it loses and says
// so in its log (DropReporter). Close flushes what is buffered, waiting at
// most until ctx ends.
type Sink interface {
	Write(ctx context.Context, r Record)
	Close(ctx context.Context) error
}

// Multi fans each record out to every sink. It normalizes the record first, so
// every sink sees the same ID and Time.
func Multi(sinks ...Sink) Sink { return multi(sinks) }

type multi []Sink

func (m multi) Write(ctx context.Context, r Record) {
	r = r.Normalize()
	for _, s := range m {
		s.Write(ctx, r)
	}
}

// Dropped sums what the sinks that count their losses lost.
func (m multi) Dropped() uint64 {
	var n uint64
	for _, s := range m {
		if d, ok := s.(DropReporter); ok {
			n += d.Dropped()
		}
	}
	return n
}

// LastDrop is the latest loss of any sink that counts its losses.
func (m multi) LastDrop() time.Time {
	var last time.Time
	for _, s := range m {
		if d, ok := s.(DropReporter); ok {
			if t := d.LastDrop(); t.After(last) {
				last = t
			}
		}
	}
	return last
}

// Close closes every sink, sharing ctx's deadline, and joins their errors.
func (m multi) Close(ctx context.Context) error {
	errs := make([]error, len(m))
	done := make(chan struct{}, len(m))
	for i, s := range m {
		go func() {
			errs[i] = s.Close(ctx)
			done <- struct{}{}
		}()
	}
	for range m {
		<-done
	}
	return errors.Join(errs...)
}
