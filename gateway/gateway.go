// Package gateway composes mcpgw: a Fiber app whose MCP route verifies the
// caller, resolves the agent and backend, asks the policy engine, swaps in the
// backend's credential and relays the exchange. Read it top to bottom in the
// order of ARCHITECTURE.md's request path.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/ratelimit"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Authenticator turns a bearer token into a Principal; identity.Verifier is one.
type Authenticator interface {
	Verify(ctx context.Context, token string) (*identity.Principal, error)
}

// Options are the parts the gateway is composed of.
type Options struct {
	Config     *config.Config
	Verifier   Authenticator
	Authorizer policy.Authorizer
	Sealer     *upstream.Sealer
	// Injectors by auth_method; upstream.BasicFactories plus the token
	// exchange ones.
	Injectors map[string]upstream.InjectorFactory
	Logger    *slog.Logger
	// ReadyChecks feed the detailed /readyz of the metrics listener (the
	// main port says only ready or not); each names what is not ready.
	ReadyChecks map[string]func(context.Context) error
	// ReadyDetails add JSON detail to /readyz (the active policy revision,
	// the last rejected bundle).
	ReadyDetails map[string]func() any
	// Observer receives request outcomes (metrics); may be nil.
	Observer Observer
	// Tracer makes the request spans; nil means no tracing.
	Tracer trace.Tracer
	// Audit receives the records of requests refused before the policy
	// could decide them (the policy engine records its own decisions).
	Audit func(context.Context, audit.Record)
	// Now is the clock sessions are aged by; nil means time.Now.
	Now func() time.Time
	// RateLimiter counts ratelimit.* budgets; nil: New makes the one the
	// config asks for (Redis or this replica's memory) and Shutdown closes it.
	RateLimiter ratelimit.Limiter
	// Pins keeps tool integrity's pins (the store). nil: no definition was
	// ever approved, so a backend with tool_integrity on has every item
	// new (held by an enforcing policy).
	Pins PinStore
	// Confirmations (the store) carries a confirm obligation's answer to
	// the replica that asked; nil: only this replica's own questions are
	// answered.
	Confirmations ConfirmationStore
}

// ConfirmationStore is where questions of the confirm obligation meet their
// answers across replicas; store.Store is one.
type ConfirmationStore interface {
	AskConfirmation(ctx context.Context, id, owner string, expires time.Time) error
	AnswerConfirmation(ctx context.Context, id, owner, answer string, now time.Time) (bool, error)
	ConfirmationAnswer(ctx context.Context, id string) (string, error)
	ForgetConfirmation(ctx context.Context, id string, now time.Time) error
}

// Observer is told about each request answered on a backend's path, refused
// ones included (requestlog.go), and about relays and streams; the
// telemetry package implements it.
type Observer interface {
	// Request: backend "" before routing; method an MCP method or one of
	// telemetry's Method* shapes, "" before the body was read; outcome one
	// of telemetry's Outcome* values.
	Request(backend, method, outcome string, elapsed time.Duration)
	Upstream(backend string, elapsed time.Duration)
	StreamOpened()
	StreamClosed()
}

// Gateway is one running mcpgw HTTP server.
type Gateway struct {
	app       *fiber.App
	opts      Options
	log       *slog.Logger
	server    config.Server
	publicURL *url.URL
	// issuers are the trusted issuers' URLs, which agents are bound to.
	issuers []string
	topo    atomic.Pointer[topology]
	client  *upstream.Client
	catalog *catalog
	fetcher *catalogFetcher
	// pins is what this replica remembers of tool integrity's pins.
	pins     pinMemory
	loopback atomic.Bool
	streams  sync.WaitGroup
	// now ages sessions; idle remembers when this replica last saw each
	// session (server.session_idle_timeout is per replica).
	now  func() time.Time
	idle *upstream.IdleTracker
	// rate applies ratelimit.* to authenticated callers (ratelimit.go).
	rate *rateLimits
	// draining is closed when Shutdown starts: GET streams, which never end
	// by themselves, end then (clients reconnect elsewhere). shutdown is
	// closed at the deadline and ends the streams of requests still running.
	draining     chan struct{}
	shutdown     chan struct{}
	drainOnce    sync.Once
	shutdownOnce sync.Once
	// oauth is the gateway's own authorization server; nil when off.
	oauth OAuthFacade
	// confirms are the confirmations this replica asked for (confirm.go).
	confirms confirmations
}

// New builds the gateway from its parts.
func New(opts Options) (*Gateway, error) {
	if opts.Config == nil || opts.Verifier == nil || opts.Authorizer == nil || opts.Sealer == nil {
		return nil, errors.New("gateway: config, verifier, authorizer and sealer are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Tracer == nil {
		opts.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if opts.Injectors == nil {
		opts.Injectors = upstream.BasicFactories()
	}
	pub, err := url.Parse(opts.Config.Server.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("server.public_url: must be an absolute URL")
	}
	g := &Gateway{
		opts:      opts,
		log:       opts.Logger,
		server:    opts.Config.Server,
		publicURL: pub,
		client:    upstream.NewClient(),
		catalog:   newCatalog(),
		fetcher:   newCatalogFetcher(),
		draining:  make(chan struct{}),
		shutdown:  make(chan struct{}),
	}
	for _, is := range opts.Config.Identity.Issuers {
		g.issuers = append(g.issuers, is.Issuer)
	}
	g.now = opts.Now
	if g.now == nil {
		g.now = time.Now
	}
	g.idle = upstream.NewIdleTracker(opts.Config.Server.SessionIdleLimit(), upstream.DefaultIdleTrackerSize)
	if g.rate, err = newRateLimits(opts.Config.RateLimit, opts.RateLimiter, g.log); err != nil {
		return nil, err
	}
	if err := g.SetTopology(opts.Config.Backends, opts.Config.Agents); err != nil {
		return nil, err
	}
	g.app = fiber.New(fiber.Config{
		AppName:               "mcpgw",
		DisableStartupMessage: true,
		BodyLimit:             int(opts.Config.Server.MaxBodyBytes),
		// fasthttp reads the whole header block into this buffer and
		// answers 431 when it does not fit (its default, 4 KiB, is a token
		// with about a hundred groups). The verifier's token limit is the
		// same number, so neither refuses what the other accepts.
		ReadBufferSize: opts.Config.Server.HeaderBytes(),
		ReadTimeout:    opts.Config.Server.ReadTimeout,
		IdleTimeout:    opts.Config.Server.IdleTimeout,
		// No WriteTimeout: it would silently cut long SSE streams.
		ErrorHandler: g.errorHandler,
	})
	g.routes()
	return g, nil
}

// SetTopology swaps the routing table atomically (config reloads, admin API).
func (g *Gateway) SetTopology(backends map[string]config.Backend, agents map[string]config.Agent) error {
	t, err := buildTopology(backends, agents, g.opts.Injectors)
	if err != nil {
		return err
	}
	if problems := g.federatedProblems(backends); len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	t.issuers = g.issuers
	// An agent_audiences issuer's tokens are accepted by the agents'
	// client_ids; the verifier must know them before the table serves.
	if v, ok := g.opts.Verifier.(interface{ SetAgentClients(map[string][]string) }); ok {
		v.SetAgentClients(t.agentClients())
	}
	g.topo.Store(t)
	return nil
}

// App exposes the Fiber app so other packages can mount routes (admin API, metrics).
func (g *Gateway) App() *fiber.App { return g.app }

func (g *Gateway) routes() {
	g.app.Use(recover.New())
	// An SSE stream leaves a write deadline on its connection (stream.go).
	g.app.Use(clearWriteDeadline)
	g.app.Use(assignRequestID)
	g.app.Use(func(c *fiber.Ctx) error {
		setSecurityHeaders(c)
		return c.Next()
	})
	g.app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	// The main port is reachable by every agent: it answers readiness with
	// one boolean and serves no metrics. Both details (backend names, the
	// issuer, the policy source, traffic) are on server.metrics_listen.
	g.app.Get("/readyz", g.readyzMinimal)
	g.app.All("/metrics", notServedHere)
	g.app.Get("/.well-known/oauth-protected-resource", g.protectedResource)
	g.app.Get("/.well-known/oauth-protected-resource/*", g.protectedResource)
}

// MountMCP registers the catch-all MCP route; call it after every other
// route is mounted.
func (g *Gateway) MountMCP() {
	if fp := g.server.FederatedPath; fp != "" {
		g.app.All(fp, g.handleFederated)
	}
	g.app.All("/*", g.handleMCP)
}

// Serve serves on ln until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok {
		g.loopback.Store(tcp.IP.IsLoopback())
	}
	return g.app.Listener(ln)
}

// Shutdown stops accepting, ends GET streams, lets running requests and
// their streams finish until ctx ends, then cuts what is left.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.drainOnce.Do(func() { close(g.draining) })
	stopped := make(chan error, 1)
	go func() { stopped <- g.app.ShutdownWithContext(ctx) }()
	streamsDone := make(chan struct{})
	go func() {
		g.streams.Wait()
		close(streamsDone)
	}()
	select {
	case <-streamsDone:
	case <-ctx.Done():
	}
	g.shutdownOnce.Do(func() { close(g.shutdown) })
	err := <-stopped
	return errors.Join(err, g.rate.close())
}

// setSecurityHeaders marks every answer as an API response no browser should
// render, frame, sniff or cache. The error handler calls it too: Fiber runs
// no middleware for requests it rejects itself (an oversized body).
func setSecurityHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; frame-ancestors 'none'")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
	c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	c.Set(fiber.HeaderCacheControl, "no-store")
}

// errorHandler turns Fiber's own errors (body too large, bad request line)
// into JSON-RPC errors a client can read.
func (g *Gateway) errorHandler(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	setSecurityHeaders(c)
	resetWriteDeadline(c)
	msg := err.Error()
	rpcCode := -32603
	switch code {
	case fiber.StatusRequestEntityTooLarge:
		// Refused before any route ran: logged and counted here.
		defer g.answeredByFiber(c)
		msg = fmt.Sprintf("request body exceeds server.max_body_bytes (%d bytes)", g.server.MaxBodyBytes)
		rpcCode = -32600
	case fiber.StatusRequestHeaderFieldsTooLarge:
		msg = fmt.Sprintf("request headers exceed server.max_header_bytes (%d bytes); a bearer token must fit within it", g.server.HeaderBytes())
		rpcCode = -32600
	case fiber.StatusInternalServerError:
		g.log.Error("request failed", "request_id", c.Locals("requestid"), "err", err)
		msg = "internal error"
	}
	return writeRPCError(c, code, nil, rpcCode, msg, nil)
}

// truncate cuts s to at most n bytes, on a rune boundary, for a message
// or log line that echoes it.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(hostport, "[]")
}

// hostAllowed is DNS rebinding protection: a browser tricked into sending
// requests to the gateway carries the attacker's Host.
func (g *Gateway) hostAllowed(hostport string) bool {
	host := hostOnly(hostport)
	if host == "" {
		return false
	}
	if strings.EqualFold(host, g.publicURL.Hostname()) {
		return true
	}
	for _, h := range g.server.AllowedHosts {
		if strings.EqualFold(host, hostOnly(h)) {
			return true
		}
	}
	return g.loopback.Load() && config.IsLoopbackHost(host)
}

// originAllowed: a browser Origin must be listed, or name a host the
// gateway itself answers to.
func (g *Gateway) originAllowed(origin string) bool {
	for _, o := range g.server.AllowedOrigins {
		if config.OriginMatches(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return g.hostAllowed(u.Host)
}
