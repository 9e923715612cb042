package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/testidp"
)

// demoConfig is an ordinary config file, loaded the way `serve` loads one,
// so MCPGW_* overrides work in the demo too.
var demoConfig = template.Must(template.New("demo").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(`# written by mcpgw demo
server:
  listen: {{q .Listen}}
  public_url: {{q .PublicURL}}
  federated_path: /mcp
identity:
  issuers:
    - issuer: {{q .W.IdP.Issuer}}
      audiences: ["api://mcpgw"]
policy:
  bundle: {{q .Policies}}
  allow_unsigned: true
store:
  dsn: ":memory:"
log:
  level: info
  format: text
backends:
  employees:
    url: {{q .W.Employees.URL}}
    paths: [/employees]
    description: HR directory; accepts only tokens from its own authorization server
    auth_method: okta-cross-app
    auth_config:
      target_authorization_server: {{q .W.ResourceAS.Issuer}}
      target_audience: {{q .W.HRResource}}
      target_client_id: {{q .W.HRClientID}}
      target_client_secret: {{q .W.HRClientSecret}}
      idp_token_endpoint: {{q .W.IdP.TokenEndpoint}}
      scopes: [hr:read]
  notes:
    url: {{q .W.Notes.URL}}
    paths: [/notes]
    description: notes and files (sessions, progress)
    auth_method: none
    tool_integrity: trust_on_first_use
agents:
  claude-code:
    agent_id: claude-code
    client_id: {{q .W.AgentClientID}}
    private_key: {{q .W.AgentKeyJWK}}
    scopes: [mcp:read, mcp:write]
    backend_access: [employees, notes]
  cursor:
    agent_id: cursor
    client_id: demo-cursor
    scopes: [mcp:read]
    backend_access: [notes]
# The gateway is also the authorization server MCP clients log in through:
# the demo IdP's login form (alice / alice), then the gateway's consent page.
oauth:
  enabled: true
  upstream:
    issuer: {{q .W.IdP.Issuer}}
    client_id: {{q .FacadeClientID}}
    private_key_file: {{q .FacadeKeyFile}}
    scopes: [openid, profile, email]
  registration:
    default_agent: claude-code
  cors_origins: ["http://localhost:6274", "http://127.0.0.1:6274"]
`))

// demoFacadeClient is the gateway's own client at the demo IdP.
const demoFacadeClientID = "mcpgw-demo-gateway"

type demoUser struct {
	name, env string
	groups    []string
	scopes    []string
	note      string
}

var demoUsers = []demoUser{
	{"alice", "ALICE", []string{"mcp-viewers"}, []string{"mcp:read"}, "viewer: sees only read tools"},
	{"bob", "BOB", []string{"mcp-admins"}, []string{"mcp:read", "mcp:write"}, "admin: may update, not delete"},
	{"carol", "CAROL", []string{"mcp-super-admins"}, []string{"mcp:read", "mcp:write"}, "super-admin: everything"},
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8000", "gateway listen address")
	policies := fs.String("policies", "policies", "policy directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := demoMain(ctx, *listen, *policies, stdout, stderr, nil); err != nil {
		fmt.Fprintf(stderr, "mcpgw demo: %v\n", err)
		return 1
	}
	return 0
}

// demoMain runs the demo until ctx ends. ready, when set, receives the
// gateway URL, the minted tokens and the demo's servers once everything
// serves (tests use it).
func demoMain(ctx context.Context, listen, policies string, stdout, stderr io.Writer, ready func(url string, tokens map[string]string, w *demo.World)) error {
	if _, err := os.Stat(policies); err != nil {
		return fmt.Errorf("policy directory %s: %w (run from the repository root or pass --policies)", policies, err)
	}
	w, err := demo.StartWorld(ctx, demo.WorldOptions{TokenTTL: 8 * time.Hour})
	if err != nil {
		return err
	}
	defer w.Close()

	// Listen first so that ":0" works and the printed URLs are the real ones.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	listen = ln.Addr().String()
	dir, err := os.MkdirTemp("", "mcpgw-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	keyFile, err := registerDemoFacade(w, "http://"+listen, dir)
	if err != nil {
		ln.Close()
		return err
	}
	path := filepath.Join(dir, "config.yaml")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = demoConfig.Execute(f, map[string]any{"Listen": listen, "PublicURL": "http://" + listen, "Policies": policies, "W": w,
		"FacadeClientID": demoFacadeClientID, "FacadeKeyFile": keyFile})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo config: %w", err)
	}
	log := telemetry.NewLogger(cfg.Log, stderr)
	srv, err := gateway.Start(ctx, cfg, gateway.StartOptions{Logger: log, Listener: ln, Version: version()})
	if err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, u := range demoUsers {
		client := w.AgentClientID
		tok, err := w.IdP.MintUser(u.name, u.scopes, u.groups, map[string]any{"cid": client, "email": u.name + "@example.com"})
		if err != nil {
			_ = srv.Close(context.Background())
			return fmt.Errorf("mint demo token: %w", err)
		}
		tokens[u.env] = tok
	}
	// The notes backend is pinned on first use: list it once now, so that
	// what the demo later changes is held whichever command runs first.
	if err := listNotesTools(ctx, cfg.Server.PublicURL, tokens["CAROL"]); err != nil {
		_ = srv.Close(context.Background())
		return fmt.Errorf("pin the notes backend's tools: %w", err)
	}
	printDemo(stdout, cfg.Server.PublicURL, w, tokens)
	if ready != nil {
		ready(cfg.Server.PublicURL, tokens, w)
	}
	if code := serveUntilDone(ctx, srv, 5*time.Second, log); code != 0 {
		return fmt.Errorf("gateway stopped with an error")
	}
	return nil
}

// The Inspector printed by the demo is pinned like the interop peers: every
// release since 0.17 needs Node 22 (2.x needs 22.19), and on an older Node npx
// falls back to an old release that refuses URL servers. npm's node package
// puts the pinned Node first on PATH for the command it runs, so the line works
// on the Node 20 that is enough for everything else.
const (
	inspectorVersion = "2.12.0"
	inspectorNode    = "22.23.3"
)

func printDemo(out io.Writer, gw string, w *demo.World, tokens map[string]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmcpgw demo is running. Ctrl-C stops everything.\n\n")
	fmt.Fprintf(&b, "  gateway    %s\n  identity   %s (demo IdP, real keys)\n", gw, w.IdP.Issuer())
	fmt.Fprintf(&b, "  backends   %s/employees -> %s\n", gw, w.Employees.URL)
	fmt.Fprintf(&b, "               okta-cross-app: user token -> ID-JAG at the IdP -> access token at %s (HR's own AS)\n", w.ResourceAS.Issuer())
	fmt.Fprintf(&b, "             %s/notes     -> %s (no credential)\n", gw, w.Notes.URL)
	fmt.Fprintf(&b, "             %s/mcp       -> both, one session (names prefixed employees__, notes__)\n", gw)
	fmt.Fprintf(&b, "  agents     claude-code (mcp:read mcp:write; employees, notes), cursor (mcp:read; notes)\n\n")
	fmt.Fprintf(&b, "Tokens (valid 8h; paste these into your shell):\n\n")
	for _, u := range demoUsers {
		fmt.Fprintf(&b, "  # %s, groups %s, scopes %s: %s\n", u.name, strings.Join(u.groups, ","), strings.Join(u.scopes, " "), u.note)
		fmt.Fprintf(&b, "  export %s=%s\n\n", u.env, tokens[u.env])
	}
	fmt.Fprintf(&b, "Log in from any MCP client (Claude Code, Cursor, VS Code, the MCP Inspector): add\n\n")
	fmt.Fprintf(&b, "  %s/notes\n\n", gw)
	fmt.Fprintf(&b, "  a browser opens the demo IdP's login (alice / alice), then the gateway's consent page;\n")
	fmt.Fprintf(&b, "  the client registers itself and becomes agent claude-code.\n\n")
	fmt.Fprintf(&b, "Try:\n\n")
	fmt.Fprintf(&b, "  # alice lists employees tools: only the read tools are visible\n")
	fmt.Fprintf(&b, "  curl -s %s/employees -H \"Authorization: Bearer $ALICE\" -H 'X-Agent-ID: claude-code' \\\n", gw)
	fmt.Fprintf(&b, "    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n")
	fmt.Fprintf(&b, "    -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}'\n\n")
	fmt.Fprintf(&b, "  # bob tries to delete an employee: denied by policy (-32003, with a decision id)\n")
	fmt.Fprintf(&b, "  curl -s %s/employees -H \"Authorization: Bearer $BOB\" -H 'X-Agent-ID: claude-code' \\\n", gw)
	fmt.Fprintf(&b, "    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n")
	fmt.Fprintf(&b, "    -d '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_employee\",\"arguments\":{\"id\":\"e1\"}}}'\n\n")
	fmt.Fprintf(&b, "  # the MCP Inspector's CLI, through the gateway (it needs Node 22; npx fetches it with the inspector)\n")
	fmt.Fprintf(&b, "  npx --yes --loglevel=error -p node@%s -p @modelcontextprotocol/inspector@%s -- \\\n", inspectorNode, inspectorVersion)
	fmt.Fprintf(&b, "    mcp-inspector --cli %s/notes --transport http --method tools/list \\\n", gw)
	fmt.Fprintf(&b, "    --header \"Authorization: Bearer $CAROL\" --header 'X-Agent-ID: claude-code'\n\n")
	fmt.Fprintf(&b, "  # one endpoint for every backend the agent reaches (server.federated_path): employees__* and notes__*\n")
	fmt.Fprintf(&b, "  npx --yes --loglevel=error -p node@%s -p @modelcontextprotocol/inspector@%s -- \\\n", inspectorNode, inspectorVersion)
	fmt.Fprintf(&b, "    mcp-inspector --cli %s/mcp --transport http --method tools/list \\\n", gw)
	fmt.Fprintf(&b, "    --header \"Authorization: Bearer $ALICE\" --header 'X-Agent-ID: claude-code'\n\n")
	printIntegrity(&b, gw, w)
	fmt.Fprintf(&b, "  # the gateway's authorization server, as MCP clients discover it\n")
	fmt.Fprintf(&b, "  curl -s %s/.well-known/oauth-authorization-server\n\n", gw)
	fmt.Fprintf(&b, "  # no token: 401 with the RFC 9728 metadata URL\n")
	fmt.Fprintf(&b, "  curl -si %s/notes -X POST -d '{}' | grep -i www-authenticate\n\n", gw)
	_, _ = io.WriteString(out, b.String())
}

// listNotesTools lists the notes backend's tools through the gateway as an
// MCP client does.
func listNotesTools(ctx context.Context, gw, token string) error {
	return listTools(ctx, gw+"/notes", token)
}

// listTools lists a backend's tools through the gateway as agent
// claude-code (a token of the gateway's own names its agent itself).
func listTools(ctx context.Context, endpoint, token string) error {
	c, err := client.NewStreamableHttpClient(endpoint, transport.WithHTTPHeaders(map[string]string{
		"Authorization": "Bearer " + token, "X-Agent-ID": "claude-code",
	}))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	init := mcpgo.InitializeRequest{}
	init.Params.ProtocolVersion = mcpgo.LATEST_LEGACY_PROTOCOL_VERSION
	init.Params.ClientInfo = mcpgo.Implementation{Name: "mcpgw-demo", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		return err
	}
	_, err = c.ListTools(ctx, mcpgo.ListToolsRequest{})
	return err
}

// printIntegrity prints the tool integrity walk-through: the notes backend
// changes a tool after the gateway pinned it, the change is held, reviewed
// and approved.
func printIntegrity(b *strings.Builder, gw string, w *demo.World) {
	headers := `-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'`
	fmt.Fprintf(b, "  # tool integrity: the notes backend changes its echo tool after the gateway pinned it (a rug pull)\n")
	fmt.Fprintf(b, "  curl -s -X POST %s\n\n", w.Notes.ChangeURL)
	fmt.Fprintf(b, "  # carol lists notes tools in a session: the changed echo is held until approved\n")
	fmt.Fprintf(b, "  SID=$(curl -s -o /dev/null -D - %s/notes -H \"Authorization: Bearer $CAROL\" -H 'X-Agent-ID: claude-code' %s \\\n", gw, headers)
	fmt.Fprintf(b, "    -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"curl\",\"version\":\"1\"}}}' \\\n")
	fmt.Fprintf(b, "    | tr -d '\\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')\n")
	fmt.Fprintf(b, "  curl -s %s/notes -H \"Authorization: Bearer $CAROL\" -H 'X-Agent-ID: claude-code' -H \"Mcp-Session-Id: $SID\" \\\n", gw)
	fmt.Fprintf(b, "    -H 'MCP-Protocol-Version: 2025-06-18' %s -d '{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}'\n\n", headers)
	fmt.Fprintf(b, "  # carol reviews the change: the approved and the current definition of echo\n")
	fmt.Fprintf(b, "  curl -s '%s/admin/v1/tool-integrity/notes/diff?kind=tool&name=echo' -H \"Authorization: Bearer $CAROL\"\n\n", gw)
	fmt.Fprintf(b, "  # carol approves it: echo is listed and callable again (an audit record of kind tool_change says who and when)\n")
	fmt.Fprintf(b, "  curl -s -X POST %s/admin/v1/tool-integrity/notes/approve -H \"Authorization: Bearer $CAROL\" \\\n", gw)
	fmt.Fprintf(b, "    -H 'Content-Type: application/json' -d '{\"kind\":\"tool\",\"name\":\"echo\"}'\n\n")
}

// registerDemoFacade makes the gateway's own client at the demo IdP: its key
// (written to dir) signs its requests, since the IdP issues ID-JAGs only to
// private_key_jwt clients, and HR's authorization server knows it as the
// HR client, as an Okta managed connection would map it.
func registerDemoFacade(w *demo.World, publicURL, dir string) (string, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("demo facade key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		return "", fmt.Errorf("demo facade key: %w", err)
	}
	keyFile := filepath.Join(dir, "facade.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("demo facade key: %w", err)
	}
	pub, err := jwk.Import(raw.Public())
	if err != nil {
		return "", fmt.Errorf("demo facade key: %w", err)
	}
	err = w.IdP.RegisterClient(testidp.Client{ID: demoFacadeClientID, PublicKey: pub, Scopes: []string{"openid", "profile", "email"},
		RedirectURIs:      []string{publicURL + oauthserver.PathCallback},
		ResourceClientIDs: map[string]string{w.ResourceAS.Issuer(): w.HRClientID}})
	if err != nil {
		return "", fmt.Errorf("register the gateway at the demo IdP: %w", err)
	}
	return keyFile, nil
}
