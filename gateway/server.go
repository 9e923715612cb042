package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/exchange"
	"github.com/mcpgw/mcpgw/internal/identity"
	"github.com/mcpgw/mcpgw/internal/oauthserver"
	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/store"
	"github.com/mcpgw/mcpgw/internal/telemetry"
	"github.com/mcpgw/mcpgw/internal/upstream"
)

// Server is a running gateway with the parts it was assembled from.
type Server struct {
	Gateway  *Gateway
	Engine   *policy.Engine
	Verifier *identity.Verifier
	Store    store.Store
	Metrics  *telemetry.Metrics
	// OAuth is the gateway's own authorization server; nil unless
	// oauth.enabled.
	OAuth *oauthserver.Server
	// Audit receives decision and change records (the store, plus any
	// extra sinks).
	Audit audit.Sink
	// policyConfig is policy.*: POST /admin/v1/policy/replay checks a
	// candidate bundle as the gateway checks its own.
	policyConfig config.Policy
	// URL is where the gateway listens, http://host:port.
	URL string
	// MetricsURL is where /metrics and the detailed /readyz are served
	// (server.metrics_listen), http://host:port; "" when they are not.
	MetricsURL string
	ln         net.Listener
	errc       chan error
	// reloadMu guards seen, the store revision the topology reflects.
	reloadMu sync.Mutex
	seen     int64
	// closers run in reverse order on Close.
	closers []func(context.Context) error
}

// StartOptions are what Start needs besides the config.
type StartOptions struct {
	Logger *slog.Logger
	// Injectors adds credential injectors (token exchange) to the basic ones.
	Injectors map[string]upstream.InjectorFactory
	// Listener, when set, is served instead of listening on server.listen.
	Listener net.Listener
	// DecisionLog also receives every policy decision record (metrics).
	DecisionLog func(context.Context, policy.Record)
	// AuditSinks are written besides the store (stdout, HTTP collector).
	// Build batching ones with AuditBatchOptions so that audit.* applies
	// to them as to the store and their losses are counted.
	AuditSinks []audit.Sink
	// Metrics, when nil, are made on a registry of the server's own.
	Metrics *telemetry.Metrics
	// Version is reported in traces.
	Version string
	// CIMDTransport replaces the TLS settings of Client ID Metadata
	// Document fetches (tests trust their own CA); nil in production.
	CIMDTransport *http.Transport
}

// Start assembles the gateway from cfg and serves it.
func Start(ctx context.Context, cfg *config.Config, o StartOptions) (srv *Server, err error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{errc: make(chan error, 1), Metrics: o.Metrics}
	defer func() {
		if err != nil {
			_ = s.Close(context.Background())
		}
	}()
	if s.Metrics == nil {
		if s.Metrics, err = telemetry.NewMetrics(telemetry.NewRegistry()); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	tp, stopTracing, err := telemetry.SetupTracing(ctx, cfg.Telemetry, o.Version)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, stopTracing)

	// The verifier's token limit is the HTTP server's header limit, so a
	// token Fiber reads whole is never refused as too long, and the limit a
	// refusal names is the one operators set.
	if s.Verifier, err = identity.NewVerifier(ctx, cfg.Identity, identity.WithLogger(log), identity.WithMetrics(s.Metrics.IdentityHooks()),
		identity.WithMaxTokenBytes(cfg.Server.HeaderBytes())); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { s.Verifier.Close(); return nil })

	if s.Store, err = store.Open(ctx, cfg.Store.DSN); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.closers = append(s.closers, func(context.Context) error { return s.Store.Close() })
	if err = s.Store.SeedFromConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("store: seed from config: %w", err)
	}
	sinks := []audit.Sink{audit.NewStoreSink(s.Store, AuditBatchOptions(cfg, log, s.Metrics, "store"))}
	extra, err := configuredAuditSinks(cfg, log, s.Metrics)
	if err != nil {
		return nil, err
	}
	for _, sink := range append(extra, o.AuditSinks...) {
		sinks = append(sinks, withoutInputs{sink})
	}
	s.Audit = audit.Multi(sinks...)
	s.closers = append(s.closers, s.Audit.Close)
	decisionLog := func(ctx context.Context, r policy.Record) {
		s.Audit.Write(ctx, decisionRecord(r))
		s.Metrics.PolicyRecord(ctx, r)
		if o.DecisionLog != nil {
			o.DecisionLog(ctx, r)
		}
	}

	s.Engine, err = policy.New(ctx, policy.Options{
		// The gateway writes a call's decision records itself, after the
		// relay, with the request's latency and outcome (requestlog.go).
		CallerRecordsDecisions: true,
		Source:                 cfg.Policy.Bundle,
		AllowUnsigned:          cfg.Policy.AllowUnsigned,
		VerificationKey:        cfg.Policy.VerificationKey,
		KeyID:                  cfg.Policy.KeyID,
		Timeout:                cfg.Policy.Timeout,
		OPAConfig:              cfg.Policy.OPA,
		PollInterval:           cfg.Policy.PollInterval,
		DecisionCacheSize:      cfg.Policy.DecisionCacheSize,
		RecordInputs:           cfg.Audit.RecordInputs,
		BundleLimits:           policy.BundleLimits{Bytes: cfg.Policy.MaxBundleBytes, UncompressedBytes: cfg.Policy.MaxBundleUncompressedBytes, Files: cfg.Policy.MaxBundleFiles, FileBytes: cfg.Policy.MaxBundleFileBytes},
		PersistDir:             cfg.Policy.PersistDir,
		Shadow:                 cfg.Policy.Shadow,
		Logger:                 log,
		DecisionLog:            decisionLog,
		OnActivate:             s.Metrics.SetBundle,
		OnVisibleCache:         s.Metrics.FilterCache,
		OnReject:               s.Metrics.BundleRejected,
		OnShadowDisagreement: func(ctx context.Context, d policy.ShadowDisagreement) {
			s.Metrics.ShadowDisagreement(d.Backend, d.Method)
			s.Audit.Write(ctx, shadowRecord(d))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	s.closers = append(s.closers, func(ctx context.Context) error { s.Engine.Stop(ctx); return nil })
	if stop := purgeAuditInputs(s.Store, cfg.Audit.InputRetention, log); stop != nil {
		s.closers = append(s.closers, stop)
	}

	key, shared, err := upstream.LoadSessionKey(cfg.Server.SessionKey, cfg.Server.SessionKeyFile)
	if err != nil {
		return nil, err
	}
	if !shared {
		log.Warn("no server.session_key_file or MCPGW_SESSION_KEY: using a random session key; sessions will not survive a restart or move between replicas")
		if key, err = upstream.NewSessionKey(); err != nil {
			return nil, err
		}
	}
	sealer, err := upstream.NewSealer(key)
	if err != nil {
		return nil, err
	}

	// The store, seeded from the file, is the source of agents and backends:
	// it also holds those made through the admin API.
	live := *cfg
	revision, err := s.Store.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if live.Backends, live.Agents, err = loadTopology(ctx, s.Store); err != nil {
		return nil, err
	}
	facade, err := facadeClient(cfg.OAuth)
	if err != nil {
		return nil, err
	}
	injectors, closeExchanger, err := newInjectors(cfg, log, exchangeMetrics{s.Metrics}, facade)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func(context.Context) error { closeExchanger(); return nil })
	maps.Copy(injectors, o.Injectors)
	// The gateway's own authorization server, when on: its tokens are
	// verified by it, every other token by the IdPs' verifier.
	var verifier Authenticator = s.Verifier
	if cfg.OAuth.Enabled {
		if s.OAuth, err = oauthserver.New(ctx, oauthserver.Options{
			Config: cfg.OAuth, Issuer: cfg.Server.PublicURL, SecretKey: key, Store: s.Store,
			Agent:     func(name string) (config.Agent, bool) { return s.Gateway.EnabledAgent(name) },
			Resources: func() []string { return s.Gateway.Resources() },
			Audit:     s.Audit.Write, Logger: log, ClockSkew: cfg.Identity.ClockSkew, CIMDTransport: o.CIMDTransport,
			Registrations: func(ctx context.Context, source string, perMinute int) (bool, time.Duration, error) {
				return s.Gateway.countRegistration(ctx, source, perMinute)
			},
		}); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func(context.Context) error { s.OAuth.Close(); return nil })
		verifier = s.OAuth.Chain(s.Verifier)
	}
	s.Gateway, err = New(Options{
		Config: &live, Verifier: verifier, Authorizer: s.Engine, Sealer: sealer, Injectors: injectors, Logger: log,
		Observer: s.Metrics, Tracer: tp.Tracer(telemetry.TracerName), Audit: s.Audit.Write, Pins: s.Store, Confirmations: s.Store,
		ReadyChecks: map[string]func(context.Context) error{
			"identity": func(context.Context) error { return s.Verifier.Ready() },
			"policy":   func(context.Context) error { return s.Engine.Ready() },
			"store":    func(ctx context.Context) error { return s.Store.Ping(ctx) },
			"audit":    auditReady(s.Audit),
			// Fails only while Redis is down and requests are refused for it.
			"ratelimit": func(ctx context.Context) error { return s.Gateway.rate.ready(ctx) },
		},
		ReadyDetails: map[string]func() any{"policy": func() any { return s.Engine.Status() }},
	})
	if err != nil {
		return nil, err
	}
	s.policyConfig = cfg.Policy
	s.mountAdmin(log)
	if cfg.Server.MetricsListen == "" {
		// Metrics and the detailed readiness name backends, issuers, the
		// policy source and traffic: never on the port agents reach.
		log.Info("server.metrics_listen is empty: /metrics and the detailed /readyz are not served (the main port's /readyz says only ready or not)")
	} else if err = s.serveMetrics(cfg.Server.MetricsListen, cfg.Server.MetricsPprof, log); err != nil {
		return nil, err
	}
	if s.OAuth != nil {
		s.Gateway.MountOAuth(s.OAuth)
	}
	s.Gateway.MountMCP()
	pollCtx, stopPoll := context.WithCancel(context.Background())
	s.closers = append(s.closers, func(context.Context) error { stopPoll(); return nil })
	s.seen = revision
	go s.followStore(pollCtx, cfg.Store.PollInterval, log)

	s.ln = o.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
			return nil, fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err)
		}
	}
	s.URL = "http://" + s.ln.Addr().String()
	go func() { s.errc <- s.Gateway.Serve(s.ln) }()
	log.Info("mcpgw listening", "addr", s.ln.Addr().String(), "public_url", cfg.Server.PublicURL,
		"backends", len(cfg.Backends), "agents", len(cfg.Agents), "policy_revision", s.Engine.Revision())
	return s, nil
}

// newInjectors makes the credential injector factories of every
// auth_method: the basic ones and the token-exchange ones, whose exchanger
// closeFn stops.
func newInjectors(cfg *config.Config, log *slog.Logger, m exchange.Metrics, facade *exchange.FacadeClient) (map[string]upstream.InjectorFactory, func(), error) {
	issuers := make([]string, 0, len(cfg.Identity.Issuers))
	for _, is := range cfg.Identity.Issuers {
		issuers = append(issuers, is.Issuer)
	}
	exchanger, err := exchange.New(exchange.Deps{Logger: log, Metrics: m, ExchangeTimeout: cfg.Exchange.Timeout, Issuers: issuers, Facade: facade,
		Cache: exchange.CacheConfig{MaxCost: cfg.Exchange.CacheMaxBytes, MaxTTL: cfg.Exchange.CacheMaxTTL, FailureTTL: cfg.Exchange.FailureTTL}})
	if err != nil {
		return nil, nil, err
	}
	injectors := upstream.BasicFactories()
	maps.Copy(injectors, exchanger.Factories())
	return injectors, exchanger.Close, nil
}

// Done delivers the serve loop's error when it stops.
func (s *Server) Done() <-chan error { return s.errc }

// Close shuts the gateway down gracefully within ctx, then its parts.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	if s.Gateway != nil && s.ln != nil {
		errs = append(errs, s.Gateway.Shutdown(ctx))
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i](ctx))
	}
	return errors.Join(errs...)
}

func loadTopology(ctx context.Context, st store.Store) (map[string]config.Backend, map[string]config.Agent, error) {
	bs, err := st.ListBackends(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("store: list backends: %w", err)
	}
	as, err := st.ListAgents(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("store: list agents: %w", err)
	}
	backends := make(map[string]config.Backend, len(bs))
	for _, e := range bs {
		backends[e.Value.Name] = e.Value
	}
	agents := make(map[string]config.Agent, len(as))
	for _, e := range as {
		agents[e.Value.Name] = e.Value
	}
	return backends, agents, nil
}

// followStore applies agent and backend changes made by any replica (or this
// one's admin API) by polling the store's revision, which is one cheap read,
// and the approvals of tool integrity by polling the pin revision.
func (s *Server) followStore(ctx context.Context, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.Reload(ctx); err != nil {
			log.Error("apply store changes", "err", err)
		}
		if err := s.Gateway.FollowPins(ctx); err != nil {
			log.Error("follow tool integrity approvals", "err", err)
		}
	}
}

// Reload swaps in the store's agents and backends when its revision moved.
// A topology that does not build (a backend whose credential config is
// broken) leaves the current one serving.
func (s *Server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rev, err := s.Store.Revision(ctx)
	if err != nil || rev == s.seen {
		return err
	}
	backends, agents, err := loadTopology(ctx, s.Store)
	if err != nil {
		return err
	}
	if err := s.Gateway.SetTopology(backends, agents); err != nil {
		return fmt.Errorf("store revision %d: %w", rev, err)
	}
	s.seen = rev
	return nil
}

// decisionRecord is the audit trail's view of a policy evaluation: who,
// what, the outcome and the revision that decided; never a token.
func decisionRecord(r policy.Record) audit.Record {
	return audit.Record{
		Time: r.Time, Kind: audit.KindDecision, DecisionID: r.DecisionID,
		Subject: r.Subject, Issuer: r.Issuer, Agent: r.Agent, Backend: r.Backend, Method: r.Method, Tool: r.Tool,
		Allow: r.Allow, Reasons: r.Reasons, Revision: r.Revision, EvalMicros: r.Elapsed.Microseconds(),
		LatencyMS: float64(r.Latency.Microseconds()) / 1000, Outcome: r.Outcome,
		Input: r.Input, InputMasked: r.InputMasked,
	}
}

// serveMetrics serves /metrics and the detailed /readyz on their own
// listener, so that scraping and health details stay off the port agents
// reach (bind it to an address only operators' networks see).
func (s *Server) serveMetrics(addr string, pprofOn bool, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server.metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.Metrics.Handler())
	mux.Handle("/readyz", s.Gateway.ReadinessHandler())
	paths := "/metrics /readyz"
	if pprofOn {
		// Registered by hand on this mux: importing net/http/pprof also
		// registers on http.DefaultServeMux, which nothing here serves.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		paths += " /debug/pprof/"
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	s.closers = append(s.closers, hs.Shutdown)
	s.MetricsURL = "http://" + ln.Addr().String()
	log.Info("metrics listening", "addr", ln.Addr().String(), "paths", paths)
	return nil
}

// shadowRecord is the audit trail's view of a shadow disagreement: what the
// shadow policy would have decided, tied to the enforced decision by its id.
func shadowRecord(d policy.ShadowDisagreement) audit.Record {
	enforced := "enforced: deny"
	if d.Enforced.Allow {
		enforced = "enforced: allow"
	}
	return audit.Record{
		Time: time.Now(), Kind: audit.KindShadow, DecisionID: d.DecisionID,
		Subject: d.Subject, Issuer: d.Issuer, Agent: d.Agent, Backend: d.Backend, Method: d.Method, Tool: d.Tool,
		Allow: d.Shadow.Allow, Reasons: append([]string{enforced + " by " + d.Enforced.Revision}, d.Shadow.Reasons...),
		Revision: d.Shadow.Revision,
	}
}

// exchangeMetrics feeds token-exchange outcomes to Prometheus.
type exchangeMetrics struct{ m *telemetry.Metrics }

func (e exchangeMetrics) CacheLookup(backend string, hit bool) { e.m.TokenCache(backend, hit) }

func (e exchangeMetrics) Exchanged(backend, method, outcome string, elapsed time.Duration) {
	e.m.ExchangeObserved(backend, method, outcome, elapsed)
}

// facadeClient is the OAuth facade's client at the IdP, for Cross App
// Access of people who logged in through it; nil when oauth is off.
func facadeClient(o config.OAuth) (*exchange.FacadeClient, error) {
	if !o.Enabled {
		return nil, nil
	}
	u := o.Upstream
	if u.PrivateKeyFile != "" {
		pem, err := os.ReadFile(u.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("oauth.upstream.private_key_file: %w", err)
		}
		key, err := exchange.ParsePrivateKey(string(pem))
		if err != nil {
			return nil, fmt.Errorf("oauth.upstream.private_key_file %s: %w", u.PrivateKeyFile, err)
		}
		return &exchange.FacadeClient{ClientID: u.ClientID, Key: key}, nil
	}
	secret, err := config.ResolveSecret(u.ClientSecret, u.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("oauth.upstream.client_secret: %w", err)
	}
	return &exchange.FacadeClient{ClientID: u.ClientID, Secret: secret}, nil
}
