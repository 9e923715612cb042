package telemetry

import "testing"

// The abuse-limit and loss metrics: audit records dropped, rate-limit
// refusals and errors, SSE streams closed for a stalled client or a lost
// backend. Label values outside the known sets become "other".
func TestLimitAndLossMetrics(t *testing.T) {
	m := newTestMetrics(t)
	// Scraped before any event: refusals per limit exist at zero, so an
	// increase() alert fires on the first refusal.
	before := scrape(t, m)
	for _, l := range []string{"requests_per_minute", "sessions_per_minute"} {
		sample{name: "mcpgw_ratelimit_refusals_total", labels: map[string]string{"limit": l}, value: 0}.check(t, before)
	}

	m.AuditDropped("store", "queue_full", 33000)
	m.AuditDropped("store", "wait_timeout", 2)
	m.AuditDropped("collector-of-a-caller's-choosing", "because", 1)
	m.RateLimited("requests_per_minute")
	m.RateLimited("requests_per_minute")
	m.RateLimited("sessions_per_minute")
	m.RateLimitError()
	m.StreamWriteTimedOut()
	m.StreamBackendLost()
	m.StreamBackendLost()

	after := scrape(t, m)
	for _, s := range []sample{
		{name: "mcpgw_audit_records_dropped_total", labels: map[string]string{"sink": "store", "reason": "queue_full"}, value: 33000},
		{name: "mcpgw_audit_records_dropped_total", labels: map[string]string{"sink": "store", "reason": "wait_timeout"}, value: 2},
		{name: "mcpgw_audit_records_dropped_total", labels: map[string]string{"sink": "other", "reason": "other"}, value: 1},
		{name: "mcpgw_ratelimit_refusals_total", labels: map[string]string{"limit": "requests_per_minute"}, value: 2},
		{name: "mcpgw_ratelimit_refusals_total", labels: map[string]string{"limit": "sessions_per_minute"}, value: 1},
		{name: "mcpgw_ratelimit_errors_total", value: 1},
		{name: "mcpgw_sse_stream_write_timeouts_total", value: 1},
		{name: "mcpgw_sse_streams_backend_lost_total", value: 2},
	} {
		s.check(t, after)
	}

	var nilMetrics *Metrics
	nilMetrics.AuditDropped("store", "queue_full", 1)
	nilMetrics.RateLimited("requests_per_minute")
	nilMetrics.RateLimitError()
	nilMetrics.StreamWriteTimedOut()
	nilMetrics.StreamBackendLost()
}
