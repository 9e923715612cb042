package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// withMetricsListener serves /metrics and the detailed /readyz on a free
// loopback port of their own.
func withMetricsListener(c *config.Config) { c.Server.MetricsListen = "127.0.0.1:0" }

// The assembled server counts what it relays and exposes it on /metrics,
// on the metrics listener.
func TestMetricsEndpointCountsRequests(t *testing.T) {
	w := newAdminWorld(t, withMetricsListener)
	if w.srv.MetricsURL == "" {
		t.Fatal("server.metrics_listen set, but no MetricsURL")
	}
	tok := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	w.openSession("/notes", tok, "claude-code")

	families := testutil.MetricFamilies(t, w.srv.MetricsURL)
	requests := families["mcpgw_requests_total"]
	if requests == nil {
		t.Fatal("no mcpgw_requests_total")
	}
	var notes float64
	for _, m := range requests.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "backend" && l.GetValue() == "notes" {
				notes += m.GetCounter().GetValue()
			}
		}
	}
	if notes < 2 {
		t.Fatalf("mcpgw_requests_total{backend=notes} = %v, want at least initialize and initialized", notes)
	}
	for _, name := range []string{"mcpgw_policy_decisions_total", "mcpgw_jwt_verifications_total", "mcpgw_policy_bundle_info"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// The main port is what every agent reaches: it serves no metrics, with or
// without a metrics listener, and the backend names, issuer and traffic
// they would show are not there.
func TestMetricsNeverOnTheMainPort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate []func(*config.Config)
	}{
		{"no metrics listener", nil},
		{"with a metrics listener", []func(*config.Config){withMetricsListener}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newAdminWorld(t, tc.mutate...)
			tok := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
			w.openSession("/notes", tok, "claude-code")
			for _, auth := range []string{"", "Bearer " + tok} {
				req, _ := http.NewRequest(http.MethodGet, w.url+"/metrics", nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET /metrics on the main port (auth %v) = %d, want 404", auth != "", resp.StatusCode)
				}
				for _, leak := range []string{"mcpgw_", "notes", w.idp.Issuer()} {
					if strings.Contains(string(body), leak) {
						t.Errorf("main port /metrics shows %q: %s", leak, body)
					}
				}
			}
			if (w.srv.MetricsURL != "") != (len(tc.mutate) > 0) {
				t.Errorf("MetricsURL = %q", w.srv.MetricsURL)
			}
		})
	}
}

// mcpgw_requests_total counts every request on a backend's path, refused
// ones included, by MCP method (never the HTTP verb of a POST) and outcome.
func TestRequestsTotalCountsEveryOutcome(t *testing.T) {
	w := newAdminWorld(t, withMetricsListener, func(c *config.Config) { c.RateLimit.RequestsPerMinute = 10 })
	alice := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	mallory := w.token("mallory", []string{"mcp:read"}, []string{"mcp-viewers"}, "claude-client")
	w.openSession("/notes", alice, "claude-code")
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	// Eleven messages: one over mallory's budget.
	var members []string
	for i := range 11 {
		members = append(members, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i))
	}
	batch := "[" + strings.Join(members, ",") + "]"
	for _, r := range []struct {
		req    rawRequest
		status int
	}{
		{rawRequest{path: "/notes", body: list}, http.StatusUnauthorized},
		{rawRequest{path: "/notes", token: alice, agent: "ghost", body: list}, http.StatusForbidden},
		{rawRequest{path: "/notes", token: alice, agent: "claude-code", body: `{"jsonrpc":`}, http.StatusBadRequest},
		{rawRequest{path: "/nowhere", token: alice, agent: "claude-code", body: list}, http.StatusNotFound},
		{rawRequest{path: "/notes", token: mallory, agent: "claude-code", headers: map[string]string{"Mcp-Protocol-Version": "2025-03-26"}, body: batch}, http.StatusTooManyRequests},
	} {
		resp := w.do(r.req)
		testutil.WantStatus(t, resp, r.status)
		readAll(t, resp)
	}
	text := scrapeMetrics(t, w.srv.MetricsURL)
	for _, want := range []string{
		`mcpgw_requests_total{backend="notes",method="initialize",outcome="ok"} 1`,
		`mcpgw_requests_total{backend="notes",method="notifications/initialized",outcome="ok"} 1`,
		`mcpgw_requests_total{backend="notes",method="unknown",outcome="unauthenticated"} 1`,
		`mcpgw_requests_total{backend="notes",method="unknown",outcome="forbidden"} 1`,
		`mcpgw_requests_total{backend="notes",method="unknown",outcome="invalid"} 1`,
		`mcpgw_requests_total{backend="unknown",method="unknown",outcome="not_found"} 1`,
		`mcpgw_requests_total{backend="notes",method="batch",outcome="rate_limited"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(text, "mcpgw_requests_total"))
		}
	}
	if strings.Contains(grepLines(text, "mcpgw_requests_total"), `method="POST"`) {
		t.Errorf("a POST counted by its HTTP verb:\n%s", grepLines(text, "mcpgw_requests_total"))
	}
}

// Profiles are opt-in and only on the metrics listener.
func TestPprofOnlyWhenAskedAndOnlyOnTheMetricsListener(t *testing.T) {
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	off := newAdminWorld(t, withMetricsListener)
	if code := get(off.srv.MetricsURL + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof not asked for: metrics listener answers %d, want 404", code)
	}
	on := newAdminWorld(t, withMetricsListener, func(c *config.Config) { c.Server.MetricsPprof = true })
	if code := get(on.srv.MetricsURL + "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("server.metrics_pprof: metrics listener /debug/pprof/ = %d, want 200", code)
	}
	if code := get(on.srv.MetricsURL + "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("/debug/pprof/cmdline = %d, want 200", code)
	}
	if code := get(on.url + "/debug/pprof/"); code == http.StatusOK {
		t.Errorf("the main port serves /debug/pprof/")
	}
}
