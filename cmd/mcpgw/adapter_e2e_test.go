package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// A team moving from the Okta MCP adapter: its config/config.yaml (written
// from the adapter's documented fields: backends of every auth_method it
// knows, agents with JWK private keys, the gateway:, logging: and cache:
// sections) and its .env, in the working directory, run by `mcpgw serve`
// with no flags, as the adapter was run. A real MCP client then calls a
// tool through every backend kind, and each backend checks the credential
// it received: the Cross App Access token from the HR system's own
// authorization server, the pre-shared and static keys, the service
// account's Basic credentials.
func TestServeAdapterConfigEndToEnd(t *testing.T) {
	clearConfigEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The Okta org (IdP), the HR system's authorization server and the HR
	// backend that takes only that server's tokens.
	world, err := demo.StartWorld(ctx, demo.WorldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(world.Close)
	// copilot is an agent as the adapter documents it: an RSA JWK.
	copilotJWK, copilotPublic := rsaJWK(t)
	if err := world.IdP.RegisterClient(testidp.Client{ID: "0oa1copilot", PublicKey: copilotPublic,
		ResourceClientIDs: map[string]string{world.ResourceAS.Issuer(): world.HRClientID}}); err != nil {
		t.Fatal(err)
	}

	// The other kinds, each refusing any request without its credential.
	finance := credentialBackend(t, func(r *http.Request) bool { return r.Header.Get("X-API-Key") == "finance-key-1" })
	analytics := credentialBackend(t, func(r *http.Request) bool { return r.Header.Get("X-API-Key") == "analytics-key-2" })
	tickets := credentialBackend(t, func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "svc-mcp-gateway" && p == "ticketing-password-3"
	})

	// The shipped policies, found before leaving the package directory.
	policies, err := filepath.Abs("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	t.Chdir(t.TempDir())
	writeFile(t, "config/config.yaml", fmt.Sprintf(adapterConfig,
		world.Employees.URL, world.ResourceAS.Issuer(), world.HRResource, world.HRClientID, world.HRClientSecret,
		finance.url, analytics.url, tickets.url,
		indentJWK(copilotJWK), world.AgentClientID, indentJWK(world.AgentKeyJWK),
		port, port))
	writeFile(t, ".env", strings.Join([]string{
		"# the adapter's env.template, plus what mcpgw adds",
		"OKTA_DOMAIN=" + world.IdP.Issuer(),
		"LOG_LEVEL=INFO",
		"PROTECTED_DISCOVERY=true",
		"MCPGW_POLICY__BUNDLE=" + policies,
		"MCPGW_POLICY__ALLOW_UNSIGNED=true",
		"MCPGW_POLICY__TIMEOUT=5s",
	}, "\n")+"\n")

	var stdout, logs testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, &stdout, &logs) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHealthy(t, base, done, &logs)

	user, err := world.IdP.MintUser("alice", []string{"mcp:read", "mcp:write"}, []string{"mcp-viewers", "finance"},
		map[string]any{"cid": "0oa1copilot"})
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name, path, tool string
		args             map[string]any
		headers          map[string]string
		want             string
	}{
		{"okta-cross-app, agent in X-MCP-Agent", "/hr", "get_employee", map[string]any{"id": "e1"},
			map[string]string{"X-MCP-Agent": "wlp1copilot"}, "Ada"},
		{"pre-shared-key, agent in X-Agent-ID", "/finance", "echo", map[string]any{"message": "to finance"},
			map[string]string{"X-Agent-ID": "wlp1copilot"}, "to finance"},
		{"static-key, agent found by the token's client", "/analytics-system", "echo", map[string]any{"message": "to analytics"},
			nil, "to analytics"},
		{"service-account", "/ticketing-system", "echo", map[string]any{"message": "to tickets"},
			map[string]string{"X-MCP-Agent": "wlp1copilot"}, "to tickets"},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if got := callTool(ctx, t, base+c.path, user, c.headers, c.tool, c.args); !strings.Contains(got, c.want) {
				t.Fatalf("%s answered %q, want %q", c.tool, got, c.want)
			}
		})
	}
	for name, b := range map[string]*checkedBackend{"finance": finance, "analytics-system": analytics, "ticketing-system": tickets} {
		if b.accepted.Load() == 0 || b.refused.Load() != 0 {
			t.Errorf("%s: %d requests with the right credential, %d without", name, b.accepted.Load(), b.refused.Load())
		}
	}
	if world.ResourceAS.TokenRequests("urn:ietf:params:oauth:grant-type:jwt-bearer") == 0 {
		t.Error("the HR system's authorization server was never asked for a token")
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d\n%s", code, logs.String())
	}
	log := logs.String()
	for _, want := range []string{`"from":"./config/config.yaml"`, `"msg":"environment file read","path":".env"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	for _, secret := range []string{"finance-key-1", "analytics-key-2", "ticketing-password-3", world.HRClientSecret, "copilot-client-secret"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a secret %q", secret)
		}
	}
}

// adapterConfig is an Okta MCP adapter config.yaml; the %s and %d are the
// test's own URLs, keys and port.
const adapterConfig = `# Okta MCP Adapter Configuration
backends:
  hr-system:
    url: %s
    paths:
      - /hr
    auth_method: okta-cross-app
    auth_config:
      id_jag_mode: static
      target_authorization_server: %s
      target_audience: %s
      target_client_id: %s
      target_client_secret: %s
    description: Okta Sample HR System MCP Server
    timeout_seconds: 30
    enabled: true

  finance:
    url: %s
    paths:
      - /finance
    auth_method: pre-shared-key
    auth_config:
      key: finance-key-1
      header_name: X-API-Key
    description: Finance System MCP Server (SAP-like)
    timeout_seconds: 30
    enabled: true

  analytics-system:
    url: %s
    paths:
      - /analytics-system
    auth_method: static-key
    auth_config:
      api_key: "analytics-key-2"
    description: Analytics System MCP Server (DataDog-like)
    timeout_seconds: 30
    enabled: true

  ticketing-system:
    url: %s
    paths:
      - /ticketing-system
    auth_method: service-account
    auth_config:
      username: svc-mcp-gateway
      password: ticketing-password-3
    description: Ticketing System MCP Server (Jira-like)
    timeout_seconds: 30
    enabled: true

agents:
  copilot:
    agent_id: wlp1copilot
    # OAuth client credentials for user authentication (frontend login)
    client_id: 0oa1copilot
    client_secret: copilot-client-secret
    # Private key for JWT signing (cross-app access) - MUST be in JWK format
    private_key: '%s'
    backend_access:
      - hr-system
      - finance
      - analytics-system
      - ticketing-system
    enabled: true

  claude-code:
    agent_id: wlp1claudecode
    client_id: %s
    private_key: '%s'
    backend_access:
      - hr-system
    enabled: true

gateway:
  host: 127.0.0.1
  port: %d
  base_url: http://127.0.0.1:%d

logging:
  level: INFO

cache:
  backend_tokens:
    max_size: 50000
    ttl_seconds: 3600
`

// checkedBackend is a notes backend behind a credential check.
type checkedBackend struct {
	url               string
	accepted, refused atomic.Int64
}

func credentialBackend(t *testing.T, ok func(*http.Request) bool) *checkedBackend {
	t.Helper()
	b := &checkedBackend{}
	notes, err := demo.StartNotes(demo.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !ok(r) {
				b.refused.Add(1)
				http.Error(w, "credential missing or wrong", http.StatusUnauthorized)
				return
			}
			b.accepted.Add(1)
			next.ServeHTTP(w, r)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = notes.Close() })
	b.url = notes.URL
	return b
}

// rsaJWK is a fresh RSA private key as JWK JSON (alg RS256, a kid, as the
// adapter's examples have it) and its public half.
func rsaJWK(t *testing.T) (string, jwk.Key) {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.RS256()); err != nil {
		t.Fatal(err)
	}
	if err := jwk.AssignKeyID(key); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	public, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return string(js), public
}

// indentJWK spreads JWK JSON over lines, as the adapter's files do inside a
// single-quoted YAML scalar.
func indentJWK(js string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		panic(err)
	}
	b, _ := json.MarshalIndent(m, "      ", "  ")
	return string(b)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitHealthy waits for /healthz, or fails with the log if serve stopped.
func waitHealthy(t *testing.T, base string, done chan int, logs *testutil.SyncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before serving:\n%s", code, logs.String())
		default:
		}
		if resp, err := http.Get(base + "/healthz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("serve not healthy:\n%s", logs.String())
}

// callTool opens an MCP session with mcp-go's client and calls tool.
func callTool(ctx context.Context, t *testing.T, url, token string, headers map[string]string, tool string, args map[string]any) string {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + token}
	for k, v := range headers {
		h[k] = v
	}
	c, err := client.NewStreamableHttpClient(url, transport.WithHTTPHeaders(h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_LEGACY_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "adapter-migration-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	req := mcpgo.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("tools/call %s: %v", tool, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call %s: %+v", tool, res)
	}
	text, _ := res.Content[0].(mcpgo.TextContent)
	return text.Text
}
