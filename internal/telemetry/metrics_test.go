package telemetry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// The shapes the rest of the gateway expects of *Metrics.
var (
	_ interface {
		Request(backend, method, outcome string, elapsed time.Duration)
		StreamOpened()
		StreamClosed()
	} = (*Metrics)(nil)
	_ func(context.Context, policy.Record) = (*Metrics)(nil).PolicyRecord
	_ func(string, time.Time)              = (*Metrics)(nil).SetBundle
)

func newTestMetrics(t *testing.T) *Metrics {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m
}

// scrape fetches m's Handler over real HTTP on loopback and parses the text
// exposition format.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// series returns the metrics of family name whose labels include want.
func series(families map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	f, ok := families[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// sample is one expected value: a counter or gauge value, or a histogram's
// observation count and sum.
type sample struct {
	name   string
	labels map[string]string
	value  float64 // counter, gauge, or histogram count
	sum    float64 // histogram only
}

func (s sample) check(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	got := series(families, s.name, s.labels)
	if len(got) != 1 {
		t.Errorf("%s%v: %d series, want 1", s.name, s.labels, len(got))
		return
	}
	m := got[0]
	switch {
	case m.Counter != nil:
		if v := m.GetCounter().GetValue(); v != s.value {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, v, s.value)
		}
	case m.Gauge != nil:
		if v := m.GetGauge().GetValue(); v != s.value {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, v, s.value)
		}
	case m.Histogram != nil:
		h := m.GetHistogram()
		if c := float64(h.GetSampleCount()); c != s.value {
			t.Errorf("%s%v count = %v, want %v", s.name, s.labels, c, s.value)
		}
		if math.Abs(h.GetSampleSum()-s.sum) > 1e-9 {
			t.Errorf("%s%v sum = %v, want %v", s.name, s.labels, h.GetSampleSum(), s.sum)
		}
	default:
		t.Errorf("%s%v: unexpected metric type", s.name, s.labels)
	}
}

func TestMetricsRecordAndScrape(t *testing.T) {
	tests := []struct {
		name   string
		record func(m *Metrics)
		want   []sample
	}{
		{
			name: "requests by backend, method and outcome",
			record: func(m *Metrics) {
				m.Request("employees", "tools/call", OutcomeOK, 20*time.Millisecond)
				m.Request("employees", "tools/call", OutcomeOK, 30*time.Millisecond)
				m.Request("employees", "tools/call", OutcomeBackendError, 50*time.Millisecond)
				m.Request("github", MethodGET, OutcomeOK, 5*time.Millisecond)
			},
			want: []sample{
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "tools/call", "outcome": "ok"}, value: 2},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "tools/call", "outcome": "backend_error"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "github", "method": "GET", "outcome": "ok"}, value: 1},
				{name: "mcpgw_request_duration_seconds", labels: map[string]string{"backend": "employees", "method": "tools/call"}, value: 3, sum: 0.1},
				{name: "mcpgw_request_duration_seconds", labels: map[string]string{"backend": "github", "method": "GET"}, value: 1, sum: 0.005},
				// The OpenTelemetry MCP conventions' histogram, error.type empty on success.
				{name: "mcp_server_operation_duration_seconds", labels: map[string]string{"mcp_method_name": "tools/call", "error_type": ""}, value: 2, sum: 0.05},
				{name: "mcp_server_operation_duration_seconds", labels: map[string]string{"mcp_method_name": "tools/call", "error_type": "backend_error"}, value: 1, sum: 0.05},
			},
		},
		{
			name: "tool definitions seen, by kind and status",
			record: func(m *Metrics) {
				m.ToolDefinitionChange("notes", "tool", "changed")
				m.ToolDefinitionChange("notes", "tool", "changed")
				m.ToolDefinitionChange("notes", "prompt", "new")
				m.ToolDefinitionChange("notes", "widget", "gone")
			},
			want: []sample{
				{name: "mcpgw_tool_definition_changes_total", labels: map[string]string{"backend": "notes", "kind": "tool", "status": "changed"}, value: 2},
				{name: "mcpgw_tool_definition_changes_total", labels: map[string]string{"backend": "notes", "kind": "prompt", "status": "new"}, value: 1},
				{name: "mcpgw_tool_definition_changes_total", labels: map[string]string{"backend": "notes", "kind": "other", "status": "other"}, value: 1},
			},
		},
		{
			// Refusals count too, before the gateway knows the backend or
			// has read the body.
			name: "refused requests",
			record: func(m *Metrics) {
				m.Request("", "", OutcomeUnauthenticated, time.Millisecond)
				m.Request("employees", "", OutcomeRateLimited, time.Millisecond)
				m.Request("employees", MethodBatch, OutcomeInvalid, time.Millisecond)
				m.Request("employees", MethodResponse, OutcomeDenied, time.Millisecond)
				m.Request("employees", MethodDELETE, OutcomeNotFound, time.Millisecond)
			},
			want: []sample{
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "unknown", "method": "unknown", "outcome": "unauthenticated"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "unknown", "outcome": "rate_limited"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "batch", "outcome": "invalid"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "response", "outcome": "denied"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "DELETE", "outcome": "not_found"}, value: 1},
			},
		},
		{
			name: "open SSE streams",
			record: func(m *Metrics) {
				m.StreamOpened()
				m.StreamOpened()
				m.StreamOpened()
				m.StreamClosed()
			},
			want: []sample{{name: "mcpgw_sse_streams_open", value: 2}},
		},
		{
			name: "policy decision records",
			record: func(m *Metrics) {
				ctx := context.Background()
				m.PolicyRecord(ctx, policy.Record{Query: "decision", Allow: true, Elapsed: 40 * time.Microsecond})
				m.PolicyRecord(ctx, policy.Record{Query: "decision", Allow: false, Elapsed: 60 * time.Microsecond})
				m.PolicyRecord(ctx, policy.Record{Query: "visible_tools", Allow: true, Elapsed: time.Millisecond})
				m.PolicyRecord(ctx, policy.Record{Query: "made-up", Allow: true, Elapsed: time.Millisecond})
			},
			want: []sample{
				{name: "mcpgw_policy_eval_duration_seconds", labels: map[string]string{"query": "decision"}, value: 2, sum: 0.0001},
				{name: "mcpgw_policy_eval_duration_seconds", labels: map[string]string{"query": "visible_tools"}, value: 1, sum: 0.001},
				{name: "mcpgw_policy_eval_duration_seconds", labels: map[string]string{"query": "other"}, value: 1, sum: 0.001},
				{name: "mcpgw_policy_decisions_total", labels: map[string]string{"query": "decision", "allow": "true"}, value: 1},
				{name: "mcpgw_policy_decisions_total", labels: map[string]string{"query": "decision", "allow": "false"}, value: 1},
				{name: "mcpgw_policy_decisions_total", labels: map[string]string{"query": "visible_tools", "allow": "true"}, value: 1},
			},
		},
		{
			name: "shadow disagreements",
			record: func(m *Metrics) {
				m.ShadowDisagreement("employees", "tools/call")
				m.ShadowDisagreement("employees", "tools/call")
				m.ShadowDisagreement("employees", "x/unknown")
			},
			want: []sample{
				{name: "mcpgw_policy_shadow_disagreements_total", labels: map[string]string{"backend": "employees", "method": "tools/call"}, value: 2},
				{name: "mcpgw_policy_shadow_disagreements_total", labels: map[string]string{"backend": "employees", "method": "other"}, value: 1},
			},
		},
		{
			name: "JWT verifications and JWKS refreshes",
			record: func(m *Metrics) {
				h := m.IdentityHooks()
				h.Verified("ok", false, 150*time.Microsecond)
				h.Verified("ok", true, 2*time.Microsecond)
				h.Verified("ok", true, 3*time.Microsecond)
				h.Verified(identity.ReasonExpired, false, 100*time.Microsecond)
				h.Verified("attacker controlled\n", false, 0)
				h.JWKSFetched("https://idp.example/oauth2/default", nil)
				h.JWKSFetched("https://idp.example/oauth2/default", errors.New("connection refused"))
			},
			want: []sample{
				{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "ok", "cached": "false"}, value: 1},
				{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "ok", "cached": "true"}, value: 2},
				{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "expired", "cached": "false"}, value: 1},
				{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "other", "cached": "false"}, value: 1},
				{name: "mcpgw_jwt_verification_duration_seconds", labels: map[string]string{"cached": "true"}, value: 2, sum: 5e-6},
				{name: "mcpgw_jwks_refreshes_total", labels: map[string]string{"issuer": "https://idp.example/oauth2/default", "result": "ok"}, value: 1},
				{name: "mcpgw_jwks_refreshes_total", labels: map[string]string{"issuer": "https://idp.example/oauth2/default", "result": "error"}, value: 1},
			},
		},
		{
			name: "token exchange and caches",
			record: func(m *Metrics) {
				// Labelled by auth method, failures by outcome too.
				m.ExchangeObserved("employees", "okta-cross-app", "ok", 80*time.Millisecond)
				m.ExchangeObserved("employees", "token-exchange", "ok", 40*time.Millisecond)
				m.ExchangeObserved("employees", "token-exchange", "invalid_grant", 10*time.Millisecond)
				m.TokenCache("employees", true)
				m.TokenCache("employees", true)
				m.TokenCache("employees", false)
				m.FilterCache(true)
				m.FilterCache(false)
				m.FilterCache(false)
			},
			want: []sample{
				{name: "mcpgw_token_exchange_duration_seconds", labels: map[string]string{"backend": "employees", "method": "okta-cross-app"}, value: 1, sum: 0.08},
				{name: "mcpgw_token_exchange_duration_seconds", labels: map[string]string{"backend": "employees", "method": "token-exchange"}, value: 2, sum: 0.05},
				{name: "mcpgw_token_exchange_failures_total", labels: map[string]string{"backend": "employees", "method": "token-exchange", "outcome": "invalid_grant"}, value: 1},
				{name: "mcpgw_token_cache_requests_total", labels: map[string]string{"backend": "employees", "result": "hit"}, value: 2},
				{name: "mcpgw_token_cache_requests_total", labels: map[string]string{"backend": "employees", "result": "miss"}, value: 1},
				{name: "mcpgw_filter_cache_requests_total", labels: map[string]string{"result": "hit"}, value: 1},
				{name: "mcpgw_filter_cache_requests_total", labels: map[string]string{"result": "miss"}, value: 2},
			},
		},
		{
			name:   "filter cache results exist before any lookup",
			record: func(*Metrics) {},
			want: []sample{
				{name: "mcpgw_filter_cache_requests_total", labels: map[string]string{"result": "hit"}, value: 0},
				{name: "mcpgw_filter_cache_requests_total", labels: map[string]string{"result": "miss"}, value: 0},
			},
		},
		{
			name: "upstream latency",
			record: func(m *Metrics) {
				m.Upstream("employees", 7*time.Millisecond)
				m.Upstream("employees", 3*time.Millisecond)
			},
			want: []sample{{name: "mcpgw_upstream_duration_seconds", labels: map[string]string{"backend": "employees"}, value: 2, sum: 0.01}},
		},
		{
			name: "empty and malformed labels",
			record: func(m *Metrics) {
				m.Request("", "", "", 0)
				m.Request("bad name", "POST", `out"come`, 0)
				m.Request("employees", "tools/call2", "stream", 0)
				m.Upstream(strings.Repeat("b", maxNameLen+1), 0)
			},
			want: []sample{
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "unknown", "method": "unknown", "outcome": "other"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "other", "method": "other", "outcome": "other"}, value: 1},
				{name: "mcpgw_requests_total", labels: map[string]string{"backend": "employees", "method": "other", "outcome": "other"}, value: 1},
				{name: "mcpgw_upstream_duration_seconds", labels: map[string]string{"backend": "other"}, value: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMetrics(t)
			tc.record(m)
			families := scrape(t, m)
			for _, s := range tc.want {
				s.check(t, families)
			}
		})
	}
}

func TestSetBundleKeepsOnlyActiveRevision(t *testing.T) {
	m := newTestMetrics(t)
	first := time.Unix(1_700_000_000, 0)
	second := first.Add(90 * time.Second)

	m.SetBundle("rev-1", first)
	families := scrape(t, m)
	sample{name: "mcpgw_policy_bundle_info", labels: map[string]string{"revision": "rev-1"}, value: 1}.check(t, families)
	sample{name: "mcpgw_policy_bundle_last_activation_timestamp_seconds", value: 1_700_000_000}.check(t, families)

	m.SetBundle("rev-2", second)
	m.SetBundle("rev-2", second) // re-activating the same revision keeps one series
	families = scrape(t, m)
	if n := len(series(families, "mcpgw_policy_bundle_info", nil)); n != 1 {
		t.Fatalf("mcpgw_policy_bundle_info has %d series, want 1", n)
	}
	if got := series(families, "mcpgw_policy_bundle_info", map[string]string{"revision": "rev-1"}); len(got) != 0 {
		t.Errorf("old revision rev-1 still exported")
	}
	sample{name: "mcpgw_policy_bundle_info", labels: map[string]string{"revision": "rev-2"}, value: 1}.check(t, families)
	sample{name: "mcpgw_policy_bundle_last_activation_timestamp_seconds", value: 1_700_000_090}.check(t, families)

	m.SetBundle("", second)
	families = scrape(t, m)
	if n := len(series(families, "mcpgw_policy_bundle_info", nil)); n != 1 {
		t.Fatalf("after an empty revision: %d series, want 1", n)
	}
	sample{name: "mcpgw_policy_bundle_info", labels: map[string]string{"revision": "none"}, value: 1}.check(t, families)
}

func TestRevisionLabel(t *testing.T) {
	long := strings.Repeat("é", maxRevision) // two bytes each
	tests := []struct{ in, want string }{
		{"", "none"},
		{"2024-06-01T10:00:00Z/abc123", "2024-06-01T10:00:00Z/abc123"},
		{"rev\xff\xfe", "rev\uFFFD"},
		{long, long[:maxRevision]},
		{"x" + long, "x" + long[:maxRevision-2]},
	}
	for _, tc := range tests {
		got := revisionLabel(tc.in)
		if got != tc.want || !utf8.ValidString(got) || len(got) > maxRevision {
			t.Errorf("revisionLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// An invalid revision reaches the scrape instead of panicking.
	m := newTestMetrics(t)
	m.SetBundle("rev\xff", time.Now())
	sample{name: "mcpgw_policy_bundle_info", labels: map[string]string{"revision": "rev\uFFFD"}, value: 1}.check(t, scrape(t, m))
}

func TestLabelCardinalityIsBounded(t *testing.T) {
	m := newTestMetrics(t)
	for i := range maxBackends * 3 {
		m.Request(fmt.Sprintf("backend-%d", i), "tools/call", "ok", time.Millisecond)
	}
	// A backend seen before the limit was reached keeps its own series.
	m.Request("backend-0", "tools/call", "ok", time.Millisecond)
	families := scrape(t, m)
	all := series(families, "mcpgw_requests_total", nil)
	if len(all) != maxBackends+1 {
		t.Fatalf("mcpgw_requests_total has %d series, want %d (the limit plus other)", len(all), maxBackends+1)
	}
	sample{name: "mcpgw_requests_total", labels: map[string]string{"backend": "backend-0", "method": "tools/call", "outcome": "ok"}, value: 2}.check(t, families)
	sample{name: "mcpgw_requests_total", labels: map[string]string{"backend": "other", "method": "tools/call", "outcome": "ok"}, value: maxBackends * 2}.check(t, families)
}

func TestMethodLabel(t *testing.T) {
	tests := map[string]string{
		"POST":                              "POST",
		"tools/call":                        "tools/call",
		"notifications/tools/list_changed":  "notifications/tools/list_changed",
		"tools/call2":                       "other",
		"TOOLS/CALL":                        "other",
		"notifications/whatever-you-invent": "other",
		"":                                  "none",
	}
	for in, want := range tests {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// The request counter's method label is an MCP method or a request shape,
// never an HTTP verb a POST carries, and never unbounded text.
func TestRequestMethodLabel(t *testing.T) {
	tests := map[string]string{
		"tools/call": "tools/call", "initialize": "initialize", "notifications/initialized": "notifications/initialized",
		MethodBatch: "batch", MethodResponse: "response", MethodGET: "GET", MethodDELETE: "DELETE",
		"": "unknown", "POST": "other", "tools/call2": "other", "x\ny": "other",
	}
	for in, want := range tests {
		if got := requestMethodLabel(in); got != want {
			t.Errorf("requestMethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if _, err := NewMetrics(nil); err == nil {
		t.Error("NewMetrics(nil): no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatalf("first NewMetrics: %v", err)
	}
	_, err := NewMetrics(reg)
	if err == nil || !strings.Contains(err.Error(), "mcpgw_requests_total") {
		t.Errorf("second NewMetrics on one registry: err = %v, want one naming mcpgw_requests_total", err)
	}
}

func TestRegistryIncludesRuntimeCollectors(t *testing.T) {
	reg := NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	families := scrape(t, m)
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "mcpgw_sse_streams_open"} {
		if _, ok := families[name]; !ok {
			t.Errorf("%s missing from the scrape", name)
		}
	}
}

// onlyRegisterer hides the Gatherer side of a registry.
type onlyRegisterer struct{ prometheus.Registerer }

func TestHandlerWithoutGatherer(t *testing.T) {
	m, err := NewMetrics(onlyRegisterer{prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	m.Request("b", "POST", "ok", time.Second)
	m.StreamOpened()
	m.StreamClosed()
	m.PolicyRecord(context.Background(), policy.Record{})
	m.SetBundle("r", time.Now())
	m.ShadowDisagreement("b", "tools/call")
	m.ToolDefinitionChange("b", "tool", "new")
	m.ExchangeObserved("b", "s", "x", time.Second)
	m.TokenCache("b", true)
	m.FilterCache(true)
	m.Upstream("b", time.Second)
	if h := m.IdentityHooks(); h.Verified != nil || h.JWKSFetched != nil {
		t.Error("nil Metrics returned non-nil hooks")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Metrics handler: status %d, want 404", rec.Code)
	}
}

// TestIdentityHooksWithVerifier drives a real verifier against testidp and
// reads its outcomes from the scrape.
func TestIdentityHooksWithVerifier(t *testing.T) {
	ctx := t.Context()
	idp, err := testidp.Start(ctx, testidp.Options{})
	if err != nil {
		t.Fatalf("start testidp: %v", err)
	}
	t.Cleanup(func() { _ = idp.Close() })

	m := newTestMetrics(t)
	hooks := m.IdentityHooks()
	// ristretto stores asynchronously, so which verification first hits the
	// cache varies: count what the verifier reported, and compare.
	var cachedHits atomic.Int64
	verified := hooks.Verified
	hooks.Verified = func(reason string, cached bool, elapsed time.Duration) {
		if cached {
			cachedHits.Add(1)
		}
		verified(reason, cached, elapsed)
	}
	v, err := identity.NewVerifier(ctx, config.Identity{
		Issuers: []config.Issuer{{Issuer: idp.Issuer(), Audiences: []string{idp.Audience()}}},
	}, identity.WithMetrics(hooks))
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)

	tok, err := idp.MintUser("alice", []string{"mcp:read"}, nil, nil)
	if err != nil {
		t.Fatalf("MintUser: %v", err)
	}
	attempts := 0
	for cachedHits.Load() == 0 {
		if attempts == 1000 {
			t.Fatal("the verifier never answered from its cache")
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		attempts++
		runtime.Gosched()
	}
	if _, err := v.Verify(ctx, "not-a-jwt"); err == nil {
		t.Fatal("Verify accepted a malformed token")
	}

	families := scrape(t, m)
	for _, s := range []sample{
		{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "ok", "cached": "false"}, value: float64(attempts - 1)},
		{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "ok", "cached": "true"}, value: 1},
		{name: "mcpgw_jwt_verifications_total", labels: map[string]string{"result": "malformed", "cached": "false"}, value: 1},
	} {
		s.check(t, families)
	}
	fetched := series(families, "mcpgw_jwks_refreshes_total", map[string]string{"issuer": idp.Issuer(), "result": "ok"})
	if len(fetched) != 1 || fetched[0].GetCounter().GetValue() < 1 {
		t.Errorf("no successful JWKS fetch recorded for %s", idp.Issuer())
	}
}

func BenchmarkRequest(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("employees", "POST", "ok", time.Millisecond)
		}
	})
}
