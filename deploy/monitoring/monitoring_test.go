package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

const (
	dashboardFile = "mcpgw-dashboard.json"
	alertsFile    = "mcpgw-alerts.yaml"
)

// query is one PromQL expression and where it is used.
type query struct{ where, expr string }

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	// Panels of a collapsed row.
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens collapsed rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

type rule struct {
	Alert, Expr, For string
	Labels           map[string]string
	Annotations      map[string]string
}

func loadAlerts(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	// A JSON round trip turns the YAML tree into the struct (the rule
	// file's keys are its field names, lower-cased).
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Groups []struct{ Rules []rule } }
	if err := json.Unmarshal(js, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// queries returns every PromQL expression of the dashboard (panel targets
// and label_values variables) and of the alert rules.
func queries(t *testing.T) []query {
	t.Helper()
	var qs []query
	d := loadDashboard(t)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("dashboard panel %q %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			// label_values(selector, label): the selector is PromQL.
			if i := strings.LastIndex(inner, ","); i > 0 {
				qs = append(qs, query{"dashboard variable " + v.Name, inner[:i]})
			}
		}
	}
	for _, r := range loadAlerts(t) {
		qs = append(qs, query{"alert " + r.Alert, r.Expr})
	}
	return qs
}

// TestDashboardShape: what Grafana needs to import and lay out the
// dashboard, and the panels the issue asks for.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	ids := map[int]bool{}
	occupied := map[[2]int]string{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := occupied[[2]int{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				occupied[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: target %+v (empty, or refId repeated)", p.Title, tg)
			}
			refs[tg.RefID] = true
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	used := map[string]bool{}
	for _, q := range queries(t) {
		names, _ := metricNames(q.expr)
		for _, n := range names {
			used[n] = true
		}
	}
	// requests, latency, denials by reason, policy revision and bundle
	// errors, token-exchange cache, audit drops.
	for _, m := range []string{"mcpgw_requests_total", "mcpgw_request_duration_seconds_bucket", "mcpgw_policy_decisions_total",
		"mcpgw_jwt_verifications_total", "mcpgw_policy_bundle_info", "mcpgw_token_cache_requests_total", "mcpgw_audit_records_dropped_total"} {
		if !used[m] {
			t.Errorf("no dashboard panel or alert queries %s", m)
		}
	}
}

// TestAlertRules: each rule is complete, and the alerts the issue asks for
// exist (bundle rejected, no verified bundle, IdP keys stale, audit
// dropping, backend errors).
func TestAlertRules(t *testing.T) {
	rules := loadAlerts(t)
	names := map[string]bool{}
	for _, r := range rules {
		if names[r.Alert] || r.Alert == "" || r.Expr == "" {
			t.Errorf("rule %+v: empty or repeated alert name, or no expr", r)
		}
		names[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs a summary and a description", r.Alert)
		}
		if r.For != "" {
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
		}
	}
	for _, want := range []string{"MCPGWPolicyBundleRejected", "MCPGWNoVerifiedPolicyBundle", "MCPGWIdPKeysStale", "MCPGWAuditRecordsDropped", "MCPGWBackendErrors"} {
		if !names[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// emittedLater lists metrics that have no series until an event the test
// cannot cause cheaply, each with the reason and a call that emits it: the
// test checks that call really produces the name, so an entry cannot hide
// a misspelt metric.
var emittedLater = map[string]struct {
	why  string
	emit func(*telemetry.Metrics)
}{
	"mcpgw_audit_records_dropped_total": {
		"a series appears at the first lost audit record (filling the audit queue takes a flood)",
		func(m *telemetry.Metrics) { m.AuditDropped("store", "queue_full", 1) },
	},
	"mcpgw_policy_shadow_disagreements_total": {
		"needs policy.shadow and a call the shadow bundle decides differently",
		func(m *telemetry.Metrics) { m.ShadowDisagreement("notes", "tools/call") },
	},
}

// TestQueriedMetricsExist starts a real gateway (the demo's IdP, an
// authorization server for Cross App Access and two MCP backends, all on
// loopback), drives allowed, denied, unauthenticated and token-exchanging
// requests, scrapes its metrics listener, and checks that every metric the
// dashboard and the alerts query is there. Only metric names are compared:
// labels (mcpgw_requests_total gains an MCP method label) may change.
func TestQueriedMetricsExist(t *testing.T) {
	metricsURL := startGateway(t)
	scraped := scrape(t, metricsURL)
	for _, q := range queries(t) {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s queries no metric: %s", q.where, q.expr)
		}
		for _, n := range names {
			if scraped[n] {
				continue
			}
			if later, ok := emittedLater[n]; ok {
				t.Logf("%s: %s is not scraped yet: %s", q.where, n, later.why)
				continue
			}
			t.Errorf("%s queries %s, which the gateway does not export", q.where, n)
		}
	}

	// The allow-list names real metrics.
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for name, later := range emittedLater {
		later.emit(m)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == name }) {
			t.Errorf("allow-listed %s is not what its emit call produces", name)
		}
	}
}

// scrape returns every sample name the metrics listener serves; a
// histogram or summary family also yields its _bucket, _sum and _count.
func scrape(t *testing.T, base string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for name, f := range testutil.MetricFamilies(t, base) {
		names[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

// startGateway runs the gateway in front of the demo world with
// server.metrics_listen on a free loopback port, drives traffic through
// it, and returns the metrics listener's URL.
func startGateway(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := demo.StartWorld(ctx, demo.WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	closed := closedPort(t)
	path := filepath.Join(t.TempDir(), "mcpgw.yaml")
	cfg := fmt.Sprintf(`server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
identity:
  issuers:
    - issuer: %[1]q
      audiences: ["api://mcpgw"]
policy:
  bundle: ../../policies
  allow_unsigned: true
store:
  dsn: ":memory:"
backends:
  employees:
    url: %[2]q
    paths: [/employees]
    auth_method: okta-cross-app
    auth_config: %[3]s
  # Its authorization server is a closed port: every call fails to get a
  # credential, which emits the token-exchange failure metrics.
  unreachable:
    url: %[2]q
    paths: [/unreachable]
    auth_method: client-credentials
    auth_config:
      token_endpoint: http://%[4]s/token
      client_id: mcpgw
      client_secret: not-a-secret
  notes:
    url: %[5]q
    paths: [/notes]
    auth_method: none
agents:
  claude-code:
    client_id: %[6]q
    private_key: %[7]q
    scopes: [mcp:read, mcp:write]
    backend_access: [employees, notes, unreachable]
`, w.IdP.Issuer(), w.Employees.URL, jsonText(t, w.EmployeesAuthConfig()), closed, w.Notes.URL, w.AgentClientID, w.AgentKeyJWK)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.Start(ctx, c, gateway.StartOptions{Logger: log})
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = srv.Close(sctx)
	})
	if srv.MetricsURL == "" {
		t.Fatal("server.metrics_listen set, but no metrics listener")
	}

	token := func(sub string, groups ...string) string {
		tok, err := w.IdP.MintUser(sub, []string{"mcp:read", "mcp:write"}, groups, map[string]any{"cid": w.AgentClientID})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	alice, bob := token("alice", "mcp-viewers"), token("bob", "mcp-admins")
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"monitoring-test","version":"1"}}}`
	del := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_employee","arguments":{"id":"e1"}}}`
	for _, r := range []struct {
		what, path, auth, body string
		want                   int
	}{
		{"a list through Cross App Access (token exchange, cache miss)", "/employees", alice, list, http.StatusOK},
		{"the same list again (token cache hit)", "/employees", alice, list, http.StatusOK},
		{"a call the policy denies (JSON-RPC -32003)", "/employees", bob, del, http.StatusOK},
		{"a backend whose authorization server is down", "/unreachable", alice, list, http.StatusBadGateway},
		{"a backend without credentials", "/notes", alice, initialize, http.StatusOK},
		{"no token", "/notes", "", list, http.StatusUnauthorized},
		{"a token that is not a JWT", "/notes", "Bearer not-a-jwt", list, http.StatusUnauthorized},
	} {
		if got := post(t, srv.URL+r.path, r.auth, r.body); got != r.want {
			t.Errorf("%s: status %d, want %d", r.what, got, r.want)
		}
	}
	return srv.MetricsURL
}

func post(t *testing.T, url, auth, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Agent-ID", "claude-code")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}

// jsonText writes v as a YAML flow mapping (JSON is YAML).
func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
