package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/demo"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/testidp"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// harness is a gateway with a real identity provider and real MCP backends,
// all on free loopback ports, all stopped by the test.
type harness struct {
	t         testing.TB
	idp       *testidp.Server
	cfg       *config.Config
	gw        *Gateway
	url       string
	key       []byte
	employees *demo.Backend
	notes     *demo.Backend
	verifier  *identity.Verifier
}

type harnessOptions struct {
	authorizer policy.Authorizer
	key        []byte
	// idp and backends are shared when set (two gateways, one world).
	share  *harness
	mutate func(*config.Config)
	tracer trace.Tracer
	// wrapNotes wraps the notes backend's handler (to see what it receives).
	wrapNotes func(http.Handler) http.Handler
	// audit receives the records of refused requests.
	audit func(context.Context, audit.Record)
	// logger replaces the quiet logger (to read what the gateway logs).
	logger *slog.Logger
	// now is the gateway's clock for sessions (nil: time.Now).
	now func() time.Time
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx := worldContext(t)
	h := &harness{t: t}
	if o.share != nil {
		h.idp, h.employees, h.notes = o.share.idp, o.share.employees, o.share.notes
	} else {
		h.idp = startIdP(t)
		h.employees = startEmployees(t, demo.Options{})
		h.notes = startNotes(t, demo.Options{Wrap: o.wrapNotes})
	}
	ln := listenLoopback(t)
	cfg := baseConfig(ln, h.idp.Issuer())
	base := cfg.Server.PublicURL
	cfg.Backends["employees"] = employeesBackend(h.employees.URL)
	cfg.Backends["notes"] = notesBackend(h.notes.URL)
	cfg.Agents["claude-code"] = claudeCodeAgent([]string{"mcp:read", "mcp:write"}, "employees", "notes")
	cfg.Agents["cursor"] = cursorAgent()
	if o.mutate != nil {
		o.mutate(cfg)
	}
	h.cfg = cfg
	v, err := identity.NewVerifier(ctx, cfg.Identity, identity.WithLogger(quietLogger()))
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	t.Cleanup(v.Close)
	h.verifier = v
	h.key = o.key
	if h.key == nil {
		h.key, _ = upstream.NewSessionKey()
	}
	sealer, err := upstream.NewSealer(h.key)
	if err != nil {
		t.Fatal(err)
	}
	authz := o.authorizer
	if authz == nil {
		// The real engine over a permissive policy: transport tests then
		// do not depend on the shipped roles.
		authz = engineFor(t, "../testdata/policy/allow-all")
	}
	logger := o.logger
	if logger == nil {
		logger = quietLogger()
	}
	gw, err := New(Options{Config: cfg, Verifier: v, Authorizer: authz, Sealer: sealer, Logger: logger, Tracer: o.tracer, Audit: o.audit, Now: o.now})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	gw.MountMCP()
	go func() { _ = gw.Serve(ln) }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 3*time.Second)
		defer c()
		_ = gw.Shutdown(sctx)
	})
	h.gw, h.url = gw, base
	return h
}

func (h *harness) token(sub string, scopes, groups []string, clientID string) string {
	h.t.Helper()
	return mintToken(h.t, h.idp, sub, scopes, groups, clientID)
}

// client is an mcp-go Streamable HTTP client through the gateway.
func (h *harness) client(path, token, agent string, opts ...transport.StreamableHTTPCOption) *client.Client {
	h.t.Helper()
	headers := map[string]string{"Authorization": "Bearer " + token}
	if agent != "" {
		headers["X-Agent-ID"] = agent
	}
	opts = append([]transport.StreamableHTTPCOption{transport.WithHTTPHeaders(headers)}, opts...)
	c, err := client.NewStreamableHttpClient(h.url+path, opts...)
	if err != nil {
		h.t.Fatalf("client: %v", err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

func initialize(ctx context.Context, t testing.TB, c *client.Client) *mcpgo.InitializeResult {
	t.Helper()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	req := mcpgo.InitializeRequest{}
	req.Params.ProtocolVersion = mcpgo.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcpgo.Implementation{Name: "gateway-test", Version: "1"}
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return res
}
