package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/store"
)

// withoutInputs hands records to an extra audit sink (stdout, an HTTP
// collector) without the policy inputs that audit.record_inputs keeps:
// those are for replay from the store, which returns them only when
// asked and clears them after audit.input_retention; a log line or a
// collector would keep them for ever.
type withoutInputs struct{ audit.Sink }

func (w withoutInputs) Write(ctx context.Context, r audit.Record) {
	r.Input, r.InputMasked = nil, nil
	w.Sink.Write(ctx, r)
}

// Dropped and LastDrop pass the wrapped sink's losses on (audit.Multi and
// /readyz ask for them).
func (w withoutInputs) Dropped() uint64 {
	if d, ok := w.Sink.(audit.DropReporter); ok {
		return d.Dropped()
	}
	return 0
}

func (w withoutInputs) LastDrop() time.Time {
	if d, ok := w.Sink.(audit.DropReporter); ok {
		return d.LastDrop()
	}
	return time.Time{}
}

// auditInputPurgeEvery is how often the recorded inputs older than
// audit.input_retention are cleared; an input may outlive its retention by
// this much.
var auditInputPurgeEvery = 10 * time.Minute

// purgeAuditInputs clears the policy inputs that decision records kept
// (audit.record_inputs) once audit.input_retention has passed, at start and
// then every auditInputPurgeEvery; the records stay. It runs whether or not
// inputs are recorded now, so turning record_inputs off still lets the
// inputs recorded before expire. Every replica runs it: the UPDATE is
// idempotent. retention 0 keeps inputs as long as their records: nothing
// runs. The returned function stops it.
func purgeAuditInputs(st store.Store, retention time.Duration, log *slog.Logger) func(context.Context) error {
	if retention <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	purge := func() {
		n, err := st.PurgeAuditInputs(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("clear expired recorded policy inputs", "err", err)
		case n > 0:
			log.Info("cleared expired recorded policy inputs", "records", n, "retention", retention)
		}
	}
	go func() {
		defer close(done)
		purge()
		t := time.NewTicker(auditInputPurgeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				purge()
			}
		}
	}()
	return func(context.Context) error {
		cancel()
		<-done
		return nil
	}
}
