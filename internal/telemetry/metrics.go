// Package telemetry is the gateway's operational output: Prometheus metrics
// (Metrics), OpenTelemetry traces (SetupTracing) and slog logs that redact
// secrets (NewLogger).
package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// Bounds on label values; see labelGuard.
const (
	maxBackends = 256
	maxIssuers  = 32
	maxSteps    = 32
	maxRevision = 128
	// Backend names are config keys; issuers are URLs.
	maxNameLen = 128
	maxURLLen  = 512
)

// requestBuckets (seconds) span a quick local call to a slow tool.
func requestBuckets() []float64 {
	return []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
}

// policyBuckets start at 10 µs: a prepared decision takes tens of µs and a
// visibility query over many tools up to a millisecond.
func policyBuckets() []float64 {
	return []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}
}

// exchangeBuckets cover an IdP round trip (ms to seconds).
func exchangeBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// jwtBuckets start at 1 µs: a cached principal is a map lookup, a fresh
// RS256 verification about 150 µs.
func jwtBuckets() []float64 {
	return []float64{.000001, .000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .01}
}

// Metrics is the gateway's set of Prometheus collectors. Every method is safe
// for concurrent use, and a nil *Metrics ignores every call, so code that
// runs without metrics needs no checks.
type Metrics struct {
	handler http.Handler

	backends *labelGuard
	issuers  *labelGuard
	steps    *labelGuard

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	mcpServerOp     *prometheus.HistogramVec
	streamsOpen     prometheus.Gauge

	policyEval      *prometheus.HistogramVec
	policyDecisions *prometheus.CounterVec
	shadow          *prometheus.CounterVec

	bundleMu        sync.Mutex
	bundleRevision  string
	bundleSet       bool
	bundleInfo      *prometheus.GaugeVec
	bundleActivated prometheus.Gauge
	bundleRejected  prometheus.Counter

	jwtVerifications *prometheus.CounterVec
	jwtDuration      *prometheus.HistogramVec
	jwksRefreshes    *prometheus.CounterVec

	exchangeDuration *prometheus.HistogramVec
	exchangeFailures *prometheus.CounterVec
	tokenCache       *prometheus.CounterVec
	filterCache      *prometheus.CounterVec
	upstream         *prometheus.HistogramVec

	auditDropped       *prometheus.CounterVec
	rateLimitRefusals  *prometheus.CounterVec
	rateLimitErrors    prometheus.Counter
	streamWriteTimeout prometheus.Counter
	streamBackendLost  prometheus.Counter
	toolChanges        *prometheus.CounterVec
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// for the binary to own and pass to NewMetrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	// A fresh registry and two distinct standard collectors: this cannot collide.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// NewMetrics registers the gateway's collectors with reg. Handler serves reg
// when it is also a prometheus.Gatherer, as a *prometheus.Registry is.
// Registering twice on one registry fails.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("new metrics: registerer is nil")
	}
	m := &Metrics{
		backends: newLabelGuard(maxBackends, maxNameLen),
		issuers:  newLabelGuard(maxIssuers, maxURLLen),
		steps:    newLabelGuard(maxSteps, maxNameLen),

		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_requests_total",
			Help: "Requests answered on a backend's path, refused ones included, by backend (unknown before routing), MCP method (batch, response, GET, DELETE, unknown, other) and outcome.",
		}, []string{"backend", "method", "outcome"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgw_request_duration_seconds",
			Help:    "Time from receiving a request on a backend's path to the gateway's answer (for streams: its headers).",
			Buckets: requestBuckets(),
		}, []string{"backend", "method"}),
		// The OpenTelemetry MCP conventions' server metric
		// (semantic-conventions-genai v0.1.0: mcp.server.operation.duration,
		// seconds, attributes mcp.method.name and error.type), in the names
		// OpenTelemetry's Prometheus exporter gives it, so dashboards built
		// for the conventions work on the gateway's own /metrics.
		mcpServerOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcp_server_operation_duration_seconds",
			Help:    "OpenTelemetry MCP conventions: duration of the MCP request as the gateway (the server its client talks to) observed it, by mcp.method.name and error.type (\"\" when it succeeded).",
			Buckets: requestBuckets(),
		}, []string{"mcp_method_name", "error_type"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcpgw_sse_streams_open",
			Help: "SSE streams currently relayed to clients.",
		}),

		policyEval: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgw_policy_eval_duration_seconds",
			Help:    "Time of one policy evaluation, by query (decision, visible_tools, ..., admin).",
			Buckets: policyBuckets(),
		}, []string{"query"}),
		policyDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_policy_decisions_total",
			Help: "Policy evaluations by query and result.",
		}, []string{"query", "allow"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_policy_shadow_disagreements_total",
			Help: "Calls on which the shadow policy decided otherwise than the active one.",
		}, []string{"backend", "method"}),

		bundleInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mcpgw_policy_bundle_info",
			Help: "Always 1, labelled with the revision of the active policy bundle.",
		}, []string{"revision"}),
		bundleActivated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mcpgw_policy_bundle_last_activation_timestamp_seconds",
			Help: "Unix time at which the active policy bundle was activated.",
		}),
		bundleRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgw_policy_bundle_rejections_total",
			Help: "Policy bundles not activated (download, signature, limit or compile failure); the active one kept serving. The reason is in the log and the detailed /readyz.",
		}),

		jwtVerifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_jwt_verifications_total",
			Help: "Bearer token verifications by result (ok or the failure reason) and whether the verified-claims cache answered.",
		}, []string{"result", "cached"}),
		jwtDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgw_jwt_verification_duration_seconds",
			Help:    "Time of one bearer token verification, cached or not.",
			Buckets: jwtBuckets(),
		}, []string{"cached"}),
		jwksRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_jwks_refreshes_total",
			Help: "JWKS (and discovery) fetch attempts by issuer and result.",
		}, []string{"issuer", "result"}),

		exchangeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgw_token_exchange_duration_seconds",
			Help:    "Time of one backend credential exchange, by backend and auth method.",
			Buckets: exchangeBuckets(),
		}, []string{"backend", "method"}),
		exchangeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_token_exchange_failures_total",
			Help: "Backend credential exchanges that failed, by backend, auth method and outcome (an OAuth error code, unreachable, timeout or error).",
		}, []string{"backend", "method", "outcome"}),
		tokenCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_token_cache_requests_total",
			Help: "Backend credential cache lookups by backend and result (hit or miss).",
		}, []string{"backend", "result"}),
		filterCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_filter_cache_requests_total",
			Help: "Tool/resource/prompt visibility cache lookups by result (hit or miss).",
		}, []string{"result"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgw_upstream_duration_seconds",
			Help:    "Time from sending a request to a backend to receiving its response headers.",
			Buckets: requestBuckets(),
		}, []string{"backend"}),

		auditDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_audit_records_dropped_total",
			Help: "Audit records lost, by sink and reason (queue_full, wait_timeout, invalid, delivery_failed, closed).",
		}, []string{"sink", "reason"}),
		rateLimitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_ratelimit_refusals_total",
			Help: "Requests refused with 429, by the limit they exceeded (requests_per_minute, sessions_per_minute).",
		}, []string{"limit"}),
		rateLimitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgw_ratelimit_errors_total",
			Help: "Rate limit checks that could not be made (Redis unreachable); the request was refused with 503 or, with ratelimit.fail_open, let through.",
		}),
		streamWriteTimeout: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgw_sse_stream_write_timeouts_total",
			Help: "SSE streams closed because the client accepted no bytes for server.stream_write_timeout.",
		}),
		streamBackendLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgw_sse_streams_backend_lost_total",
			Help: "SSE streams whose backend ended or failed before answering every request relayed on them (each pending request got -32010).",
		}),
		toolChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_tool_definition_changes_total",
			Help: "Tool, prompt and resource template definitions seen for the first time (once per definition across replicas sharing a store), by status new or changed.",
		}, []string{"backend", "kind", "status"}),
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.requestDuration, m.mcpServerOp, m.streamsOpen,
		m.policyEval, m.policyDecisions, m.shadow,
		m.bundleInfo, m.bundleActivated, m.bundleRejected,
		m.jwtVerifications, m.jwtDuration, m.jwksRefreshes,
		m.exchangeDuration, m.exchangeFailures, m.tokenCache, m.filterCache, m.upstream,
		m.auditDropped, m.rateLimitRefusals, m.rateLimitErrors, m.streamWriteTimeout, m.streamBackendLost, m.toolChanges,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metric %s: %w", describe(c), err)
		}
	}
	// Both results exist from the start so a hit ratio is defined at once.
	m.filterCache.WithLabelValues("hit")
	m.filterCache.WithLabelValues("miss")
	// Zero series from the start, so an alert on any increase fires on
	// the first loss instead of on the second scrape after it.
	for _, l := range []string{"requests_per_minute", "sessions_per_minute"} {
		m.rateLimitRefusals.WithLabelValues(l)
	}

	m.handler = metricsHandler(reg)
	return m, nil
}

// describe names a collector's metric for an error message. Each of the
// gateway's collectors has exactly one descriptor, so the buffer suffices.
func describe(c prometheus.Collector) string {
	ch := make(chan *prometheus.Desc, 1)
	c.Describe(ch)
	close(ch)
	if d, ok := <-ch; ok {
		return d.String()
	}
	return "(no descriptor)"
}

func metricsHandler(reg prometheus.Registerer) http.Handler {
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "metrics registry cannot be gathered", http.StatusInternalServerError)
		})
	}
	// promhttp registers its own error and request counters on reg; that is
	// done once here so Handler never registers (or panics) on a request.
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		Registry:            reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
}

// Handler serves the registry in the Prometheus exposition formats. It does
// not stream, so Fiber can mount it with adaptor.HTTPHandler. A nil
// *Metrics serves 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// Request records one request the gateway answered on a backend's path,
// whatever the outcome (gateway.Observer). backend is "" before routing
// ("unknown"); method is an MCP method name or a Method* shape ("" when the
// body was never read: "unknown"; any other value: "other"); outcome is
// one of the Outcome* values.
func (m *Metrics) Request(backend, method, outcome string, elapsed time.Duration) {
	if m == nil {
		return
	}
	b := labelUnknown
	if backend != "" {
		b = m.backends.value(backend)
	}
	meth := requestMethodLabel(method)
	m.requests.WithLabelValues(b, meth, outcomeLabel(outcome)).Inc()
	m.requestDuration.WithLabelValues(b, meth).Observe(elapsed.Seconds())
	errType := ""
	if o := outcomeLabel(outcome); o != OutcomeOK {
		errType = o
	}
	m.mcpServerOp.WithLabelValues(meth, errType).Observe(elapsed.Seconds())
}

// StreamOpened counts an SSE stream that starts relaying (gateway.Observer).
func (m *Metrics) StreamOpened() {
	if m == nil {
		return
	}
	m.streamsOpen.Inc()
}

// StreamClosed counts an SSE stream that ended (gateway.Observer).
func (m *Metrics) StreamClosed() {
	if m == nil {
		return
	}
	m.streamsOpen.Dec()
}

// PolicyRecord records one policy evaluation. Its signature is
// policy.Options.DecisionLog's.
func (m *Metrics) PolicyRecord(_ context.Context, r policy.Record) {
	if m == nil {
		return
	}
	q := queryLabel(r.Query)
	m.policyEval.WithLabelValues(q).Observe(r.Elapsed.Seconds())
	m.policyDecisions.WithLabelValues(q, boolLabel(r.Allow)).Inc()
}

// SetBundle marks revision as the active policy bundle, activated at at.
// The previous revision's series is removed, so exactly one remains.
func (m *Metrics) SetBundle(revision string, at time.Time) {
	if m == nil {
		return
	}
	rev := revisionLabel(revision)
	m.bundleMu.Lock()
	defer m.bundleMu.Unlock()
	if m.bundleSet && m.bundleRevision != rev {
		m.bundleInfo.DeleteLabelValues(m.bundleRevision)
	}
	m.bundleRevision, m.bundleSet = rev, true
	m.bundleInfo.WithLabelValues(rev).Set(1)
	m.bundleActivated.Set(float64(at.UnixNano()) / 1e9)
}

// BundleRejected counts a policy bundle that was not activated.
func (m *Metrics) BundleRejected() {
	if m == nil {
		return
	}
	m.bundleRejected.Inc()
}

// ShadowDisagreement counts a call the shadow policy decided differently.
func (m *Metrics) ShadowDisagreement(backend, method string) {
	if m == nil {
		return
	}
	m.shadow.WithLabelValues(m.backends.value(backend), methodLabel(method)).Inc()
}

// ToolDefinitionChange counts a definition a backend lists that is new or
// changed (tool integrity). kind is tool, prompt or resource_template.
func (m *Metrics) ToolDefinitionChange(backend, kind, status string) {
	if m == nil {
		return
	}
	switch kind {
	case "tool", "prompt", "resource_template":
	default:
		kind = "other"
	}
	if status != "new" && status != "changed" {
		status = "other"
	}
	m.toolChanges.WithLabelValues(m.backends.value(backend), kind, status).Inc()
}

// IdentityHooks feeds JWT verification and JWKS fetch outcomes into the
// metrics; pass it to identity.WithMetrics.
func (m *Metrics) IdentityHooks() identity.Hooks {
	if m == nil {
		return identity.Hooks{}
	}
	return identity.Hooks{
		Verified: func(reason string, cached bool, elapsed time.Duration) {
			c := boolLabel(cached)
			m.jwtVerifications.WithLabelValues(jwtResultLabel(reason), c).Inc()
			m.jwtDuration.WithLabelValues(c).Observe(elapsed.Seconds())
		},
		JWKSFetched: func(issuer string, err error) {
			m.jwksRefreshes.WithLabelValues(m.issuers.value(issuer), errLabel(err)).Inc()
		},
	}
}

// ExchangeObserved records one backend credential exchange: method is the
// backend's auth method (the exchanger reports one attempt per exchange,
// not its steps), outcome "ok" or why it failed, which a failure keeps as
// a label (it was once folded into a bare error and lost).
func (m *Metrics) ExchangeObserved(backend, method, outcome string, elapsed time.Duration) {
	if m == nil {
		return
	}
	b, a := m.backends.value(backend), m.steps.value(method)
	m.exchangeDuration.WithLabelValues(b, a).Observe(elapsed.Seconds())
	if outcome != "ok" {
		m.exchangeFailures.WithLabelValues(b, a, m.steps.value(outcome)).Inc()
	}
}

// TokenCache records one lookup in the backend credential cache.
func (m *Metrics) TokenCache(backend string, hit bool) {
	if m == nil {
		return
	}
	m.tokenCache.WithLabelValues(m.backends.value(backend), hitLabel(hit)).Inc()
}

// FilterCache records one lookup in the list-filter (visibility) cache.
func (m *Metrics) FilterCache(hit bool) {
	if m == nil {
		return
	}
	m.filterCache.WithLabelValues(hitLabel(hit)).Inc()
}

// Upstream records the time a backend took to answer with headers.
func (m *Metrics) Upstream(backend string, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(m.backends.value(backend)).Observe(elapsed.Seconds())
}

// auditSinks and auditReasons are the label values AuditDropped accepts;
// anything else is "other", so a caller cannot make unbounded series.
var (
	auditSinks   = map[string]bool{"store": true, "jsonlines": true, "http": true}
	auditReasons = map[string]bool{"queue_full": true, "wait_timeout": true, "invalid": true, "delivery_failed": true, "closed": true}
	rateLimits   = map[string]bool{"requests_per_minute": true, "sessions_per_minute": true}
)

func known(set map[string]bool, v string) string {
	if set[v] {
		return v
	}
	return "other"
}

// AuditDropped counts n audit records a sink lost; its signature fits
// audit.BatchOptions.OnDrop once the sink is named.
func (m *Metrics) AuditDropped(sink, reason string, n int) {
	if m == nil {
		return
	}
	m.auditDropped.WithLabelValues(known(auditSinks, sink), known(auditReasons, reason)).Add(float64(n))
}

// RateLimited counts a request refused for exceeding limit.
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	m.rateLimitRefusals.WithLabelValues(known(rateLimits, limit)).Inc()
}

// RateLimitError counts a rate limit check that could not be made.
func (m *Metrics) RateLimitError() {
	if m == nil {
		return
	}
	m.rateLimitErrors.Inc()
}

// StreamWriteTimedOut counts an SSE stream closed for a client that
// stopped reading.
func (m *Metrics) StreamWriteTimedOut() {
	if m == nil {
		return
	}
	m.streamWriteTimeout.Inc()
}

// StreamBackendLost counts an SSE stream whose backend went away with
// requests unanswered.
func (m *Metrics) StreamBackendLost() {
	if m == nil {
		return
	}
	m.streamBackendLost.Inc()
}
