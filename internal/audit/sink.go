package audit

import (
	"context"
	"errors"
)

// Sink receives audit records. Write never blocks on I/O and never fails the
// caller: a sink that cannot keep up counts what it loses and says so in its
// log. Close flushes what is buffered, waiting at most until ctx ends.
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
