package gateway

import (
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The assembled server counts what it relays and exposes it on /metrics.
func TestMetricsEndpointCountsRequests(t *testing.T) {
	w := newAdminWorld(t)
	tok := w.token("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"}, "claude-client")
	w.openSession("/notes", tok, "claude-code")

	resp, err := http.Get(w.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
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
