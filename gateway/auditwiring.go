package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/telemetry"
)

// AuditBatchOptions are the batching options audit.on_overflow and
// audit.block_timeout ask for, with every loss counted in
// mcpgw_audit_records_dropped_total{sink}. Start uses them for the store
// sink; build extra sinks (stdout, an HTTP collector) with them too, so
// that every sink keeps the same promise.
func AuditBatchOptions(cfg *config.Config, log *slog.Logger, m *telemetry.Metrics, sink string) audit.BatchOptions {
	o := audit.BatchOptions{Logger: log, BlockTimeout: cfg.Audit.BlockLimit(), Overflow: audit.OverflowBlock}
	if cfg.Audit.Overflow() == config.AuditOverflowDrop {
		o.Overflow = audit.OverflowDrop
	}
	o.OnDrop = func(reason string, n int) { m.AuditDropped(sink, reason, n) }
	return o
}

// configuredAuditSinks are the sinks audit.stdout and audit.http ask for,
// besides the store; each batches, blocks or drops, and counts its losses
// under its own name. (Start keeps recorded inputs out of them.)
func configuredAuditSinks(cfg *config.Config, log *slog.Logger, m *telemetry.Metrics) ([]audit.Sink, error) {
	var sinks []audit.Sink
	if cfg.Audit.Stdout {
		sinks = append(sinks, audit.NewJSONLinesSink(os.Stdout, AuditBatchOptions(cfg, log, m, "stdout")))
	}
	if h := cfg.Audit.HTTP; h.URL != "" {
		s, err := audit.NewHTTPSink(audit.HTTPOptions{URL: h.URL, Headers: h.Headers, Gzip: h.Gzip, Batch: AuditBatchOptions(cfg, log, m, "http")})
		if err != nil {
			return nil, fmt.Errorf("audit.http: %w", err)
		}
		sinks = append(sinks, s)
	}
	return sinks, nil
}

// auditDropWindow is how long /readyz reports a lost audit record.
const auditDropWindow = time.Minute

// auditReady fails for a minute after any sink lost a record: losing the
// trail is an incident an operator must see, not only a counter.
func auditReady(sink audit.Sink) func(context.Context) error {
	return func(context.Context) error {
		d, ok := sink.(audit.DropReporter)
		if !ok {
			return nil
		}
		if last := d.LastDrop(); !last.IsZero() && time.Since(last) < auditDropWindow {
			return fmt.Errorf("audit records dropped in the last minute (%d since start; see mcpgw_audit_records_dropped_total and the log)", d.Dropped())
		}
		return nil
	}
}
