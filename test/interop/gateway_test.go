package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/internal/testidp"
)

const (
	gatewayAudience = "api://mcpgw"
	gatewayAgentID  = "interop"
	gatewayClientID = "interop-client"
)

// gatewayTopology is what the gateway under test fronts.
type gatewayTopology struct {
	issuer         string
	policyBundle   string
	everythingURL  string // server-everything's MCP endpoint
	conformanceURL string // the Go SDK conformance server's MCP endpoint
}

// gatewayConfig renders an mcpgw config listening on addr. Strings are written
// as double-quoted scalars (strconv.Quote of plain ASCII is valid YAML).
func gatewayConfig(addr string, top gatewayTopology) string {
	q := strconv.Quote
	return fmt.Sprintf(`server: {listen: %s, public_url: %s, allowed_origins: [], federated_path: /mcp}
identity: {issuers: [{issuer: %s, audiences: [%s]}]}
policy: {bundle: %s, allow_unsigned: true}
store: {dsn: ":memory:"}
# Three conformance runs open a session per scenario, all as one caller.
ratelimit: {sessions_per_minute: 600}
backends:
  everything: {url: %s, paths: [/everything], auth_method: none}
  conformance: {url: %s, paths: [/conformance], auth_method: none, federated_prefix: ""}
agents:
  interop: {agent_id: %s, client_id: %s, scopes: [mcp:read, mcp:write], backend_access: [everything, conformance]}
`, q(addr), q("http://"+addr), q(top.issuer), q(gatewayAudience), q(top.policyBundle),
		q(top.everythingURL), q(top.conformanceURL), q(gatewayAgentID), q(gatewayClientID))
}

// startGateway writes the config, runs `mcpgw serve --config FILE` on a free
// loopback port and waits until GET /healthz answers 200. It returns the base URL.
func startGateway(t *testing.T, bin string, top gatewayTopology) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	return serveGateway(t, bin, addr, gatewayConfig(addr, top))
}

// serveGateway writes cfg, runs `mcpgw serve --config FILE` (cfg listens on
// addr) and waits until GET /healthz answers 200. It returns the base URL.
func serveGateway(t *testing.T, bin, addr, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	configPath := filepath.Join(dir, "mcpgw.yaml")
	if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("write gateway config: %v", err)
	}
	cmd := exec.Command(bin, "serve", "--config", configPath)
	cmd.Dir = dir
	cmd.Env = peerEnv(t)
	gw := startServer(t, "mcpgw", cmd)
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	if err := gw.waitReady(ctx, httpOKProbe(base+"/healthz")); err != nil {
		t.Fatal(err)
	}
	return base
}

// TestThroughGateway puts a built mcpgw (identity from testidp) in front of
// server-everything and the Go SDK conformance server and drives real clients
// through it: the TypeScript SDK client, inspector-cli and the conformance suite.
func TestThroughGateway(t *testing.T) {
	p := findPeers(t)
	gatewayBin := p.buildGo(t, "./cmd/mcpgw", "mcpgw")
	conformanceBin := p.buildGo(t, conformanceServerPkg, "everything-server")

	idp := startIdP(t)
	top := gatewayTopology{
		issuer:         idp.Issuer(),
		policyBundle:   filepath.Join(p.repoRoot(), "policies"),
		everythingURL:  p.startServerEverything(t),
		conformanceURL: startConformanceServer(t, conformanceBin),
	}
	gateway := startGateway(t, gatewayBin, top)

	token, err := idp.MintUser("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-super-admins"},
		map[string]any{"cid": gatewayClientID})
	if err != nil {
		t.Fatalf("mint token: %v", err)
	}
	headers := map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": gatewayAgentID}
	everything := gateway + "/everything"

	t.Run("ts-sdk client", func(t *testing.T) {
		const message = "hello through mcpgw"
		assertTSClientSession(t, p.runTSClient(t, everything, message, headers), message)
	})
	t.Run("ts-sdk client refused", func(t *testing.T) {
		tests := []struct {
			name       string
			headers    map[string]string
			wantStatus int
		}{
			{name: "no token", headers: map[string]string{"X-Agent-ID": gatewayAgentID}, wantStatus: 401},
			{name: "garbage token", headers: map[string]string{"Authorization": "Bearer not-a-jwt", "X-Agent-ID": gatewayAgentID}, wantStatus: 401},
			{name: "unknown agent", headers: map[string]string{"Authorization": "Bearer " + token, "X-Agent-ID": "nobody"}, wantStatus: 403},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := p.runTSClient(t, everything, "refused", tt.headers)
				if got.err == nil || exitCode(got.err) != 1 {
					t.Fatalf("client run: %v, want exit status 1; events:\n%s", got.err, describeEvents(got.events))
				}
				if want := fmt.Sprintf("[code %d]", tt.wantStatus); !strings.Contains(got.stderr, want) {
					t.Errorf("client error does not carry HTTP %d:\n%s", tt.wantStatus, got.stderr)
				}
				if len(got.events) != 0 {
					t.Errorf("refused client still got through: %s", describeEvents(got.events))
				}
			})
		}
	})
	t.Run("inspector-cli tools/list", func(t *testing.T) {
		assertInspectorToolsList(t, p.runInspector(t, everything, headers, "--method", "tools/list"))
	})
	t.Run("inspector-cli tools/call echo", func(t *testing.T) {
		const message = "hello-from-inspector-through-mcpgw"
		assertInspectorEcho(t, p.runInspector(t, everything, headers, inspectorEchoArgs(message)...), message)
	})
	t.Run("inspector-cli without a token refused", func(t *testing.T) {
		res := p.runInspector(t, everything, map[string]string{"X-Agent-ID": gatewayAgentID}, "--method", "tools/list")
		if res.err == nil {
			t.Fatalf("inspector-cli listed tools with no token:\n%s", res.stdout)
		}
		if strings.Contains(string(res.stdout), longRunningTool) {
			t.Errorf("inspector-cli printed the tool list although refused:\n%s", res.stdout)
		}
	})
	t.Run("conformance", func(t *testing.T) {
		// Both runs in this test, against the same server process, so that the
		// comparison holds whatever the server and runner versions are.
		direct := p.runConformance(t, "direct", top.conformanceURL)
		if len(direct.passing()) == 0 {
			t.Fatalf("no scenario passes directly (%s): nothing to compare", direct.Summary)
		}
		// The runner cannot send headers; the proxy adds them and changes nothing else.
		proxy := startHeaderProxy(t, gateway, headers)
		through := p.runConformance(t, "through mcpgw", proxy+"/conformance")
		assertNoScenarioLost(t, "through mcpgw", direct, through)
		// The federated endpoint, with server-everything's tools beside the
		// conformance server's (which keep their names: federated_prefix "").
		// It answers lists with JSON where the conformance server streams
		// them, so server-sse-multiple-streams' "streams are functional"
		// check is reported as information (JSON is allowed), not passed.
		federated := p.runConformance(t, "through mcpgw's federated endpoint", proxy+"/mcp")
		assertNoScenarioLost(t, "through the federated endpoint", direct, federated, "server-sse-multiple-streams")
	})
	t.Run("federated: ts-sdk client, two backends", func(t *testing.T) {
		testFederatedTSClient(t, p, gateway+"/mcp", headers)
	})
}

// assertNoScenarioLost fails when a scenario or check passing directly does
// not pass through the gateway, or a check fails there; fewerChecks names
// the scenarios that may pass with fewer checks (one reported as
// information instead).
func assertNoScenarioLost(t *testing.T, label string, direct, through conformanceReport, fewerChecks ...string) {
	t.Helper()
	var lost []string
	for _, name := range direct.passing() {
		if !slices.Contains(through.passing(), name) {
			lost = append(lost, name)
		}
	}
	if len(lost) > 0 {
		t.Errorf("scenarios passing directly but not %s: %v\n  direct:  %s\n  through: %s",
			label, lost, direct.Summary, through.Summary)
	}
	var fewer []string
	for name, d := range direct.Scenarios {
		if got := through.Scenarios[name]; got.Passed < d.Passed && !slices.Contains(fewerChecks, name) {
			fewer = append(fewer, fmt.Sprintf("%s (%d of %d)", name, got.Passed, d.Passed))
		}
	}
	slices.Sort(fewer)
	if len(fewer) > 0 || through.Failed > 0 {
		t.Errorf("%s: %s, directly %s; scenarios with fewer checks passing: %v", label, through.Summary, direct.Summary, fewer)
	}
}

// startIdP starts the test identity provider for the gateway's audience.
func startIdP(t *testing.T) *testidp.Server {
	t.Helper()
	idp, err := testidp.Start(t.Context(), testidp.Options{Audience: gatewayAudience})
	if err != nil {
		t.Fatalf("start testidp: %v", err)
	}
	t.Cleanup(func() {
		if err := idp.Close(); err != nil {
			t.Errorf("close testidp: %v", err)
		}
	})
	return idp
}
